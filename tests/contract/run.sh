#!/usr/bin/env bash
# The contract run: schemathesis (pinned, from PyPI, in a virtual environment this script makes
# under target/) against servers this script starts, each on a fresh embedded store, with every
# check, once for each role's key and once with a member token. Any failure fails the run.
#
#   make contract                      # or: bash tests/contract/run.sh
#   CONTRACT_EXAMPLES=100 make contract  # more cases per operation
#
# Reports: target/contract/<role>.txt (a failure prints a curl command that reproduces it).
set -euo pipefail
cd "$(dirname "$0")/../.."

SCHEMATHESIS_VERSION="4.32.5"
EXAMPLES="${CONTRACT_EXAMPLES:-25}"
OUT="target/contract"
VENV="target/contract-venv"
mkdir -p "$OUT"

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

${CARGO:-cargo} build --quiet -p loyalty-cli --bin loyalty

# Each role runs against a server of its own on a fresh store (seeded alike), so that what one
# role's run changes (an admin closing the seeded member, say) never meets another's: the
# roles run CONTRACT_JOBS at a time (2: schemathesis is one Python thread, and this machine has
# two cores) and every run stays the same whatever the order.
#
# The servers create webhook endpoints with whatever URLs the generator makes up: they check
# and store them but deliver nothing (webhooks.enabled = false), so no request ever leaves for
# a host the generator named. The shipped settings refuse private targets as well.
run_role() {
  local who=$1 data port base server key token
  data="$(mktemp -d)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  base="http://127.0.0.1:$port"
  LOYALTY_STORE__PATH="$data/loyalty.sqlite" \
  LOYALTY_SERVER__LISTEN="127.0.0.1:$port" \
  LOYALTY_WEBHOOKS__ENABLED=false \
    target/debug/loyalty serve >"$OUT/server-$who.log" 2>&1 &
  server=$!
  # This job's server goes with it, however the job ends.
  trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
  trap 'exit 1' TERM INT
  echo 1 >"$OUT/$who.status"
  for _ in $(seq 1 100); do
    curl -fs "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fs "$base/readyz" >/dev/null
  # A member the document's examples name (m-1001), with a purchase, so that reads answer 200
  # and their answers are checked against their schemas, not only the 404s.
  post() { curl -fs -X POST "$base$1" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d "$3" >/dev/null; }
  post /v1/members demo-app-key "{\"member_id\":\"m-1001\",\"occurred_at\":\"$(now)\"}"
  post /v1/purchases demo-terminal-key "{\"member_id\":\"m-1001\",\"transaction_id\":\"seed-1\",\"store\":\"paris-marais\",\"terminal\":\"t1\",\"occurred_at\":\"$(now)\",\"currency\":\"EUR\",\"lines\":[{\"sku\":\"s1\",\"category\":\"coffee\",\"amount\":\"12.50\"}]}"
  if [ "$who" = member ]; then
    key="$(curl -fs -X POST "$base/v1/tokens" -H 'Authorization: Bearer demo-issuer-key' \
      -H 'Content-Type: application/json' -d '{"member_id":"m-1001"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
  else
    key="demo-$who-key"
  fi
  if SCHEMATHESIS_HOOKS=tests/contract/hooks.py "$VENV/bin/st" --config-file tests/contract/schemathesis.toml run "$base/v1/openapi.json" \
      --checks all --header "Authorization: Bearer $key" \
      --max-examples "$EXAMPLES" --seed 20261129 --no-color \
      >"$OUT/$who.txt" 2>&1; then
    echo 0 >"$OUT/$who.status"
  fi
}
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

JOBS="${CONTRACT_JOBS:-2}"
ROLES="admin terminal app support auditor analyst issuer member"
echo "contract: schemathesis $SCHEMATHESIS_VERSION, $EXAMPLES examples per operation, roles $ROLES, $JOBS at a time, a server each"
rm -f "$OUT"/*.status
# An interrupted run stops its role jobs (each stops its own server).
trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT
for who in $ROLES; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_role "$who" &
done
wait

failed=0
for who in $ROLES; do
  if [ "$(cat "$OUT/$who.status" 2>/dev/null)" != 0 ]; then
    failed=1
    echo "contract: failures as $who (target/contract/$who.txt):"
    grep -E "^_{3,} |^- ST|^====" "$OUT/$who.txt" | head -60 || true
  fi
  echo "contract: as $who: $(tail -n 1 "$OUT/$who.txt" 2>/dev/null || echo 'no report (see target/contract/server-'"$who"'.log)')"
done
exit "$failed"
