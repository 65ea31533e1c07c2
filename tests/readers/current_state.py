"""Runs the documented current-state query over raw Delta tables with DuckDB and compares
its answer with the published files, row for row.

The query is read from docs/bi-tools.md (the ```sql block after the comment that says the
test suite runs it), never copied here, so the documentation and the test cannot drift
apart. Only the table in its `delta_scan('...')` is replaced.

Comparison per table: the same columns (the query leaves out `_arrival` and `_exitedTime`,
the publish layer never had them), the same keys, each once, and per key every value.
Columns the publish layer renders as JSON text (lists) are native lists in the raw table:
there the null-ness and the number of elements must agree; all other values must be equal.

Usage: current_state.py <request.json>   prints a JSON report on stdout
Request: {"storage_options": {...}, "tables": [{"label", "raw", "publish"}]}
Report:  {"tables", "rows", "mismatch_count", "first": [...]}
"""

import datetime as dt
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "..", "docs", "bi-tools.md")
MARKER = "<!-- The test suite runs this block as it is (tests/readers/current_state.py). -->"
SCAN = re.compile(r"delta_scan\('[^']*'\)")

# CDF json values (list elements among them) may nest thousands of levels.
sys.setrecursionlimit(100_000)


def documented_query():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    after = text.split(MARKER, 1)
    if len(after) != 2:
        raise SystemExit(f"{DOC}: the marked current-state query is missing")
    block = re.match(r"\s*```sql\n(.*?)\n```", after[1], re.S)
    if block is None:
        raise SystemExit(f"{DOC}: no ```sql block right after the marker")
    query = block.group(1)
    if len(SCAN.findall(query)) != 1:
        raise SystemExit("the documented query must read exactly one delta_scan('...')")
    return query


def connection(options, s3):
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    ext_dir = os.environ.get("CDF_S3_TEST_DUCKDB_EXTENSION_DIR")
    if ext_dir:
        con.execute(f"SET extension_directory = '{ext_dir}'")
    con.execute("LOAD delta")
    if s3:
        con.execute("LOAD httpfs")
        con.execute("LOAD aws")
        endpoint = options["AWS_ENDPOINT_URL"].split("://", 1)[1]
        con.execute(
            "CREATE SECRET s3 (TYPE s3, KEY_ID 'testing', SECRET 'testing', "
            f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")
    return con


def current_state(query, uri, options):
    con = connection(options, uri.startswith("s3://"))
    sql = SCAN.sub(lambda _: f"delta_scan('{uri.rstrip('/')}')", query)
    return con.execute(sql).fetch_arrow_table()


def published(uri, options):
    import pyarrow.parquet as pq
    if uri.startswith("s3://"):
        sys.path.insert(0, HERE)
        import publish_files as pf
        return pq.read_table(uri[len("s3://"):], filesystem=pf.s3_filesystem(options))
    return pq.read_table(uri)


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a.tzinfo is not None and b.tzinfo is not None and a == b
    return type(a) is type(b) and a == b


def compare(label, sql, publish, mismatches):
    sql_names, publish_names = set(sql.column_names), set(publish.column_names)
    if sql_names != publish_names:
        mismatches.append({"at": label, "problem": "other columns than the publish file",
                           "query only": sorted(sql_names - publish_names),
                           "publish only": sorted(publish_names - sql_names)})
        return 0
    key = lambda row: (row["space"], row["externalId"])
    sql_rows = sorted(sql.to_pylist(), key=key)
    publish_rows = publish.to_pylist()
    if len({key(r) for r in sql_rows}) != len(sql_rows):
        mismatches.append({"at": label, "problem": "the query returns a key twice"})
    sql_keys = [key(r) for r in sql_rows]
    publish_keys = [key(r) for r in publish_rows]
    if sql_keys != publish_keys:
        mismatches.append({"at": label, "problem": "other keys than the publish file",
                           "query only": sorted(set(sql_keys) - set(publish_keys))[:5],
                           "publish only": sorted(set(publish_keys) - set(sql_keys))[:5]})
        return 0
    text_columns = {f.name for f in publish.schema
                    if str(f.type) == "string" and str(sql.schema.field(f.name).type) != "string"}
    for got, want in zip(sql_rows, publish_rows):
        at = f"{label} {want['space']}/{want['externalId']}"
        for column in publish.column_names:
            value, expected = got[column], want[column]
            if column in text_columns:
                if (value is None) != (expected is None) or (
                        value is not None and len(value) != len(json.loads(expected))):
                    mismatches.append({"at": at, "column": column, "query": repr(value)[:200],
                                       "publish": repr(expected)[:200]})
            elif not same(value, expected):
                mismatches.append({"at": at, "column": column, "query": repr(value)[:200],
                                   "publish": repr(expected)[:200]})
    return len(publish_rows)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        request = json.load(f)
    options = request.get("storage_options") or {}
    query = documented_query()
    report = {"tables": 0, "rows": 0, "mismatch_count": 0, "first": []}
    for table in request["tables"]:
        mismatches = []
        try:
            sql = current_state(query, table["raw"], options)
            publish = published(table["publish"], options)
            report["rows"] += compare(table["label"], sql, publish, mismatches)
        except Exception as error:  # an unreadable table is a finding, not a crash
            mismatches.append({"at": table["label"], "problem": f"{type(error).__name__}: {error}"[:400]})
        report["tables"] += 1
        report["mismatch_count"] += len(mismatches)
        report["first"].extend(mismatches[:15 - len(report["first"])])
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # pyarrow's and duckdb's native thread pools can abort the interpreter's shutdown.
    os._exit(0)
