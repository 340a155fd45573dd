#!/usr/bin/env bash
# The dashboard's browser tests (tests/dashboard.rs) drive Debian's Chromium through its
# chromedriver. This installs both when they are missing (`make unit` runs it first), so a fresh
# machine or CI needs nothing installed by hand. Debian's packages, not a browser build
# downloaded by a driver crate: the machines reach the package registries only.
set -euo pipefail

cd "$(dirname "$0")"
# The accessibility checker the test runs in the page (axe-core, pinned by package-lock.json),
# from the npm registry into tests/dashboard/node_modules.
if [[ ! -f node_modules/axe-core/axe.min.js ]]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
install() {
    $SUDO apt-get install -y --no-install-recommends chromium chromium-driver
}
# The package lists may be missing or stale on a fresh machine: update only when the install
# fails without it (an update is slow, and most runs find the lists fine).
if ! install; then
    $SUDO apt-get update
    install
fi
test -x /usr/bin/chromium
test -x /usr/bin/chromedriver
