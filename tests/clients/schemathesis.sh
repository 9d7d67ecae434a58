#!/usr/bin/env bash
# Runs schemathesis against a running regserve, with the server's own /openapi.json: every
# answer must be no 5xx, and its status, content type and body must be the ones the document
# gives (the four checks below). Bounded by --max-examples cases per operation (MAX_EXAMPLES,
# default 30): about 25 s on 2 cores. (--max-time is no bound: it repeats fuzzing until spent.)
#
# Usage: tests/clients/schemathesis.sh BASE_URL [more schemathesis options]
#   PYTHON   the python with schemathesis 4 (default $REGSERVE_TEST_PYTHON, else python3)
#   TOKEN    a bearer token to send, for a server started with --admin-token/--read-token
#
# Run it against a throwaway server: it calls the state-changing routes too (it trains,
# activates, cancels, appends and clears rows, replaces the triggers, uploads datasets), which
# is what they are for and what the document describes.
set -euo pipefail

base=${1:?usage: $0 BASE_URL [schemathesis options]}
shift
python=${PYTHON:-${REGSERVE_TEST_PYTHON:-python3}}
auth=()
if [[ -n ${TOKEN:-} ]]; then
    auth=(--header "Authorization: Bearer $TOKEN")
fi

# Not exercised, because schemathesis cannot judge them:
# - GET /v1/models/events and GET /v1/jobs/{id}/events are Server-Sent Events streams: they
#   do not end while the server runs, so a request never gets a whole answer to check.
# - GET /v1/data/ws and GET /v1/predict/ws are WebSocket upgrades: schemathesis speaks plain HTTP requests, and the
#   frames (the part that matters) are outside what OpenAPI describes.
exec "$python" -m schemathesis.cli run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /v1/models/events \
    --exclude-path '/v1/jobs/{id}/events' \
    --exclude-path /v1/data/ws \
    --exclude-path /v1/predict/ws \
    --phases examples,coverage,fuzzing \
    --max-examples "${MAX_EXAMPLES:-30}" \
    --request-timeout 30 \
    --workers 2 \
    --generation-database none \
    --no-color \
    "${auth[@]}" \
    "$@"
