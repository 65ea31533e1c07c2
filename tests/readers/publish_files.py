"""Independent readers for the published Parquet files, used by the Rust integration tests.

Reads `nodes.parquet` / `edges.parquet` of one view with pyarrow and with DuckDB (local
directory or S3) and compares them with the CDF emulator's truth: exactly the live
instances, every property value, the column types a BI tool sees (timestamps as timestamps,
dates as dates, lists as JSON text), sorted by (space, externalId), one row per instance,
`deletedTime` always null. Also returns the view's `_manifest.json` and each file's footer
key-value metadata (`footers`, as pyarrow reads it).

Usage: publish_files.py check <request.json>   prints a JSON report on stdout

Request: {"dir": <local dir or s3://bucket/key/of/view/folder>, "storage_options": {...},
          "files": {"nodes": {"kind", "view_space", "view_key", "properties", "truth"},
                    "edges": {...}}}
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raw_tables as rt  # noqa: E402  (shared truth comparison of the raw-table checks)

SYSTEM_INT = {"version", "createdTime", "lastUpdatedTime", "deletedTime"}

ARROW_TYPES = {
    "text": "string", "enum": "string", "json": "string", "timeseries": "string",
    "file": "string", "sequence": "string", "int32": "int32", "int64": "int64",
    "float32": "float", "float64": "double", "boolean": "bool",
    "timestamp": "timestamp[us, tz=UTC]", "date": "date32[day]",
}
DUCKDB_TYPES = {
    "string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT", "float": "FLOAT",
    "double": "DOUBLE", "bool": "BOOLEAN", "timestamp[us, tz=UTC]": "TIMESTAMP WITH TIME ZONE",
    "date32[day]": "DATE",
}


def expected_types(spec):
    """Column -> pyarrow type name, for every column the file must have."""
    kind = spec["kind"]
    system = rt.SYSTEM_EDGE if kind == "edges" else rt.SYSTEM_NODE
    types = {c: ("int64" if c in SYSTEM_INT else "string") for c in system}
    columns = rt.property_columns(spec["properties"], kind)
    for name, ptype in spec["properties"].items():
        column = columns[name]
        if ptype.get("list"):
            types[column] = "string"
        elif ptype["type"] == "direct":
            types[f"{column}.space"] = "string"
            types[f"{column}.externalId"] = "string"
        else:
            types[column] = ARROW_TYPES.get(ptype["type"], "string")
    return types


def s3_filesystem(options):
    from pyarrow import fs
    endpoint = options["AWS_ENDPOINT_URL"]
    scheme, host = endpoint.split("://", 1)
    return fs.S3FileSystem(access_key=options["AWS_ACCESS_KEY_ID"],
                           secret_key=options["AWS_SECRET_ACCESS_KEY"],
                           region=options.get("AWS_REGION", "us-east-1"),
                           endpoint_override=host, scheme=scheme)


def read_pyarrow(uri, options):
    import pyarrow.parquet as pq
    if uri.startswith("s3://"):
        table = pq.read_table(uri[len("s3://"):], filesystem=s3_filesystem(options))
    else:
        table = pq.read_table(uri)
    types = {f.name: str(f.type) for f in table.schema}
    return table.to_pylist(), types


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


def read_duckdb(uri, options):
    con = duckdb_connection(options, uri.startswith("s3://"))
    types = {row[0]: row[1] for row in
             con.execute(f"DESCRIBE SELECT * FROM read_parquet('{uri}')").fetchall()}
    rows = con.execute(f"SELECT * FROM read_parquet('{uri}')").fetch_arrow_table().to_pylist()
    return rows, types


def decode_lists(row, spec):
    """The published row with list columns parsed from their JSON text."""
    decoded = dict(row)
    columns = rt.property_columns(spec["properties"], spec["kind"])
    for name, ptype in spec["properties"].items():
        column = columns[name]
        if not ptype.get("list") or row.get(column) is None:
            continue
        text = row[column]
        if not isinstance(text, str):
            decoded[column] = ("<not JSON text>", text)
            continue
        values = json.loads(text)
        if ptype["type"] in ("float32", "float64"):
            values = [float(v) if isinstance(v, int) else v for v in values]
        decoded[column] = values
    return decoded


def check_file(rows, types, spec, reader):
    expected = expected_types(spec)
    type_errors = []
    for column, want in expected.items():
        got = types.get(column)
        if reader == "duckdb":
            want = DUCKDB_TYPES[want]
        if got != want:
            type_errors.append({"column": column, "type": got, "expected": want})
    keys = [(r.get("space"), r.get("externalId")) for r in rows]
    duplicates = sorted({f"{k[0]}/{k[1]}" for k in keys if keys.count(k) > 1})
    mismatches = []
    truth = {(t["space"], t["externalId"]): t for t in spec["truth"]}
    published = {(r["space"], r["externalId"]): r for r in rows}
    for key in sorted(set(published) | set(truth)):
        if key not in truth:
            mismatches.append({"key": "/".join(key), "column": "*", "raw": "published", "truth": "absent or deleted"})
        elif key not in published:
            mismatches.append({"key": "/".join(key), "column": "*", "raw": "missing", "truth": "live"})
        else:
            mismatches.extend(rt.compare_row(decode_lists(published[key], spec), truth[key], spec))
    return {
        "rows": len(rows),
        "columns": list(types),
        "type_errors": type_errors,
        "sorted": keys == sorted(keys),
        "duplicates": duplicates[:20],
        "deleted_time_set": sum(1 for r in rows if r.get("deletedTime") is not None),
        "mismatch_count": len(mismatches),
        "mismatches": mismatches[:20],
    }


def read_footer(uri, options):
    """The key-value metadata of a Parquet file's footer, as text."""
    import pyarrow.parquet as pq
    if uri.startswith("s3://"):
        metadata = pq.read_metadata(uri[len("s3://"):], filesystem=s3_filesystem(options))
    else:
        metadata = pq.read_metadata(uri)
    return {k.decode(): v.decode() for k, v in (metadata.metadata or {}).items()}


def read_manifest(directory, options):
    uri = f"{directory}/_manifest.json"
    if uri.startswith("s3://"):
        fs = s3_filesystem(options)
        try:
            with fs.open_input_stream(uri[len("s3://"):]) as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None
    if not os.path.exists(uri):
        return None
    with open(uri, encoding="utf-8") as f:
        return json.load(f)


def check(request):
    directory, options = request["dir"], request.get("storage_options") or {}
    report = {"manifest": read_manifest(directory, options), "files": {}, "footers": {}}
    for name, spec in request["files"].items():
        uri = f"{directory}/{name}.parquet"
        report["footers"][name] = read_footer(uri, options)
        report["files"][name] = {
            reader_name: check_file(*reader(uri, options), spec, reader_name)
            for reader_name, reader in (("pyarrow", read_pyarrow), ("duckdb", read_duckdb))
        }
    return report


def main():
    command, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        request = json.load(f)
    if command == "check":
        print(json.dumps(check(request), default=str))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
    # The deltalake extension can abort in its own teardown after the answer is printed
    # ("terminate called without an active exception"); leave without running it.
    sys.stdout.flush()
    os._exit(0)
