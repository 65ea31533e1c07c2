"""Measures a Lambda function binary's init time: from process start until it asks the
runtime API for its first event (`GET /2018-06-01/runtime/invocation/next`), which is the
moment Lambda's init phase ends. The runtime API is served here, on 127.0.0.1.

Usage: python lambda_init_time.py BINARY [--runs N]
The function's own environment (configuration, secret id, ...) is taken from this process.
"""

import argparse
import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

NEXT_PATH = "/2018-06-01/runtime/invocation/next"


class RuntimeApi(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.asked = threading.Event()
        self.asked_at = 0.0
        self.release = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == NEXT_PATH and not self.server.asked.is_set():
            self.server.asked_at = time.perf_counter()
            self.server.asked.set()
        # Hold the request (no event is ever sent) until the measurement is over.
        self.server.release.wait(30)
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


def measure(binary: str) -> float:
    api = RuntimeApi()
    server = threading.Thread(target=api.serve_forever, daemon=True)
    server.start()
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(binary),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
    })
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not api.asked.wait(60):
            raise SystemExit(f"{binary} did not ask for an event within 60 s")
        return (api.asked_at - started) * 1000.0
    finally:
        process.kill()
        process.wait()
        api.release.set()
        api.shutdown()
        api.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("binary")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times = [measure(args.binary) for _ in range(args.runs)]
    size_mb = os.path.getsize(args.binary) / (1024 * 1024)
    print(
        f"    {os.path.basename(args.binary)} ({size_mb:.1f} MiB): init "
        f"median {statistics.median(times):.1f} ms, min {min(times):.1f} ms, max {max(times):.1f} ms "
        f"over {len(times)} starts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
