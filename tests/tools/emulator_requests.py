"""Save a running cdf-emulator's request log and list the calls it did not answer with 2xx.

Used by tests/run-all.sh after the SDK interop checks: the saved log shows exactly which
method, path and query string the SDK sent, which is what a divergence report needs. The
emulator keeps the Authorization header only as "Bearer <redacted>".

Usage: python emulator_requests.py BASE_URL OUTPUT_JSON [--print-failures]
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base_url")
    parser.add_argument("output")
    parser.add_argument("--print-failures", action="store_true")
    args = parser.parse_args()

    try:
        with urllib.request.urlopen(f"{args.base_url.rstrip('/')}/__emulator/requests", timeout=10) as response:
            records = json.load(response).get("items", [])
    except (urllib.error.URLError, OSError, ValueError) as err:
        print(f"emulator_requests: could not read the request log: {err}", file=sys.stderr)
        return 1

    with open(args.output, "w", encoding="utf-8") as out:
        json.dump(records, out, indent=1, ensure_ascii=False)

    if args.print_failures:
        failed = [r for r in records if not 200 <= (r.get("status") or 0) < 300]
        print(
            f"cdf-emulator answered {len(failed)} of {len(records)} requests with a non-2xx status "
            "(the error-path checks expect some of these):"
        )
        for r in failed:
            query = f"?{r['query']}" if r.get("query") else ""
            print(f"  {r.get('status')} {r.get('method')} {r.get('path')}{query}  [{r.get('request_id')}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
