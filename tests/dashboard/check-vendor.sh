#!/usr/bin/env bash
# `make dashboard-vendor`: checks that the dashboard's vendored Chart.js is, byte for byte, the
# file inside the package its lockfile pins (npm ci verifies the tarball against the lockfile's
# sha512 integrity; cmp then compares what we serve with what the tarball holds). Needs npm and
# the registry; not part of `make test` (nothing at run time or in CI depends on npm).
set -euo pipefail
cd "$(dirname "$0")/../../crates/loyalty-server/dashboard"
trap 'rm -rf node_modules' EXIT
npm ci --ignore-scripts --no-audit --no-fund
cmp node_modules/chart.js/dist/chart.umd.js vendor/chart.umd.js
cmp node_modules/chart.js/LICENSE.md vendor/LICENSE.chartjs
version=$(node -p "require('./package-lock.json').packages['node_modules/chart.js'].version")
echo "vendor/chart.umd.js and vendor/LICENSE.chartjs are chart.js ${version} as published"
