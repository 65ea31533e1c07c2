"""Independent readers of a file published as a folder of parts, used by the Rust
integration tests.

For each comparison it reads the folder the way a BI user would (DuckDB `read_parquet` on
the folder's glob, a pyarrow dataset of the folder) and the reference the same way (one
`nodes.parquet`, or a saved copy of a folder), and compares them row for row. It checks
every part on its own (sorted by (space, externalId), one row per key, every row in the
part its documented hash names, computed here with an XXH64 written from the
specification) and cross-checks the live keys and versions with the raw Delta table's
latest rows in arrival order (log replay with pyarrow, row count checked by the Python
`deltalake` package; see arrival.py).

Usage: parts.py compare <request.json>   prints a JSON report on stdout

Request: {"storage_options": {...}, "comparisons": [
            {"name", "folder": <dir or s3:// URI of nodes/>,
             "reference": <file or folder, or null to check the folder alone>,
             "raw_table": <table URI or null>}]}
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import arrival  # noqa: E402  (the raw table's latest rows in arrival order)

MASK = (1 << 64) - 1
P1, P2, P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
P4, P5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & MASK


def _round(acc, lane):
    acc = (acc + lane * P2) & MASK
    return (_rotl(acc, 31) * P1) & MASK


def _merge(acc, value):
    acc ^= _round(0, value)
    return (acc * P1 + P4) & MASK


def xxh64(data, seed=0):
    """XXH64 as its specification defines it (github.com/Cyan4973/xxHash, doc/xxhash_spec.md)."""
    n, i = len(data), 0
    lane = lambda at, size: int.from_bytes(data[at:at + size], "little")  # noqa: E731
    if n >= 32:
        v = [(seed + P1 + P2) & MASK, (seed + P2) & MASK, seed & MASK, (seed - P1) & MASK]
        while i + 32 <= n:
            v = [_round(v[k], lane(i + 8 * k, 8)) for k in range(4)]
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & MASK
        for value in v:
            h = _merge(h, value)
    else:
        h = (seed + P5) & MASK
    h = (h + n) & MASK
    while i + 8 <= n:
        h ^= _round(0, lane(i, 8))
        h = (_rotl(h, 27) * P1 + P4) & MASK
        i += 8
    if i + 4 <= n:
        h ^= (lane(i, 4) * P1) & MASK
        h = (_rotl(h, 23) * P2 + P3) & MASK
        i += 4
    while i < n:
        h ^= (data[i] * P5) & MASK
        h = (_rotl(h, 11) * P1) & MASK
        i += 1
    h ^= h >> 33
    h = (h * P2) & MASK
    h ^= h >> 29
    h = (h * P3) & MASK
    h ^= h >> 32
    return h


assert xxh64(b"") == 0xEF46DB3751D8E999
assert xxh64(b"abc") == 0x44BC2CF5AD770999
assert xxh64(bytes(range(100))) == xxh64(bytes(range(100)))


def part_of(space, external_id, count):
    return xxh64(space.encode() + b"\0" + external_id.encode()) % count


PART = re.compile(r"part-(\d{5})-of-(\d{5})\.parquet$")


def duckdb_connection(options, s3):
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if s3:
        ext_dir = os.environ.get("CDF_S3_TEST_DUCKDB_EXTENSION_DIR")
        if ext_dir:
            con.execute(f"SET extension_directory = '{ext_dir}'")
        con.execute("LOAD httpfs")
        endpoint = options["AWS_ENDPOINT_URL"].split("://", 1)[1]
        con.execute(
            "CREATE SECRET s3 (TYPE s3, KEY_ID 'testing', SECRET 'testing', "
            f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")
    return con


def is_folder(uri):
    return not uri.endswith(".parquet")


def duckdb_rows(con, uri):
    source = f"{uri.rstrip('/')}/*.parquet" if is_folder(uri) else uri
    query = f"SELECT * FROM read_parquet('{source}') ORDER BY space, \"externalId\""
    table = con.execute(query).fetch_arrow_table()
    return table.schema, table.to_pylist()


def pyarrow_table(uri, options):
    import pyarrow.dataset as ds
    fs, path = arrival.filesystem(uri.rstrip("/"), options)
    if is_folder(uri):
        table = ds.dataset(path, format="parquet", filesystem=fs).to_table()
    else:
        import pyarrow.parquet as pq
        table = pq.read_table(path, filesystem=fs)
    return table.sort_by([("space", "ascending"), ("externalId", "ascending")])


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return {"row": i, "folder": x, "reference": y}
    if len(a) != len(b):
        return {"rows": [len(a), len(b)]}
    return None


def check_parts(uri, options):
    """Every part on its own: named part-i-of-n, sorted, one row per key, rows in their part."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    fs, path = arrival.filesystem(uri.rstrip("/"), options)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    names = sorted(i.path.rsplit("/", 1)[-1] for i in infos if i.type == pafs.FileType.File)
    report = {"names": names, "unsorted": [], "misrouted": 0, "rows": [], "counts": set()}
    for name in names:
        match = PART.fullmatch(name)
        if not match:
            report["unsorted"].append(f"{name} is not a part")
            continue
        index, count = int(match.group(1)), int(match.group(2))
        report["counts"].add(count)
        rows = pq.read_table(f"{path}/{name}", filesystem=fs, columns=["space", "externalId"]).to_pylist()
        keys = [(r["space"].encode(), r["externalId"].encode()) for r in rows]
        if any(a >= b for a, b in zip(keys, keys[1:])):
            report["unsorted"].append(name)
        report["misrouted"] += sum(1 for r in rows if part_of(r["space"], r["externalId"], count) != index)
        report["rows"].append(len(rows))
    report["counts"] = sorted(report["counts"])
    return report


def live_raw(raw_table, options):
    latest = arrival.latest({"uri": raw_table, "storage_options": options})["latest"]
    return {(r["space"], r["externalId"]): r["version"] for r in latest if r.get("deletedTime") is None}


def compare(request):
    options = request.get("storage_options") or {}
    s3 = any(c["folder"].startswith("s3://") or (c.get("reference") or "").startswith("s3://")
             for c in request["comparisons"])
    con = duckdb_connection(options, s3)
    report = {}
    for c in request["comparisons"]:
        folder, reference = c["folder"], c.get("reference")
        out = {}
        schema, rows = duckdb_rows(con, folder)
        table = pyarrow_table(folder, options)
        out["duckdb"] = {"rows": len(rows)}
        out["pyarrow"] = {"rows": table.num_rows}
        if reference:
            ref_schema, ref_rows = duckdb_rows(con, reference)
            out["duckdb"].update({"reference_rows": len(ref_rows),
                                  "same_schema": schema.equals(ref_schema),
                                  "difference": first_difference(rows, ref_rows)})
            ref_table = pyarrow_table(reference, options)
            out["pyarrow"].update({
                "reference_rows": ref_table.num_rows,
                "same_schema": table.schema.remove_metadata().equals(ref_table.schema.remove_metadata()),
                "difference": first_difference(table.to_pylist(), ref_table.to_pylist())})
        if is_folder(folder):
            out["parts"] = check_parts(folder, options)
        if c.get("raw_table"):
            live = live_raw(c["raw_table"], options)
            published = {(r["space"], r["externalId"]): r["version"] for r in table.to_pylist()}
            differences = sorted(
                f"{k[0]}/{k[1]}: raw {live.get(k)}, published {published.get(k)}"
                for k in set(live) | set(published) if live.get(k) != published.get(k))
            out["deltalake"] = {"live": len(live), "differences": differences[:20]}
        report[c["name"]] = out
    return report


def main():
    command, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        request = json.load(f)
    if command == "compare":
        print(json.dumps(compare(request), default=str))
    else:
        raise SystemExit(f"unknown command {command}")
    sys.stdout.flush()
    # pyarrow's and deltalake's native thread pools can abort the interpreter's shutdown.
    os._exit(0)


if __name__ == "__main__":
    main()
