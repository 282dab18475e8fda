# syntax=docker/dockerfile:1
#
# cinerec's container images: one build stage compiles every service binary
# of the workspace once; one small runtime stage per binary, selected with
# --target:
#
#   docker build --target movie-svc  -t cinerec/movie-svc:0.1.0 .
#   docker build --target user-svc   -t cinerec/user-svc:0.1.0 .
#   docker build --target review-svc -t cinerec/review-svc:0.1.0 .
#   docker build --target enricher    -t cinerec/enricher:0.1.0 .
#   docker build --target recommender -t cinerec/recommender:0.1.0 .
#   docker build --target rollup      -t cinerec/rollup:0.1.0 .
#   docker build --target stream-lag  -t cinerec/stream-lag:0.1.0 .
#
# (k8s/README.md: importing them into K3S.) BuildKit builds only the stages a
# target needs, and the build stage is shared, so the seven images cost one
# compilation.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# librdkafka (rdkafka-sys) is built from source with its configure script and
# make; zlib is linked dynamically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target directory between builds;
# the binaries are copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
      --bin movie-svc --bin user-svc --bin review-svc --bin enricher --bin recommender \
      --bin rollup --bin stream-lag \
 && mkdir -p /out \
 && cp target/release/movie-svc target/release/user-svc target/release/review-svc \
       target/release/enricher target/release/recommender target/release/rollup \
       target/release/stream-lag /out/

# Shared runtime: glibc, libz and libgcc_s (all in the slim image), CA
# certificates for TLS endpoints, and an unprivileged user whose numeric id
# the manifests' runAsNonRoot can verify.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cinerec \
 && useradd --system --uid 10001 --gid cinerec --no-create-home --shell /usr/sbin/nologin cinerec
USER 10001:10001
# Loopback defaults suit a laptop; in a container every service binds all
# interfaces (the k8s ConfigMaps set the same).
ENV CINEREC_LOG_FORMAT=json

FROM runtime AS movie-svc
COPY --from=build /out/movie-svc /usr/local/bin/movie-svc
ENV CINEREC_ADMIN_ADDR=0.0.0.0:9101 \
    MOVIE_SVC_RPC_ADDR=0.0.0.0:7101 \
    MOVIE_SVC_RPC_HTTP_ADDR=0.0.0.0:7102
EXPOSE 7101 7102 9101
ENTRYPOINT ["/usr/local/bin/movie-svc"]
CMD ["serve"]

FROM runtime AS user-svc
COPY --from=build /out/user-svc /usr/local/bin/user-svc
ENV CINEREC_ADMIN_ADDR=0.0.0.0:9201 \
    USER_SVC_RPC_ADDR=0.0.0.0:7201 \
    USER_SVC_RPC_HTTP_ADDR=0.0.0.0:7202
EXPOSE 7201 7202 9201
ENTRYPOINT ["/usr/local/bin/user-svc"]
CMD ["serve"]

FROM runtime AS review-svc
COPY --from=build /out/review-svc /usr/local/bin/review-svc
ENV CINEREC_ADMIN_ADDR=0.0.0.0:9083 \
    REVIEW_SVC_LISTEN=0.0.0.0:8083
EXPOSE 8083 9083
ENTRYPOINT ["/usr/local/bin/review-svc"]
CMD ["serve"]

# Consumer 1: reviews.changed -> reviews.enriched. Only an admin port; Kafka,
# its cache and the RPC addresses come from the environment (k8s ConfigMap).
FROM runtime AS enricher
COPY --from=build /out/enricher /usr/local/bin/enricher
ENV CINEREC_ADMIN_ADDR=0.0.0.0:9084
EXPOSE 9084
ENTRYPOINT ["/usr/local/bin/enricher"]

# Consumer 2: reviews.enriched -> the model -> recommendations in Cassandra/
# Scylla. `migrate` creates its tables; `run` consumes (one replica only).
FROM runtime AS recommender
COPY --from=build /out/recommender /usr/local/bin/recommender
ENV CINEREC_ADMIN_ADDR=0.0.0.0:9085
EXPOSE 9085
ENTRYPOINT ["/usr/local/bin/recommender"]
CMD ["run"]

# The dashboard's sink: reviews.enriched and snapshots of the recommender's
# tables -> rollups in CockroachDB schema `dashboard`, which Superset reads.
FROM runtime AS rollup
COPY --from=build /out/rollup /usr/local/bin/rollup
ENV CINEREC_ADMIN_ADDR=0.0.0.0:9086
EXPOSE 9086
ENTRYPOINT ["/usr/local/bin/rollup"]
CMD ["run"]

# The consumer groups' lag from the broker (committed offsets against the
# watermarks), for Prometheus' ConsumerLagHigh alert; groups from the
# environment (STREAM_LAG_GROUPS, k8s ConfigMap).
FROM runtime AS stream-lag
COPY --from=build /out/stream-lag /usr/local/bin/stream-lag
ENV CINEREC_ADMIN_ADDR=0.0.0.0:9087
EXPOSE 9087
ENTRYPOINT ["/usr/local/bin/stream-lag"]
