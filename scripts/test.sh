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

# The release binary, built once: the API tests that start the binary and the browser test use it.
step "cargo build --release --locked"
cargo build --release --locked
export REGSERVE_BIN="$PWD/target/release/regserve"

# Unit, integration and API tests (the library, the binary, tests/ and doc tests).
step "cargo test --locked"
cargo test --locked

# The benchmarks are run by scripts/bench.sh; here they only have to compile.
step "cargo bench --locked --no-run"
cargo bench --locked --no-run

# Installs Debian packages, as root or through sudo.
apt_install() {
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "test.sh: the browser test needs $*; install them as root (apt-get install $*)" >&2
            echo "test.sh: or skip the browser test with REGSERVE_SKIP_BROWSER=1" >&2
            exit 1
        fi
        as_root=(sudo)
    fi
    step "apt-get install $*"
    "${as_root[@]}" apt-get update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# End-to-end test of the page: headless Chromium drives the release binary.
browser_test() {
    if [ ! -x /usr/bin/chromium ]; then
        apt_install chromium
    fi
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi

    step "npm ci --prefix tests/browser"
    npm ci --prefix tests/browser --no-audit --no-fund

    step "node --test tests/browser/e2e.test.mjs"
    node --test tests/browser/e2e.test.mjs
}

if [ "${REGSERVE_SKIP_BROWSER:-}" = "1" ]; then
    step "browser test skipped (REGSERVE_SKIP_BROWSER=1)"
else
    browser_test
fi
