"""Runs a command in a pseudo-terminal, as a person at a terminal would, and presses Ctrl-C
once its output matches a pattern.

The command gets the terminal as its controlling terminal, so the Ctrl-C typed here reaches
it the way a keyboard's does: the terminal's line discipline sends SIGINT to its foreground
process group. Prints one JSON object on stdout:

    {"status": <exit code, or -signal>, "interrupted": bool, "timed_out": bool,
     "output": "<everything the command wrote to its terminal>",
     "before_interrupt": {"status": int, "output": "..."} or null}

With --before-interrupt, that shell command runs (outside the terminal) once the pattern
matched and before Ctrl-C is typed: to use what the command left running.

usage: pty_interrupt.py --wait-for REGEX [--timeout SECONDS] [--before-interrupt SHELL]
                        -- COMMAND [ARG...]
"""

import argparse
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait-for", required=True, help="regex on the output")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--before-interrupt", default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    pattern = re.compile(args.wait_for)

    pid, master = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)

    output = b""
    interrupted = False
    timed_out = False
    before = None
    deadline = time.monotonic() + args.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([master], [], [], min(left, 1.0))
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if not interrupted and pattern.search(output.decode("utf-8", "replace")):
            if args.before_interrupt is not None:
                ran = subprocess.run(
                    ["sh", "-c", args.before_interrupt],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=max(deadline - time.monotonic(), 1.0),
                )
                before = {
                    "status": ran.returncode,
                    "output": ran.stdout.decode("utf-8", "replace"),
                }
            os.write(master, b"\x03")
            interrupted = True
    _, wait_status = os.waitpid(pid, 0)
    if os.WIFEXITED(wait_status):
        status = os.WEXITSTATUS(wait_status)
    else:
        status = -os.WTERMSIG(wait_status)
    json.dump(
        {
            "status": status,
            "interrupted": interrupted,
            "timed_out": timed_out,
            "output": output.decode("utf-8", "replace"),
            "before_interrupt": before,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
