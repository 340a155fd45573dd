#!/usr/bin/env bash
# The contract run: schemathesis (pinned, from PyPI, in a virtual environment this script makes
# under target/) against a server this script starts on a fresh embedded store, with every
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

DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
# The run creates webhook endpoints with whatever URLs the generator makes up: this server
# checks and stores them but delivers nothing (webhooks.enabled = false), so no request ever
# leaves for a host the generator named. The shipped settings refuse private targets as well.
LOYALTY_STORE__PATH="$DATA/loyalty.sqlite" \
LOYALTY_SERVER__LISTEN="127.0.0.1:$PORT" \
LOYALTY_WEBHOOKS__ENABLED=false \
  target/debug/loyalty serve >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT

for _ in $(seq 1 100); do
  curl -fs "$BASE/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "$BASE/readyz" >/dev/null

# A member the document's examples name (m-1001), with a purchase, so that reads answer 200
# and their answers are checked against their schemas, not only the 404s.
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
post() { curl -fs -X POST "$BASE$1" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d "$3" >/dev/null; }
post /v1/members demo-app-key "{\"member_id\":\"m-1001\",\"occurred_at\":\"$(now)\"}"
post /v1/purchases demo-terminal-key "{\"member_id\":\"m-1001\",\"transaction_id\":\"seed-1\",\"store\":\"paris-marais\",\"terminal\":\"t1\",\"occurred_at\":\"$(now)\",\"currency\":\"EUR\",\"lines\":[{\"sku\":\"s1\",\"category\":\"coffee\",\"amount\":\"12.50\"}]}"
TOKEN="$(curl -fs -X POST "$BASE/v1/tokens" -H 'Authorization: Bearer demo-issuer-key' \
  -H 'Content-Type: application/json' -d '{"member_id":"m-1001"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

# Each role is its own schemathesis process against the one server, CONTRACT_JOBS of them at a
# time (2: schemathesis is one Python thread, and this machine has two cores); their reports
# are printed in the roles' order once all have finished.
JOBS="${CONTRACT_JOBS:-2}"
run_role() {
  local who=$1 key
  if [ "$who" = member ]; then key="$TOKEN"; else key="demo-$who-key"; fi
  if SCHEMATHESIS_HOOKS=tests/contract/hooks.py "$VENV/bin/st" --config-file tests/contract/schemathesis.toml run "$BASE/v1/openapi.json" \
      --checks all --header "Authorization: Bearer $key" \
      --max-examples "$EXAMPLES" --seed 20261129 --no-color \
      >"$OUT/$who.txt" 2>&1; then
    echo 0 >"$OUT/$who.status"
  else
    echo 1 >"$OUT/$who.status"
  fi
}
ROLES="admin terminal app support auditor analyst issuer member"
echo "contract: schemathesis $SCHEMATHESIS_VERSION, $EXAMPLES examples per operation, roles $ROLES, $JOBS at a time"
rm -f "$OUT"/*.status
for who in $ROLES; do
  # The server is a job of this shell too: only the roles' jobs count.
  while [ "$(jobs -rp | grep -cvx "$SERVER")" -ge "$JOBS" ]; do wait -n || true; done
  run_role "$who" &
done
for pid in $(jobs -rp | grep -vx "$SERVER"); do wait "$pid" || true; done

failed=0
for who in $ROLES; do
  if [ "$(cat "$OUT/$who.status" 2>/dev/null)" != 0 ]; then
    failed=1
    echo "contract: failures as $who (target/contract/$who.txt):"
    grep -E "^_{3,} |^- ST|^====" "$OUT/$who.txt" | head -60
  fi
  echo "contract: as $who: $(tail -n 1 "$OUT/$who.txt")"
done
exit "$failed"
