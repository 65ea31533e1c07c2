#!/usr/bin/env bash
# The project's single test command. On a fresh machine it installs the pinned Python tools,
# starts the local servers the tests need, builds everything and runs the whole suite:
#
#   1. Python tools  tests/.venv (moto, Delta/Parquet readers, cognite-sdk 8) and
#                    tests/.venv-sdk7 (cognite-sdk 7.8x) and tests/.venv-sam (aws-sam-cli),
#                    pinned in tests/tools/
#   2. moto server   S3 + Secrets Manager on 127.0.0.1 for the Rust integration tests
#   3. cargo build   --workspace --all-targets
#   4. cargo test    --workspace
#   5. lambda        template.yaml: cfn-lint, `sam validate --lint` and the rendered-template
#                    checks (tests/tools/test_template.py, offline SAM translator); both
#                    Lambda functions under `cargo lambda watch`, invoked with events/
#                    (tests/tools/lambda-roundtrip.sh)
#   6. interop       the official Cognite Python SDK (8.x, then 7.8x) against a fresh
#                    cdf-emulator each (tests/interop, pytest)
#
# Usage: bash tests/run-all.sh [--quick] [--no-install] [--run COMMAND...]
#   --quick       skip the SDK interop runs and the Lambda round trip
#   --no-install  use the existing virtual environments as they are (no pip)
#   --run         set up the tools and servers of steps 1-2, run only COMMAND in that
#                 environment (everything after --run), stop the servers; for example
#                 --run cargo test --test integration chaos_long -- --ignored --nocapture
#
# What cargo test gets in its environment:
#   CDF_S3_TEST_S3_ENDPOINT           moto's URL (S3); AWS_ENDPOINT_URL_SECRETS_MANAGER (the AWS
#                                     SDKs' name) and AWS_ENDPOINT_URL_SECRETSMANAGER are the same
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION   testing / testing / us-east-1
#   CDF_S3_TEST_PYTHON                tests/.venv's python: deltalake, duckdb, pyarrow
#   CDF_S3_TEST_DUCKDB_EXTENSION_DIR  SET extension_directory for LOAD delta / httpfs / aws
#
# Every server binds 127.0.0.1 only and is stopped on exit, also on failure or Ctrl-C. Server
# logs go to target/test-logs/ and their tails are printed when the run fails. The exit status
# is non-zero when any step failed.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTS_ROOT="$REPO_ROOT/tests"
# shellcheck source=tests/tools/lib.sh
source "$TESTS_ROOT/tools/lib.sh"

# The header comment above, up to the first line of code.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; }

QUICK=0
SETUP_ARGS=()
RUN_COMMAND=()
while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --run)
            shift
            RUN_COMMAND=("$@")
            (($#)) || { log_error "--run needs a command"; exit 2; }
            break
            ;;
        --no-install) SETUP_ARGS=(--no-install) ;;
        -h | --help) usage; exit 0 ;;
        *) log_error "unknown argument: $1"; usage >&2; exit 2 ;;
    esac
    shift
done

cd "$REPO_ROOT"
LOG_DIR="$REPO_ROOT/target/test-logs"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

MAIN_VENV="$TESTS_ROOT/.venv"
SDK7_VENV="$TESTS_ROOT/.venv-sdk7"
SAM_VENV="$TESTS_ROOT/.venv-sam"
EMULATOR_BIN="$REPO_ROOT/target/debug/cdf-emulator"
RUN_STARTED=$SECONDS

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()

on_exit() {
    local status=$?
    trap - EXIT
    stop_all_background
    if ((status != 0)) && ((${#BG_LOGS[@]} > 0)); then
        print_background_logs 150
    fi
    exit "$status"
}
trap on_exit EXIT
trap 'log_error "interrupted"; exit 130' INT
trap 'log_error "terminated"; exit 143' TERM

# run_step NAME COMMAND...: run one step, record PASS/FAIL and go on with the next one.
run_step() {
    local name=$1 started=$SECONDS
    shift
    log_step "$name"
    if "$@"; then
        STEP_RESULTS+=(PASS)
    else
        STEP_RESULTS+=(FAIL)
        log_error "step failed: $name"
    fi
    STEP_NAMES+=("$name")
    STEP_SECONDS+=($((SECONDS - started)))
}

skip_step() {
    local name=$1 reason=$2
    log_step "$name"
    log_info "skipped: $reason"
    STEP_NAMES+=("$name")
    STEP_RESULTS+=(SKIP)
    STEP_SECONDS+=(0)
}

last_step_passed() { [[ ${STEP_RESULTS[${#STEP_RESULTS[@]} - 1]} == PASS ]]; }

setup_python() {
    bash "$TESTS_ROOT/tools/setup-python.sh" "${SETUP_ARGS[@]}"
}

# Starts moto (S3 + Secrets Manager) and exports what the Rust tests read to find it. AWS
# settings are pinned here so a developer's own profile or IMDS is never consulted.
start_moto() {
    local port
    port=$(free_port) || return 1
    start_background moto "$LOG_DIR/moto-server.log" "$MAIN_VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
    wait_http "http://127.0.0.1:$port/moto-api/" 60 "$BG_PID" || return 1
    log_info "moto answers on http://127.0.0.1:$port"

    export CDF_S3_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export AWS_ENDPOINT_URL_SECRETSMANAGER="http://127.0.0.1:$port"
    export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=testing
    export AWS_SECRET_ACCESS_KEY=testing
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true
    export AWS_CONFIG_FILE="$LOG_DIR/no-aws-config"
    export AWS_SHARED_CREDENTIALS_FILE="$LOG_DIR/no-aws-credentials"
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
}

export_python_readers() {
    # Tests that need the S3 server or the Python readers fail instead of skipping when
    # run from here, so a broken setup can never pass as "nothing to check".
    export CDF_S3_TEST_REQUIRE_ALL=1
    export CDF_S3_TEST_PYTHON="$MAIN_VENV/bin/python"
    # DuckDB loads delta/httpfs/aws from the duckdb-ext-* wheels; it cannot download them here.
    CDF_S3_TEST_DUCKDB_EXTENSION_DIR=$("$CDF_S3_TEST_PYTHON" -c \
        'import os, sysconfig; print(os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions"))')
    export CDF_S3_TEST_DUCKDB_EXTENSION_DIR
    log_info "CDF_S3_TEST_PYTHON=$CDF_S3_TEST_PYTHON"
}

cargo_build() {
    cargo build --workspace --all-targets
}

cargo_test() {
    cargo test --workspace 2>&1 | tee "$LOG_DIR/cargo-test.log"
}

# run_interop LABEL VENV: a fresh emulator, the interop checks against it with VENV's SDK, stop.
run_interop() {
    local label=$1 venv=$2 port ready base_url token_url project pid status=0
    local client_id="interop-client-$label"
    local client_secret
    client_secret="secret-$RANDOM$RANDOM$RANDOM"

    if [[ ! -x $EMULATOR_BIN ]]; then
        log_error "$EMULATOR_BIN was not built (cargo build failed?)"
        return 1
    fi
    port=$(free_port) || return 1
    start_background "cdf-emulator ($label)" "$LOG_DIR/emulator-$label.log" "$EMULATOR_BIN" \
        --addr "127.0.0.1:$port" --project interop-project \
        --client-id "$client_id" --client-secret "$client_secret"
    pid=$BG_PID
    ready=$(wait_for_line "$LOG_DIR/emulator-$label.log" 'cdf-emulator listening' 60 "$pid") || {
        stop_background "$pid"
        return 1
    }
    if [[ $ready =~ base_url=([^[:space:]]+) ]]; then base_url=${BASH_REMATCH[1]}; else base_url=; fi
    if [[ $ready =~ token_url=([^[:space:]]+) ]]; then token_url=${BASH_REMATCH[1]}; else token_url=; fi
    if [[ $ready =~ project=([^[:space:]]+) ]]; then project=${BASH_REMATCH[1]}; else project=; fi
    if [[ -z $base_url || -z $token_url || -z $project ]]; then
        log_error "cannot parse base_url/token_url/project from the emulator's ready line: $ready"
        stop_background "$pid"
        return 1
    fi
    log_info "emulator ready: base_url=$base_url project=$project"

    CDF_EMULATOR_BASE_URL=$base_url CDF_EMULATOR_TOKEN_URL=$token_url CDF_EMULATOR_PROJECT=$project \
        CDF_EMULATOR_CLIENT_ID=$client_id CDF_EMULATOR_CLIENT_SECRET=$client_secret \
        "$venv/bin/python" -m pytest "$TESTS_ROOT/interop" -p no:cacheprovider -v -rfExX --tb=short \
        --junitxml="$LOG_DIR/interop-$label.xml" || status=$?

    local requests_log="$LOG_DIR/emulator-$label-requests.json"
    if ((status != 0)); then
        "$HOST_PYTHON" "$TOOLS_DIR/emulator_requests.py" "$base_url" "$requests_log" --print-failures || true
        log_error "interop checks with $label failed (pytest exit $status); emulator request log: $requests_log"
    else
        "$HOST_PYTHON" "$TOOLS_DIR/emulator_requests.py" "$base_url" "$requests_log" || true
    fi
    stop_background "$pid"
    return "$status"
}

cfn_lint() {
    "$MAIN_VENV/bin/cfn-lint" "$REPO_ROOT/template.yaml"
}

# sam validate --lint and the SAM translator work offline; a region is all they need, and no
# AWS profile or credentials are read.
template_checks() {
    local status=0
    (
        export AWS_DEFAULT_REGION=eu-west-1 AWS_REGION=eu-west-1 SAM_CLI_TELEMETRY=0
        cd "$REPO_ROOT"
        "$SAM_VENV/bin/sam" validate --lint --template template.yaml
    ) || status=$?
    AWS_DEFAULT_REGION=eu-west-1 "$SAM_VENV/bin/python" -m pytest "$TOOLS_DIR/test_template.py" \
        -p no:cacheprovider -v -rfE --tb=short --junitxml="$LOG_DIR/template.xml" || status=$?
    return "$status"
}

lambda_roundtrip() {
    bash "$TOOLS_DIR/lambda-roundtrip.sh"
}

sdk_label() {
    "$1/bin/python" -c 'import cognite.client; print("cognite-sdk-" + cognite.client.__version__)' 2>/dev/null \
        || echo "cognite-sdk-unknown"
}

print_summary() {
    local i failed=() skipped=0 total=${#STEP_NAMES[@]}
    printf '\n==================== run-all summary ====================\n'
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-4s  %-40s %5ss\n' "${STEP_RESULTS[$i]}" "${STEP_NAMES[$i]}" "${STEP_SECONDS[$i]}"
        case ${STEP_RESULTS[$i]} in
            FAIL) failed+=("${STEP_NAMES[$i]}") ;;
            SKIP) skipped=$((skipped + 1)) ;;
        esac
    done
    local elapsed=$((SECONDS - RUN_STARTED))
    if ((${#failed[@]} == 0)); then
        printf 'run-all: OK - %d of %d steps succeeded, %d skipped, in %ss\n' \
            "$((total - skipped))" "$total" "$skipped" "$elapsed"
        return 0
    fi
    local joined
    joined=$(printf '%s; ' "${failed[@]}")
    printf 'run-all: FAILED - %d of %d steps failed (%s) in %ss; logs in %s\n' \
        "${#failed[@]}" "$total" "${joined%; }" "$elapsed" "${LOG_DIR#"$REPO_ROOT"/}"
    return 1
}

HOST_PYTHON=$(find_host_python)

run_step "python tools" setup_python
if ! last_step_passed; then
    print_summary || true
    exit 1
fi
export_python_readers
run_step "moto server (S3 + Secrets Manager)" start_moto
if ! last_step_passed; then
    print_summary || true
    exit 1
fi

if ((${#RUN_COMMAND[@]})); then
    run_step "${RUN_COMMAND[*]}" "${RUN_COMMAND[@]}"
    print_summary
    exit $?
fi

run_step "cargo build --workspace --all-targets" cargo_build
BUILT=0
if last_step_passed; then
    BUILT=1
fi
if ((BUILT)); then
    run_step "cargo test --workspace" cargo_test
else
    skip_step "cargo test --workspace" "the build failed"
fi

run_step "cfn-lint template.yaml" cfn_lint
if [[ -x $SAM_VENV/bin/sam ]]; then
    run_step "template: sam validate --lint, rendered-template checks" template_checks
else
    skip_step "template: sam validate --lint, rendered-template checks" "no $SAM_VENV (--no-install)"
fi
if ((QUICK)); then
    skip_step "lambda round trip (cargo lambda)" "--quick"
elif ((BUILT)); then
    run_step "lambda round trip (cargo lambda)" lambda_roundtrip
else
    skip_step "lambda round trip (cargo lambda)" "the build failed"
fi

if ((QUICK)); then
    skip_step "interop (Cognite Python SDK)" "--quick"
else
    run_step "interop $(sdk_label "$MAIN_VENV")" run_interop sdk8 "$MAIN_VENV"
    run_step "interop $(sdk_label "$SDK7_VENV")" run_interop sdk7 "$SDK7_VENV"
fi

print_summary
