#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against the served OpenAPI document of a real server
# (embedded backend). Zero server errors and zero schema violations allowed.
# positive_data_acceptance (a schema-valid request is accepted) has a run of its own,
# without the operations whose business rules refuse some schema-valid requests on
# purpose (an expiry in the past, an audience not configured).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check schemathesis==4.32.5
ST=$(python3 -c 'import shutil, sys, os; p = shutil.which("st") or os.path.join(os.path.dirname(sys.executable), "st"); print(p)')

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKENMINT_BIND="127.0.0.1:$port" \
TOKENMINT_DATABASE_URL="sqlite://$work/st.db" \
TOKENMINT_BOOTSTRAP_ADMIN="admin:schemathesis-admin-password" \
TOKENMINT_LOGIN_MAX_FAILURES=1000000 TOKENMINT_LOGIN_MAX_FAILURES_PER_IP=1000000 \
TOKENMINT_TICKET_AUDIENCES="wss://agents.example" \
TOKENMINT_LOG=warn \
  target/debug/tokenmint >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('$base/healthz')" 2>/dev/null && break
  sleep 0.1
done

# An API key with scope admin: a bearer token could be revoked by the fuzzer's own logout.
new_key() {
  python3 - "$base" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
def post(path, body, headers={}):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json", **headers})
    return json.load(urllib.request.urlopen(req))
token = post("/api/login", {"username": "admin", "password": "schemathesis-admin-password"})["access_token"]
print(post("/api/admin/api-keys", {"name": "schemathesis", "scopes": ["admin"]}, {"authorization": "Bearer " + token})["key"])
PY
}
key=$(new_key)

# The operations that can take the fuzzer's own key away run last, each with a key of
# its own: it lists keys and users, so it finds its key and the admin who owns it, and once it
# has disabled either (or taken the admin's role), every later call of its run is a 401
# that tests nothing.
ENDING=('POST /api/admin/api-keys/{id}/disable' 'DELETE /api/admin/api-keys/{id}'
        'PATCH /api/admin/users/{id}' 'DELETE /api/admin/users/{id}')
KEY_KEEPING=()
for name in "${ENDING[@]}"; do
  KEY_KEEPING+=(--exclude-name "$name")
done

timeout 900 "$ST" run "$base/api-docs/openapi.json" \
  -H "X-API-Key: $key" "${KEY_KEEPING[@]}" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples 30 --seed 1 --no-color

# What the document accepts, the server accepts (the check left out above): the
# document states the parsers' rules. Left out here: the operations with a rule no schema
# states (a past expiry, `client_credentials` for a public client when creating or
# changing one, a ticket audience not configured, an unknown refresh token), and those
# that can end the key.
timeout 600 "$ST" --config-file .ci/schemathesis-acceptance.toml run "$base/api-docs/openapi.json" \
  -H "X-API-Key: $key" "${KEY_KEEPING[@]}" \
  --exclude-name 'POST /api/admin/api-keys' --exclude-name 'POST /api/admin/clients' \
  --exclude-name 'PATCH /api/admin/clients/{client_id}' \
  --exclude-name 'POST /api/tickets' --exclude-name 'POST /oauth/token' \
  --checks positive_data_acceptance \
  --max-examples 30 --seed 1 --no-color

# Still the fuzzer's: a run whose key was taken away partway would pass on 401s.
python3 - "$base" "$key" <<'PY' || { echo "schemathesis's API key no longer works after its run" >&2; exit 1; }
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/api/admin/api-keys?limit=1", headers={"x-api-key": sys.argv[2]}))
PY

# The routes of a user's own sessions take a bearer access token of a session (an API key
# is no session, so above they only met 401): again with one. The fuzzer cannot end this
# session: it does not know its id, and revoke-others keeps the current one.
token=$(python3 - "$base" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
req = urllib.request.Request(base + "/api/login", json.dumps({"username": "admin", "password": "schemathesis-admin-password"}).encode(), {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["access_token"])
PY
)
timeout 300 "$ST" run "$base/api-docs/openapi.json" \
  -H "Authorization: Bearer $token" \
  --include-tag sessions \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples 30 --seed 1 --no-color

# Each operation that can end the key: alone, with a fresh key.
for name in "${ENDING[@]}"; do
  timeout 300 "$ST" run "$base/api-docs/openapi.json" \
    -H "X-API-Key: $(new_key)" --include-name "$name" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples 30 --seed 1 --no-color
done
