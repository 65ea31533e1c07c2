#!/usr/bin/env bash
# Runs both Lambda functions the way `cargo lambda` runs them locally, end to end:
#
#   1. a CDF emulator (its own client secret) seeded with a small model, an S3 bucket and a
#      Secrets Manager secret with the COGNITE_* variables on the moto server;
#   2. `cargo lambda watch` on 127.0.0.1 with the functions' environment (configuration file,
#      secret id, AWS endpoints);
#   3. `cargo lambda invoke` of cdf-s3-sync and cdf-s3-snapshot with the payloads in events/,
#      and one payload with an unknown key;
#   4. checks: the responses, the raw Delta table and the published Parquet file read back
#      with Python (deltalake, pyarrow), JSON log lines and EMF metrics in the function
#      output, and neither the client secret nor any access token anywhere in it;
#   5. init time of each function binary: process start to its first request for an event.
#
# Usage: bash tests/tools/lambda-roundtrip.sh
# Uses tests/.venv (cargo-lambda, ziglang, boto3, deltalake) and target/debug/cdf-emulator.
# Uses the moto server at CDF_S3_TEST_S3_ENDPOINT when set (tests/run-all.sh), else starts
# one. Everything binds 127.0.0.1 and is stopped on exit. Logs: target/test-logs/lambda/.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TESTS_ROOT="$REPO_ROOT/tests"
# shellcheck source=tests/tools/lib.sh
source "$TESTS_ROOT/tools/lib.sh"

VENV="$TESTS_ROOT/.venv"
PY="$VENV/bin/python"
EMULATOR_BIN="$REPO_ROOT/target/debug/cdf-emulator"
LOG_DIR="$REPO_ROOT/target/test-logs/lambda"
WORK_DIR=$(mktemp -d)
HOST_PYTHON=$(find_host_python)
WATCH_PGID=

cleanup() {
    local status=$?
    trap - EXIT
    if [[ -n $WATCH_PGID ]]; then
        # cargo lambda watch and the function processes it started share its process group.
        kill -TERM -- "-$WATCH_PGID" 2>/dev/null || true
        sleep 1
        kill -KILL -- "-$WATCH_PGID" 2>/dev/null || true
    fi
    stop_all_background
    if ((status != 0)) && ((${#BG_LOGS[@]} > 0)); then
        print_background_logs 60
    fi
    rm -rf "$WORK_DIR"
    exit "$status"
}
trap cleanup EXIT

fail() {
    log_error "lambda round trip: $*"
    exit 1
}

[[ -x $VENV/bin/cargo-lambda ]] || fail "$VENV has no cargo-lambda; run tests/tools/setup-python.sh"
[[ -x $EMULATOR_BIN ]] || fail "$EMULATOR_BIN is missing; run cargo build --workspace first"
# cargo-lambda finds zig through the venv's `python -m ziglang`.
export PATH="$VENV/bin:$PATH"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
cd "$REPO_ROOT"

# --- AWS side: moto ------------------------------------------------------------------------
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE="$WORK_DIR/no-aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK_DIR/no-aws-credentials"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
if [[ -z ${CDF_S3_TEST_S3_ENDPOINT:-} ]]; then
    port=$(free_port)
    start_background moto "$LOG_DIR/moto.log" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
    wait_http "http://127.0.0.1:$port/moto-api/" 60 "$BG_PID" || fail "moto did not start"
    CDF_S3_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
fi
MOTO=$CDF_S3_TEST_S3_ENDPOINT
log_info "moto: $MOTO"

# --- CDF side: the emulator ------------------------------------------------------------------
CLIENT_ID="roundtrip-client"
CLIENT_SECRET="rt-secret-$(od -An -tx8 -N16 /dev/urandom | tr -d ' \n')"
port=$(free_port)
start_background cdf-emulator "$LOG_DIR/emulator.log" "$EMULATOR_BIN" --addr "127.0.0.1:$port" \
    --project roundtrip --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET"
ready=$(wait_for_line "$LOG_DIR/emulator.log" 'cdf-emulator listening' 60 "$BG_PID") || fail "emulator did not start"
[[ $ready =~ base_url=([^[:space:]]+) ]] && BASE_URL=${BASH_REMATCH[1]}
[[ $ready =~ token_url=([^[:space:]]+) ]] && TOKEN_URL=${BASH_REMATCH[1]}
[[ -n ${BASE_URL:-} && -n ${TOKEN_URL:-} ]] || fail "cannot read the emulator's ready line: $ready"

BUCKET="roundtrip-$(od -An -tx4 -N4 /dev/urandom | tr -d ' \n')"
SECRET_ID="cdf-s3-replicator/roundtrip/$BUCKET"
PUMPS=25

log_step "seed: model and $PUMPS pumps in the emulator, bucket $BUCKET and secret $SECRET_ID on moto"
BASE_URL=$BASE_URL TOKEN_URL=$TOKEN_URL MOTO=$MOTO BUCKET=$BUCKET SECRET_ID=$SECRET_ID PUMPS=$PUMPS \
    CLIENT_ID=$CLIENT_ID CLIENT_SECRET=$CLIENT_SECRET "$PY" - <<'PY'
import json, os, urllib.request
import boto3

base = os.environ["BASE_URL"]
def post(path, body):
    request = urllib.request.Request(f"{base}/__emulator/{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, (path, response.status)

S = "plant_schema"
props = {"tag": {"type": {"type": "text"}, "nullable": False}, "ratedKw": {"type": {"type": "float64"}}}
view = {"type": "view", "space": S, "externalId": "Pump", "version": "1"}
post("schema", {
    "spaces": [{"space": S}, {"space": "plant_data"}],
    "containers": [{"space": S, "externalId": "PumpC", "properties": props, "usedFor": "node"}],
    "views": [{"space": S, "externalId": "Pump", "version": "1", "properties": {
        name: {"container": {"type": "container", "space": S, "externalId": "PumpC"},
               "containerPropertyIdentifier": name} for name in props}}],
    "dataModels": [{"space": S, "externalId": "PlantModel", "version": "1", "views": [view]}],
})
pumps = int(os.environ["PUMPS"])
post("instances", {"items": [
    {"instanceType": "node", "space": "plant_data", "externalId": f"pump-{p:03}",
     "sources": [{"source": view, "properties": {"tag": f"P-{p:03}", "ratedKw": 10.0 + p}}]}
    for p in range(pumps)]})

moto = os.environ["MOTO"]
boto3.client("s3", endpoint_url=moto).create_bucket(Bucket=os.environ["BUCKET"])
boto3.client("secretsmanager", endpoint_url=moto).create_secret(
    Name=os.environ["SECRET_ID"],
    SecretString=json.dumps({
        "COGNITE_BASE_URL": base, "COGNITE_PROJECT": "roundtrip", "COGNITE_TOKEN_URL": os.environ["TOKEN_URL"],
        "COGNITE_CLIENT_ID": os.environ["CLIENT_ID"], "COGNITE_CLIENT_SECRET": os.environ["CLIENT_SECRET"],
        "COGNITE_TOKEN_SCOPES": f"{base}/.default", "COGNITE_STATE_DB": "state",
        "COGNITE_STATE_TABLE": "streams", "COGNITE_EXTRACTION_PIPELINE": "roundtrip-replicator",
    }))
PY

# The configuration of the original README, with the S3 server as an S3-compatible store.
CONFIG="$WORK_DIR/config.yaml"
cat >"$CONFIG" <<EOF
cognite:
  host: \${COGNITE_BASE_URL}
  project: \${COGNITE_PROJECT}
  idp-authentication:
    token-url: \${COGNITE_TOKEN_URL}
    client-id: \${COGNITE_CLIENT_ID}
    secret: \${COGNITE_CLIENT_SECRET}
    scopes:
      - \${COGNITE_TOKEN_SCOPES}
  extraction-pipeline:
    external-id: \${COGNITE_EXTRACTION_PIPELINE}
extractor:
  state-store:
    raw:
      database: \${COGNITE_STATE_DB}
      table: \${COGNITE_STATE_TABLE}
  deadline-margin: 5
data_modeling:
  - space: plant_schema
    data_models:
      - external_id: PlantModel
destination:
  s3:
    bucket: \${AWS_S3_BUCKET}
    prefix: cdf-data
    region: us-east-1
    endpoint-url: $MOTO
    allow-http: true
EOF

# --- cargo lambda watch ------------------------------------------------------------------------
log_step "cargo lambda watch on 127.0.0.1"
port=$(free_port)
WATCH_LOG="$LOG_DIR/watch.log"
# The functions pin the destination to AWS_S3_BUCKET / S3_PREFIX, and accept the test
# server's endpoint only because the deployment's environment names it (AWS_ENDPOINT_URL_S3).
ENV_VARS="CDF_S3_CONFIG_PATH=$CONFIG,CDF_S3_SECRET_ID=$SECRET_ID,AWS_S3_BUCKET=$BUCKET,S3_PREFIX=cdf-data,AWS_ENDPOINT_URL_S3=$MOTO"
ENV_VARS+=",AWS_ENDPOINT_URL_SECRETS_MANAGER=$MOTO,AWS_LAMBDA_LOG_FORMAT=JSON,AWS_LAMBDA_LOG_LEVEL=DEBUG"
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --ignore-changes --timeout 300 \
    --env-vars "$ENV_VARS" >"$WATCH_LOG" 2>&1 </dev/null &
WATCH_PGID=$!
log_info "cargo lambda watch (pid $WATCH_PGID, log ${WATCH_LOG#"$REPO_ROOT"/})"
for _ in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$WATCH_PGID" 2>/dev/null || { tail -n 40 "$WATCH_LOG"; fail "cargo lambda watch exited"; }
    sleep 1
done

# invoke FUNCTION OUTPUT (--data-file FILE | --data-ascii JSON): the response, or the error, in OUTPUT.
invoke() {
    local function=$1 output=$2
    shift 2
    cargo lambda invoke "$function" --invoke-address 127.0.0.1 --invoke-port "$port" \
        --output-format json "$@" >"$output" 2>&1
}

check_json() {
    local file=$1 program=$2
    "$PY" - "$file" "$program" <<'PY' || { cat "$1"; fail "unexpected response in ${1##*/}"; }
import json, sys
path, program = sys.argv[1], sys.argv[2]
text = open(path).read()
start = text.find("{")
r = json.loads(text[start:]) if start >= 0 else None
exec(program, {"r": r, "text": text})
PY
}

# One line about a response: its figures without the per-stream details.
brief() {
    "$PY" - "$1" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
r = json.loads(text[text.find("{"):])
def figures(d):
    return ", ".join(f"{k}={v}" for k, v in d.items() if not isinstance(v, (list, dict)))
parts = [f"{k}: {figures(v)}" for k, v in r.items() if isinstance(v, dict)] or [figures(r)]
print("    " + "; ".join(parts))
PY
}

log_step "invoke cdf-s3-sync with events/sync-scheduled-event.json (first call builds the function)"
invoke cdf-s3-sync "$LOG_DIR/sync-scheduled.json" --data-file events/sync-scheduled-event.json ||
    { cat "$LOG_DIR/sync-scheduled.json"; tail -n 60 "$WATCH_LOG"; fail "sync invocation failed"; }
check_json "$LOG_DIR/sync-scheduled.json" "
assert r['streamsTotal'] == 1 and r['streamsCaughtUp'] == 1, r
assert r['rows'] == $PUMPS, r
"
brief "$LOG_DIR/sync-scheduled.json"

log_step "invoke cdf-s3-sync with events/sync-manual.json and events/sync-dry-run.json"
invoke cdf-s3-sync "$LOG_DIR/sync-manual.json" --data-file events/sync-manual.json ||
    { cat "$LOG_DIR/sync-manual.json"; fail "manual sync failed"; }
check_json "$LOG_DIR/sync-manual.json" "assert r['streamsCaughtUp'] == 1 and r['rows'] == 0, r"
brief "$LOG_DIR/sync-manual.json"
invoke cdf-s3-sync "$LOG_DIR/sync-dry-run.json" --data-file events/sync-dry-run.json ||
    { cat "$LOG_DIR/sync-dry-run.json"; fail "dry run failed"; }
check_json "$LOG_DIR/sync-dry-run.json" "assert r['streams'][0]['status'] == 'planned', r"

log_step "invoke cdf-s3-sync with an unknown payload key: a permanent error naming it"
if invoke cdf-s3-sync "$LOG_DIR/sync-bad-payload.txt" --data-ascii '{"view": ["Pump"]}'; then
    cat "$LOG_DIR/sync-bad-payload.txt"
    fail "a payload with an unknown key was accepted"
fi
grep -q 'Permanent.InvalidRequest' "$LOG_DIR/sync-bad-payload.txt" ||
    { cat "$LOG_DIR/sync-bad-payload.txt"; fail "the error type is not Permanent.InvalidRequest"; }
grep -q '`view`' "$LOG_DIR/sync-bad-payload.txt" ||
    { cat "$LOG_DIR/sync-bad-payload.txt"; fail "the error does not name the key"; }
"$PY" - "$LOG_DIR/sync-bad-payload.txt" <<'PY'
import re, sys
text = " ".join(open(sys.argv[1]).read().replace("\u2502", " ").replace("\u00d7", " ").split())
match = re.search(r"Permanent\.InvalidRequest.{0,160}", text)
print("    " + (match.group(0) if match else text[:200]))
PY

log_step "invoke cdf-s3-snapshot with events/snapshot-scheduled-event.json and events/snapshot-manual.json"
invoke cdf-s3-snapshot "$LOG_DIR/snapshot-scheduled.json" --data-file events/snapshot-scheduled-event.json ||
    { cat "$LOG_DIR/snapshot-scheduled.json"; tail -n 60 "$WATCH_LOG"; fail "snapshot invocation failed"; }
check_json "$LOG_DIR/snapshot-scheduled.json" "
s = r['snapshot']
assert s['viewsTotal'] == 1 and s['filesFailed'] == 0 and s['rows'] == $PUMPS, s
assert r['maintenance']['tablesFailed'] == 0, r['maintenance']
"
invoke cdf-s3-snapshot "$LOG_DIR/snapshot-manual.json" --data-file events/snapshot-manual.json ||
    { cat "$LOG_DIR/snapshot-manual.json"; fail "manual snapshot failed"; }
check_json "$LOG_DIR/snapshot-manual.json" "assert r['snapshot']['filesFailed'] == 0 and r['maintenance'] is not None, r"
brief "$LOG_DIR/snapshot-scheduled.json"

log_step "read back: raw Delta table (deltalake) and published Parquet file (pyarrow)"
MOTO=$MOTO BUCKET=$BUCKET PUMPS=$PUMPS "$PY" - <<'PY'
import io, json, os
import boto3, pyarrow.parquet as pq
from deltalake import DeltaTable

moto, bucket, pumps = os.environ["MOTO"], os.environ["BUCKET"], int(os.environ["PUMPS"])
options = {"AWS_ENDPOINT_URL": moto, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
raw = DeltaTable(f"s3://{bucket}/cdf-data/raw/plant_schema/PlantModel/1/views/Pump/nodes",
                 storage_options=options).to_pyarrow_table()
assert raw.num_rows == pumps, raw.num_rows
assert sorted(raw.column("externalId").to_pylist()) == [f"pump-{p:03}" for p in range(pumps)]
s3 = boto3.client("s3", endpoint_url=moto)
prefix = "cdf-data/publish/plant_schema/PlantModel/1/Pump/"
published = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=prefix + "nodes.parquet")["Body"].read()))
assert published.num_rows == pumps, published.num_rows
assert published.column("tag").to_pylist() == [f"P-{p:03}" for p in range(pumps)]
manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "_manifest.json")["Body"].read())
assert manifest["files"]["nodes"]["rows"] == pumps, manifest
print(f"    raw table: {raw.num_rows} rows; nodes.parquet: {published.num_rows} rows; manifest written")
PY

log_step "function output: JSON logs, EMF metrics, no secrets"
EXPECT_PUMPS=$PUMPS CLIENT_SECRET=$CLIENT_SECRET "$PY" - "$WATCH_LOG" <<'PY'
import json, os, re, sys
text = open(sys.argv[1], errors="replace").read()
secret = os.environ["CLIENT_SECRET"]
assert secret not in text, "the client secret appears in the function output"
tokens = re.findall(r"emu_[0-9a-f]{32}", text)
assert not tokens, f"access tokens appear in the function output: {tokens[:3]}"
records = []
for line in text.splitlines():
    start = line.find("{")
    if start < 0:
        continue
    try:
        records.append(json.loads(line[start:]))
    except ValueError:
        pass
summaries = [r for r in records if str(r.get("message", "")).startswith(("sync finished", "snapshot finished"))
             and r.get("target", "").startswith("cdf_s3_replicator::lambda")]
assert len(summaries) == 5, f"{len(summaries)} summary lines for 5 successful invocations"
assert all(r.get("level") == "INFO" and "requestId" in r.get("span", {}) for r in summaries), summaries[0]
emf = [r for r in records if "_aws" in r]
assert len(emf) == 4, f"{len(emf)} EMF lines for 4 invocations that did work (not the dry run)"
directives = [r["_aws"]["CloudWatchMetrics"][0] for r in emf]
assert all(d["Namespace"] == "CdfS3Replicator" and d["Dimensions"] == [["Function"]] for d in directives)
sync_rows = [r["Rows"] for r in emf if r["Function"] == "cdf-s3-sync"]
assert sync_rows == [int(os.environ["EXPECT_PUMPS"]), 0], sync_rows
failures = [r for r in records if r.get("error_type") == "Permanent.InvalidRequest"]
assert len(failures) == 1, failures
print(f"    {len(records)} JSON lines: {len(summaries)} summary lines, {len(emf)} EMF lines, 1 failure line; "
      "no client secret, no access token")
PY

# --- init time -------------------------------------------------------------------------------
log_step "init time: process start to the first request for an event (runtime API on loopback)"
for function in cdf-s3-sync cdf-s3-snapshot; do
    binary="$REPO_ROOT/target/debug/$function"
    [[ -x $binary ]] || fail "$binary was not built by cargo lambda watch"
    CDF_S3_CONFIG_PATH=$CONFIG CDF_S3_SECRET_ID=$SECRET_ID AWS_ENDPOINT_URL_SECRETS_MANAGER=$MOTO \
        "$HOST_PYTHON" "$TESTS_ROOT/tools/lambda_init_time.py" "$binary" --runs 5
done

log_step "lambda round trip: OK"
