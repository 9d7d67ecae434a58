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

# Unit, integration and API tests.
step "cargo test --locked --all-targets"
cargo test --locked --all-targets


