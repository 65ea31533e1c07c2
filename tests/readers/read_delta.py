"""Reads a Delta table with independent readers (the Python `deltalake` package, and DuckDB's
delta extension for local tables) and prints what they saw as one JSON object.

Usage: read_delta.py '<json request>'
request: {"uri": str, "storage_options": {..} | null, "app_ids": [str],
          "columns": [str], "duckdb_path": str | null}
"""
import glob
import importlib.util
import json
import os
import sys

import pyarrow as pa
from deltalake import DeltaTable


def column_values(table, name):
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return column.to_pylist()


def main():
    request = json.loads(sys.argv[1])
    dt = DeltaTable(request["uri"], storage_options=request.get("storage_options") or None)
    table = dt.to_pyarrow_table().sort_by("externalId")
    out = {
        "version": dt.version(),
        "rows": table.num_rows,
        "columns": table.column_names,
        "txn": {app: dt.transaction_version(app) for app in request.get("app_ids", [])},
        "stream_commits": [
            entry["cdfS3Replicator"] for entry in dt.history() if "cdfS3Replicator" in entry
        ],
        "values": {name: column_values(table, name) for name in request.get("columns", [])},
    }
    duckdb_path = request.get("duckdb_path")
    if duckdb_path:
        import duckdb

        spec = importlib.util.find_spec("duckdb_ext")
        base = list(spec.submodule_search_locations)[0]
        extension = glob.glob(os.path.join(base, "extensions", "*", "*", "delta.duckdb_extension"))[0]
        con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
        con.execute(f"LOAD '{extension}'")
        out["duckdb_rows"] = con.execute(
            f"SELECT count(*) FROM delta_scan('{duckdb_path}')"
        ).fetchone()[0]
        out["duckdb_distinct_ids"] = con.execute(
            f'SELECT count(DISTINCT "externalId") FROM delta_scan(\'{duckdb_path}\')'
        ).fetchone()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
    # The deltalake extension can abort in its own teardown after the answer is printed
    # ("terminate called without an active exception"); leave without running it.
    sys.stdout.flush()
    os._exit(0)
