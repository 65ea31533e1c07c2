#!/usr/bin/env bash
# Creates or refreshes the Python environments the test suite uses:
#   tests/.venv       moto server, Delta/Parquet readers, DuckDB, cognite-sdk 8.x, cfn-lint, pytest
#   tests/.venv-sdk7  cognite-sdk 7.8x + pytest, for the second SDK interop run
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
