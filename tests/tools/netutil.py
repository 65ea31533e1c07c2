"""Small network helpers for the test runner: pick free loopback ports, wait for servers.

Kept in Python (standard library only) because a fresh Debian machine has no curl/nc, and
both need to behave the same on every machine the suite runs on.

Usage:
    python netutil.py free-port
    python netutil.py wait-http URL [--timeout SECONDS] [--pid PID]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """Ask the kernel for an unused port on 127.0.0.1 (only loopback is ever bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_http(url: str, timeout: float, pid: int | None) -> int:
    """Poll until the server answers any HTTP status.

    A 4xx/5xx answer still proves the server is up, so only connection-level failures count as
    "not ready". When `pid` is given, stop early if that process has died, so a server that
    crashed at start-up fails the run in seconds instead of after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while time.monotonic() < deadline:
        if pid is not None and not process_alive(pid):
            print(f"wait-http: process {pid} exited before {url} answered", file=sys.stderr)
            return 2
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read(1)
            return 0
        except urllib.error.HTTPError:
            return 0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            last_error = str(err)
        time.sleep(0.2)
    print(f"wait-http: {url} did not answer within {timeout:.0f}s (last error: {last_error})", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("free-port")
    wait = sub.add_parser("wait-http")
    wait.add_argument("url")
    wait.add_argument("--timeout", type=float, default=60.0)
    wait.add_argument("--pid", type=int, default=None)
    args = parser.parse_args()

    if args.command == "free-port":
        print(free_port())
        return 0
    return wait_http(args.url, args.timeout, args.pid)


if __name__ == "__main__":
    sys.exit(main())
