#!/usr/bin/env bash
# Creates or refreshes the Python environments the test suite uses:
#   tests/.venv       moto server, Delta/Parquet readers, DuckDB, cognite-sdk 8.x, cfn-lint, pytest
#   tests/.venv-sdk7  cognite-sdk 7.8x + pytest, for the second SDK interop run
#   tests/.venv-sam   aws-sam-cli (SAM translator, cfn-lint) + pytest, for the template checks
# Re-running is cheap: each environment keeps a hash of its requirements and skips pip when
# nothing changed. Pass --no-install to only check that both environments exist.
set -euo pipefail

TESTS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/tools/lib.sh
source "$TESTS_ROOT/tools/lib.sh"

mode=install
case "${1:-}" in
    "") ;;
    --no-install) mode=--no-install ;;
    *) log_error "unknown argument: $1 (expected --no-install or nothing)"; exit 2 ;;
esac

HOST_PYTHON=$(find_host_python)
ensure_venv "$TESTS_ROOT/.venv" "$TOOLS_DIR/requirements.txt" "$TOOLS_DIR/constraints.txt" "$mode"
ensure_venv "$TESTS_ROOT/.venv-sdk7" "$TOOLS_DIR/requirements-sdk7.txt" "$TOOLS_DIR/constraints-sdk7.txt" "$mode"
# Newer than the other two: with --no-install a missing one only skips the template checks.
if [[ $mode != --no-install || -d $TESTS_ROOT/.venv-sam ]]; then
    ensure_venv "$TESTS_ROOT/.venv-sam" "$TOOLS_DIR/requirements-sam.txt" "$TOOLS_DIR/constraints-sam.txt" "$mode"
else
    log_warn "$TESTS_ROOT/.venv-sam does not exist (--no-install): the template checks are skipped"
fi
