#!/usr/bin/env bash
# The Superset dashboard's test, runnable as its own CI stage once the stack is
# up (`dev/stack up`):
#
#   dashboard/test.sh               install (cached), import the bundle, real rollups, every chart's data
#   dashboard/test.sh --screenshot  the same, then docs/superset.png with Debian's headless Chromium
#   dashboard/test.sh --serve       the same, then leave Superset running for a person (Ctrl-C stops it)
#   dashboard/test.sh --pipeline    the test over the pipeline's own schema `dashboard`, as a
#                                   run of the real pipeline left it (`dev/run --once` before it:
#                                   CI does so); no demo input
#   dashboard/test.sh --live        no test: Superset over the pipeline's own schema `dashboard`
#                                   (the rollup sink running on its defaults), until Ctrl-C
#
# 1. Apache Superset from PyPI into a cached virtualenv ($CINEREC_SUPERSET_VENV,
#    default ~/.cache/cinerec/superset-venv), with the pins its declared
#    dependencies miss; a marker file makes the second run skip it.
# 2. A Superset metadata DB (sqlite under the stack dir), an admin (admin/admin).
# 3. A short real input: `rollup-demo` produces EnrichedReviews (5 % twice) to a
#    unique topic and writes the recommender's two tables into a unique keyspace;
#    the real `rollup` sink rolls them up into a unique PostgreSQL schema.
# 4. The bundle (dashboard/bundle, pointed at that schema and $CINEREC_DATABASE_URL)
#    zipped and imported; Superset started on 127.0.0.1:$SUPERSET_PORT (18088).
# 5. Each chart's data through /api/v1/chart/{id}/data/ after /api/v1/security/login:
#    fails unless every chart returns rows.
# 6. Superset and the sink stopped, the schema and keyspace dropped; timings printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

MODE=test
case "${1:-}" in
  "") ;;
  --screenshot) MODE=screenshot ;;
  --serve) MODE=serve ;;
  --live) MODE=live ;;
  --pipeline) MODE=pipeline ;;
  -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
  *) echo "usage: $0 [--screenshot|--serve|--pipeline|--live]" >&2; exit 2 ;;
esac

# Pins: Superset 6.1.0's wheel does not declare psycopg2 (PostgreSQL), rich and
# cachetools (imported at start), and accepts a flask-caching that breaks it;
# sqlalchemy-cockroachdb 1.4.x is the CockroachDB dialect for SQLAlchemy 1.4
# (2.x needs SQLAlchemy 2, which Superset 6 does not allow).
PINS=(apache-superset==6.1.0 psycopg2-binary==2.9.13 rich==15.0.0 cachetools==8.0.1
      flask-caching==2.3.1 sqlalchemy-cockroachdb==1.4.6)
VENV=${CINEREC_SUPERSET_VENV:-$HOME/.cache/cinerec/superset-venv}
PORT=${SUPERSET_PORT:-18088}
STACK_DIR=${CINEREC_STACK_DIR:-$ROOT/.stack}
export SUPERSET_HOME=$STACK_DIR/superset
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cinerec/target}
eval "$(dev/stack env)"
DB_URL=${CINEREC_DATABASE_URL:-postgresql://cinerec@127.0.0.1:15432/cinerec}
DB_URL=${DB_URL/#postgres:\/\//postgresql://}
NAME=dash_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
# The schema the datasets read: this run's own, or the pipeline's in --live.
SCHEMA=$NAME
[[ $MODE == live || $MODE == pipeline ]] && SCHEMA=dashboard
WORK=$(mktemp -d)
T0=$(date +%s)
TIMINGS=()
step_start=$T0
step() {
  local now; now=$(date +%s)
  [[ -n "${STEP:-}" ]] && TIMINGS+=("$(printf '%-28s %4ss' "$STEP" $((now - step_start)))")
  STEP=$1; step_start=$now
  printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"
}
SUPERSET_PID= ROLLUP_PID=
cleanup() {
  local rc=$?
  set +e
  [[ -n "$SUPERSET_PID" ]] && kill "$SUPERSET_PID" 2>/dev/null && wait "$SUPERSET_PID" 2>/dev/null
  [[ -n "$ROLLUP_PID" ]] && kill "$ROLLUP_PID" 2>/dev/null && wait "$ROLLUP_PID" 2>/dev/null
  [[ $SCHEMA == "$NAME" ]] && psql "$DB_URL" -qc "DROP SCHEMA IF EXISTS $NAME CASCADE" >/dev/null 2>&1
  "$CARGO_TARGET_DIR/debug/rollup-demo" --drop --keyspace "$NAME" >/dev/null 2>&1 || true
  rm -f "$SUPERSET_HOME/$NAME.db" "$SUPERSET_HOME/$NAME.py"
  rm -rf "$WORK"
  step done
  printf '%s\n' "${TIMINGS[@]}"
  echo "total $(( $(date +%s) - T0 ))s (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "superset virtualenv"
MARKER=$VENV/.cinerec-pins
if [[ -f $MARKER && "$(cat "$MARKER")" == "${PINS[*]}" ]]; then
  echo "cached: $VENV"
else
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
  echo "${PINS[*]}" >"$MARKER"
fi
SUPERSET=$VENV/bin/superset

step "superset metadata db"
# A fresh metadata DB per run (a re-import never overwrites existing charts or
# datasets, so a reused one would keep an earlier run's schema): copied from a
# template made once per virtualenv (db upgrade + admin, ~30 s).
TEMPLATE=$VENV/.cinerec-metadata
mkdir -p "$SUPERSET_HOME"
write_config() { # $1 = the metadata DB file
  cat >"$SUPERSET_HOME/$NAME.py" <<EOF
# Written by dashboard/test.sh: a local, loopback-only Superset.
SECRET_KEY = open("$TEMPLATE.secret").read().strip()
SQLALCHEMY_DATABASE_URI = "sqlite:///$1"
# No Redis results backend or celery here: queries run in the web process.
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache"}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
# --screenshot only: headless Chromium cannot log in, so anonymous viewers get
# the admin's view (bound to 127.0.0.1, stopped after the screenshot).
PUBLIC_ROLE_LIKE = "Admin" if "$MODE" == "screenshot" else None
EOF
}
export SUPERSET_CONFIG_PATH=$SUPERSET_HOME/$NAME.py FLASK_APP=superset
if [[ ! -f $TEMPLATE.db ]]; then
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$TEMPLATE.secret"
  rm -f "$TEMPLATE.tmp.db"
  write_config "$TEMPLATE.tmp.db"
  "$SUPERSET" db upgrade >"$WORK/upgrade.log" 2>&1 || { tail -30 "$WORK/upgrade.log"; exit 1; }
  "$SUPERSET" fab create-admin --username admin --firstname cinerec --lastname admin \
    --email admin@localhost --password admin >"$WORK/admin.log" 2>&1 || { tail -20 "$WORK/admin.log"; exit 1; }
  mv "$TEMPLATE.tmp.db" "$TEMPLATE.db"
fi
cp "$TEMPLATE.db" "$SUPERSET_HOME/$NAME.db"
write_config "$SUPERSET_HOME/$NAME.db"
# Roles and permissions (and PUBLIC_ROLE_LIKE) are synced per run.
"$SUPERSET" init >"$WORK/init.log" 2>&1 || { tail -20 "$WORK/init.log"; exit 1; }

if [[ $MODE == pipeline ]]; then
step "what the pipeline rolled up"
# Every chart needs rows: events, a snapshot of trending and of the
# recommendations (rollup takes one when it stops), and redeliveries skipped
# (dev/run replays the tail of reviews.enriched after its load).
state=$(psql "$DB_URL" -qtAc "SELECT (SELECT COALESCE(SUM(events),0) FROM dashboard.review_throughput_minute)
  || ' ' || (SELECT COUNT(*) FROM dashboard.trending_snapshots)
  || ' ' || (SELECT COUNT(*) FROM dashboard.most_recommended_movies)
  || ' ' || (SELECT COALESCE(SUM(skips),0) FROM dashboard.dedup_skips_minute)" 2>&1) \
  || { echo "no rollups in schema dashboard ($state): run dev/run --once first" >&2; exit 1; }
echo "events, trending rows, recommended movies, dedup skips: $state"
[[ "$state" =~ ^[1-9][0-9]*\ [1-9][0-9]*\ [1-9][0-9]*\ [1-9][0-9]*$ ]] \
  || { echo "the pipeline's rollups lack rows for some chart: $state (dev/run --once, with --replay > 0)" >&2; exit 1; }
fi

if [[ $MODE != live && $MODE != pipeline ]]; then
step "build rollup"
nice cargo build -q -p rollup --bins

step "pipeline input + rollup sink"
"$CARGO_TARGET_DIR/debug/rollup-demo" --topic "$NAME" --keyspace "$NAME" --reviews 3000
ROLLUP_TOPIC=$NAME ROLLUP_GROUP=$NAME ROLLUP_SCHEMA=$NAME RECOMMENDER_KEYSPACE=$NAME \
  ROLLUP_SNAPSHOT_INTERVAL_MS=1000 CINEREC_ADMIN_ADDR=127.0.0.1:0 CINEREC_LOG=warn \
  "$CARGO_TARGET_DIR/debug/rollup" >"$WORK/rollup.log" 2>&1 &
ROLLUP_PID=$!
# Every event rolled up (3000, the duplicates skipped) and three snapshots in.
for i in $(seq 1 120); do
  state=$(psql "$DB_URL" -qtAc "SELECT (SELECT COALESCE(SUM(events),0) FROM $NAME.review_throughput_minute)
    || ' ' || (SELECT COUNT(DISTINCT snapshot_at) FROM $NAME.trending_snapshots)
    || ' ' || (SELECT COUNT(*) FROM $NAME.most_recommended_movies)" 2>/dev/null || true)
  [[ "$state" =~ ^3000\ ([3-9]|[0-9]{2,})\ [1-9] ]] && break
  kill -0 "$ROLLUP_PID" 2>/dev/null || { tail -20 "$WORK/rollup.log"; exit 1; }
  [[ $i == 120 ]] && { echo "rollups incomplete after 60 s: events snapshots movies = $state" >&2; exit 1; }
  sleep 0.5
done
echo "events, trending snapshots, recommended movies: $state"
kill "$ROLLUP_PID"; wait "$ROLLUP_PID" || true; ROLLUP_PID=
fi

step "import the bundle"
mkdir -p "$WORK/cinerec_dashboard"
cp -r dashboard/bundle/. "$WORK/cinerec_dashboard/"
sed -i "s|^schema: dashboard$|schema: $SCHEMA|" "$WORK"/cinerec_dashboard/datasets/*/*.yaml
sed -i "s|^sqlalchemy_uri: .*|sqlalchemy_uri: $DB_URL|" "$WORK"/cinerec_dashboard/databases/*.yaml
"$VENV/bin/python" -c 'import shutil, sys; shutil.make_archive(sys.argv[1], "zip", sys.argv[2], "cinerec_dashboard")' \
  "$WORK/bundle" "$WORK"
"$SUPERSET" import-dashboards -p "$WORK/bundle.zip" -u admin >"$WORK/import.log" 2>&1 \
  || { tail -30 "$WORK/import.log"; exit 1; }

step "start superset"
"$SUPERSET" run -h 127.0.0.1 -p "$PORT" --with-threads >"$WORK/superset.log" 2>&1 &
SUPERSET_PID=$!
for i in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$SUPERSET_PID" 2>/dev/null || { tail -30 "$WORK/superset.log"; exit 1; }
  [[ $i == 120 ]] && { echo "Superset not up on :$PORT after 60 s" >&2; tail -30 "$WORK/superset.log"; exit 1; }
  sleep 0.5
done

if [[ $MODE != live ]]; then
  step "every chart's data via the API"
  "$VENV/bin/python" dashboard/check_charts.py "http://127.0.0.1:$PORT" "$WORK/cinerec_dashboard"
fi

if [[ $MODE == screenshot ]]; then
  step "screenshot"
  if ! command -v chromium >/dev/null; then
    apt-get install -y -q chromium >"$WORK/apt.log" 2>&1 || { tail -5 "$WORK/apt.log"; echo "chromium not installable: no screenshot" >&2; exit 1; }
  fi
  mkdir -p docs
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,1500 \
    --virtual-time-budget=30000 --screenshot="$ROOT/docs/superset.png" \
    "http://127.0.0.1:$PORT/superset/dashboard/cinerec/?standalone=1" >"$WORK/chromium.log" 2>&1 \
    || { tail -10 "$WORK/chromium.log"; exit 1; }
  echo "wrote docs/superset.png"
fi

if [[ $MODE == serve || $MODE == live ]]; then
  step "serving"
  echo "Superset on http://127.0.0.1:$PORT/superset/dashboard/cinerec/ (admin/admin), schema $SCHEMA; Ctrl-C stops it"
  wait "$SUPERSET_PID" || true
fi
