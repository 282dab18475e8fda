#!/usr/bin/env bash
# Java side of the avro-rpc interop proof (see README.md in this directory).
#
#   run-java.sh [cp]            build if needed, print the classpath (one line, stdout)
#   run-java.sh server ARGS..   build if needed, exec org.cinerec.interop.InteropServer ARGS
#   run-java.sh client ARGS..   build if needed, exec org.cinerec.interop.InteropClient ARGS
#   run-java.sh golden [DIR]    regenerate the golden bytes (default: ./golden)
#   run-java.sh selftest        Java client <-> Java server, netty + http, v1/v2 both ways,
#                               and against a server whose protocol hash differs
#
# The build runs Maven offline first (jars cached in ~/.m2) and online only if
# that fails, and only when pom.xml, src/ or protocols/ changed since the last
# build. Concurrent callers are serialised with flock. Progress goes to stderr.
# Exit 127 if java or mvn is missing (callers may treat that as "skip").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JDIR="$HERE/java"
JAVA_OPTS_DEFAULT="-Xmx256m -XX:+UseSerialGC"
read -r -a JOPTS <<<"${INTEROP_JAVA_OPTS:-$JAVA_OPTS_DEFAULT}"

log() { echo "run-java: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "$1 not found on PATH"; exit 127; }; }

inputs_sum() {
  (cd "$JDIR" && find pom.xml src ../protocols -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

up_to_date() {
  [ -f "$JDIR/target/.inputs.sha256" ] && [ -d "$JDIR/target/classes" ] && [ -d "$JDIR/lib" ] &&
    [ "$(cat "$JDIR/target/.inputs.sha256")" = "$1" ]
}

build() {
  need java
  local sum
  sum="$(inputs_sum)"
  up_to_date "$sum" && return 0
  need mvn
  mkdir -p "$JDIR/target"
  exec 9>"$JDIR/target/.build.lock"
  flock 9
  if ! up_to_date "$sum"; then
    log "building the Java harness (mvn compile dependency:copy-dependencies)"
    rm -rf "$JDIR/target/classes" "$JDIR/lib" "$JDIR/target/.inputs.sha256"
    if ! (cd "$JDIR" && mvn -q -B -o -Dstyle.color=never compile dependency:copy-dependencies >&2); then
      log "offline build failed; retrying online"
      (cd "$JDIR" && mvn -q -B -Dstyle.color=never compile dependency:copy-dependencies >&2)
    fi
    echo "$sum" >"$JDIR/target/.inputs.sha256"
  fi
  exec 9>&-
}

classpath() {
  local cp="$JDIR/target/classes" jar
  for jar in "$JDIR"/lib/*.jar; do cp="$cp:$jar"; done
  echo "$cp"
}

# selftest helpers -----------------------------------------------------------

# run_pair SERVER_PROTO CLIENT_PROTO [SERVER_PROTO_ARG]: start a server, run the
# client over both transports, stop the server by closing its stdin.
run_pair() {
  local sv="$1" cv="$2" sarg="${3:-$1}" cp line np hp rc=0 t p log
  cp="$(classpath)"
  log="$JDIR/target/selftest-server-$sv.log"
  coproc SRV { exec java "${JOPTS[@]}" -cp "$cp" org.cinerec.interop.InteropServer --proto "$sarg" --max-seconds 300 2>"$log"; }
  local srv_pid=$SRV_PID srv_in=${SRV[1]}
  if ! read -r -t 60 line <&"${SRV[0]}"; then
    log "server did not print READY (see $log)"; kill "$srv_pid" 2>/dev/null || true; return 1
  fi
  np="$(sed -n 's/^READY netty=\([0-9]*\) http=\([0-9]*\)$/\1/p' <<<"$line")"
  hp="$(sed -n 's/^READY netty=\([0-9]*\) http=\([0-9]*\)$/\2/p' <<<"$line")"
  for t in netty http; do
    p="$np"; [ "$t" = http ] && p="$hp"
    echo "== client $cv -> server $sv ($sarg) over $t"
    java "${JOPTS[@]}" -cp "$cp" org.cinerec.interop.InteropClient --transport "$t" --port "$p" \
      --proto "$cv" --server-proto "$sv" 2>>"$JDIR/target/selftest-client.log" || rc=1
  done
  eval "exec ${srv_in}>&-" # stdin EOF stops the server
  wait "$srv_pid" 2>/dev/null || true
  return $rc
}

cmd="${1:-cp}"
[ $# -gt 0 ] && shift
case "$cmd" in
cp)
  build
  classpath
  ;;
server)
  build
  exec java "${JOPTS[@]}" -cp "$(classpath)" org.cinerec.interop.InteropServer "$@"
  ;;
client)
  build
  exec java "${JOPTS[@]}" -cp "$(classpath)" org.cinerec.interop.InteropClient "$@"
  ;;
golden)
  build
  dir="${1:-$HERE/golden}"
  tmp="$(mktemp -d)"
  java "${JOPTS[@]}" -cp "$(classpath)" org.cinerec.interop.GoldenCapture "$tmp/golden" 2>"$JDIR/target/golden.log" ||
    { log "GoldenCapture failed, see $JDIR/target/golden.log"; rm -rf "$tmp"; exit 1; }
  rm -rf "$dir"
  mv "$tmp/golden" "$dir"
  rm -rf "$tmp"
  log "golden bytes written to $dir"
  ;;
selftest)
  build
  rc=0
  for sv in v1 v2; do
    for cv in v1 v2; do
      run_pair "$sv" "$cv" || rc=1
    done
  done
  # A v1 server whose protocol text (a doc string) differs, so its MD5 differs
  # from the client's, as a Rust server's will: first contact is NONE, then the
  # client resends with its protocol.
  rehashed="$JDIR/target/interop-v1-rehashed.avpr"
  sed 's/"doc": "Interop test protocol (v1)/"doc": "Rehashed copy of the interop test protocol (v1)/' \
    "$HERE/protocols/interop.avpr" >"$rehashed"
  for cv in v1 v2; do
    run_pair v1 "$cv" "$rehashed" || rc=1
  done
  if [ $rc -eq 0 ]; then echo "selftest: all pairs passed"; else echo "selftest: FAILURES"; fi
  exit $rc
  ;;
*)
  sed -n '2,17p' "$0" >&2
  exit 2
  ;;
esac
