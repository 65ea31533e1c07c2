# shellcheck shell=bash
# Helpers shared by tests/run-all.sh and tests/tools/*.sh: logging, loopback ports, background
# servers with logs, and Python virtual environments pinned by a requirements hash.
#
# Callers must set TESTS_ROOT (the repository's tests/ directory) before sourcing this file.
# Every function returns non-zero on failure instead of exiting, because the runner calls them
# inside `if` (where `set -e` is suspended) to keep going and report every failing step.

: "${TESTS_ROOT:?set TESTS_ROOT to the tests directory of the repository}"
TOOLS_DIR="$TESTS_ROOT/tools"

log_step() { printf '\n==> %s\n' "$*"; }
log_info() { printf '    %s\n' "$*"; }
log_warn() { printf 'run-all: warning: %s\n' "$*" >&2; }
log_error() { printf 'run-all: error: %s\n' "$*" >&2; }

# --- Python interpreters ----------------------------------------------------------------------

# The interpreter used to create the virtual environments. The pinned wheels (pyarrow,
# deltalake) need Python >= 3.10; PYTHON overrides the search.
find_host_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.11 python3.12 python3.13 python3.10 python3; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    log_error "no Python >= 3.10 found (set PYTHON=/path/to/python3)"
    return 1
}

free_port() {
    "$HOST_PYTHON" "$TOOLS_DIR/netutil.py" free-port
}

# wait_http URL TIMEOUT [PID]: succeed once URL answers any HTTP status.
wait_http() {
    local url=$1 timeout=$2 pid=${3:-}
    if [[ -n $pid ]]; then
        "$HOST_PYTHON" "$TOOLS_DIR/netutil.py" wait-http "$url" --timeout "$timeout" --pid "$pid"
    else
        "$HOST_PYTHON" "$TOOLS_DIR/netutil.py" wait-http "$url" --timeout "$timeout"
    fi
}

# --- virtual environments -----------------------------------------------------------------------

requirements_hash() {
    local python=$1
    shift
    {
        "$python" -c 'import sys; print(sys.version)'
        cat "$@"
    } | sha256sum | cut -d' ' -f1
}

create_venv() {
    local venv=$1
    if "$HOST_PYTHON" -m venv "$venv"; then
        return 0
    fi
    # Debian splits ensurepip into python3-venv; install it when we are allowed to.
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        local minor
        minor=$("$HOST_PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        log_warn "python -m venv failed; installing python${minor}-venv with apt-get"
        rm -rf "$venv"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${minor}-venv" \
            && "$HOST_PYTHON" -m venv "$venv" && return 0
    fi
    log_error "could not create a virtual environment at $venv (on Debian: apt-get install python3-venv)"
    return 1
}

# ensure_venv VENV REQUIREMENTS CONSTRAINTS [--no-install]
# Creates VENV if needed and installs REQUIREMENTS pinned by CONSTRAINTS. A stamp file holding the
# hash of both files (and the interpreter version) makes re-runs skip pip entirely.
ensure_venv() {
    local venv=$1 requirements=$2 constraints=$3 mode=${4:-install}
    local stamp="$venv/.requirements.sha256" wanted

    if [[ $mode == --no-install ]]; then
        if [[ ! -x $venv/bin/python ]]; then
            log_error "$venv does not exist; run without --no-install once"
            return 1
        fi
        wanted=$(requirements_hash "$venv/bin/python" "$requirements" "$constraints") || return 1
        if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
            log_warn "$venv was installed from other requirements than $requirements (--no-install keeps it)"
        fi
        return 0
    fi

    if [[ -e $venv && ! -x $venv/bin/python ]] || { [[ -x $venv/bin/python ]] && ! "$venv/bin/python" -c '' 2>/dev/null; }; then
        log_warn "$venv is broken (interpreter missing or moved); recreating it"
        rm -rf "$venv"
    fi
    if [[ ! -x $venv/bin/python ]]; then
        log_info "creating $venv"
        create_venv "$venv" || return 1
    fi
    # Keep the environment out of git without touching the repository's .gitignore.
    [[ -f $venv/.gitignore ]] || printf '*\n' >"$venv/.gitignore"

    wanted=$(requirements_hash "$venv/bin/python" "$requirements" "$constraints") || return 1
    if [[ -f $stamp && $(cat "$stamp") == "$wanted" ]]; then
        log_info "$venv is up to date ($(basename "$requirements"))"
        return 0
    fi
    log_info "installing $(basename "$requirements") into $venv"
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off -q \
        -r "$requirements" -c "$constraints" || {
        log_error "pip install -r $requirements failed"
        return 1
    }
    printf '%s\n' "$wanted" >"$stamp"
}

# --- background servers -------------------------------------------------------------------------

BG_PIDS=()
BG_NAMES=()
BG_LOGS=()
BG_PID=

# start_background NAME LOGFILE COMMAND...: start COMMAND with all output in LOGFILE; sets BG_PID.
start_background() {
    local name=$1 logfile=$2
    shift 2
    : >"$logfile"
    "$@" >"$logfile" 2>&1 </dev/null &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
    BG_NAMES+=("$name")
    BG_LOGS+=("$logfile")
    log_info "started $name (pid $BG_PID, log ${logfile#"$REPO_ROOT"/})"
}

# stop_background PID: TERM, then KILL after 10 s. Only ever signals PIDs this script started.
stop_background() {
    local pid=$1 i
    for i in "${!BG_PIDS[@]}"; do
        [[ ${BG_PIDS[$i]} == "$pid" ]] || continue
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            local waited=0
            while kill -0 "$pid" 2>/dev/null && ((waited < 50)); do
                sleep 0.2
                waited=$((waited + 1))
            done
            if kill -0 "$pid" 2>/dev/null; then
                log_warn "${BG_NAMES[$i]} (pid $pid) ignored SIGTERM; killing it"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        wait "$pid" 2>/dev/null || true
        BG_PIDS[i]=
        return 0
    done
    return 0
}

stop_all_background() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        [[ -n $pid ]] && stop_background "$pid"
    done
    return 0
}

# print_background_logs [LINES]: the tail of every server log this run produced.
print_background_logs() {
    local lines=${1:-150} i
    for i in "${!BG_LOGS[@]}"; do
        local logfile=${BG_LOGS[$i]}
        [[ -f $logfile ]] || continue
        printf '\n----- %s: last %s lines of %s -----\n' "${BG_NAMES[$i]}" "$lines" "$logfile"
        tail -n "$lines" "$logfile"
    done
}

# wait_for_line LOGFILE REGEX TIMEOUT PID: print the first line of LOGFILE matching REGEX.
# Fails fast when PID exits first.
wait_for_line() {
    local logfile=$1 regex=$2 timeout=$3 pid=$4 line
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        line=$(grep -m1 -E -- "$regex" "$logfile" 2>/dev/null || true)
        if [[ -n $line ]]; then
            printf '%s\n' "$line"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log_error "process $pid exited before printing /$regex/ (see $logfile)"
            return 1
        fi
        sleep 0.2
    done
    log_error "no line matching /$regex/ in $logfile after ${timeout}s"
    return 1
}
