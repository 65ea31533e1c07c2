"""Checks the Athena current-state query of docs/bi-tools.md without Athena: its syntax with
sqlglot's Trino dialect, its meaning by running it in DuckDB on a lake this product wrote.

Athena (engine version 3) speaks Trino SQL, and neither Athena nor Trino runs here. The query
is read from the ```sql block after the marker comment in the Athena section, never copied
here. The checks, one `ok: <claim>` each (exit 1 at the first one that fails):

- sqlglot parses it as Trino SQL: one SELECT, reading one table, the catalog's name of the
  raw Pump nodes table (the naming rule of the Glue registration);
- every column it names is a column of the raw table as Athena lists it (lower case), or the
  query's own `rn`;
- transpiled by sqlglot to DuckDB and run over each raw table of the lake, exposed under its
  catalog name as a view of `delta_scan(...)` with every column lower-cased, it returns the
  rows of the view's publish file (same keys, versions and values; list columns, JSON text in
  the publish file, compared as lists), plus the three columns the Trino query cannot leave
  out (`rn` = 1, `_arrival`, `_exitedtime` null).

What this does not prove: that Athena's Delta Lake connector reads these tables (the schema
and files from the Delta log, the dotted columns), and that Trino accepts every construct
sqlglot accepts (sqlglot is lenient) or evaluates it as DuckDB does. The semantics checked
are those of the SQL text; `row_number`, `NULLS LAST`, `IS NULL` mean the same in both.

Usage (needs sqlglot, duckdb and the duckdb-ext-delta wheel of requirements.txt here):
    python tests/readers/engines/check_athena_sql.py --lake /tmp/engines/lake
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import sysconfig

import duckdb
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs", "bi-tools.md")
MARKER = "<!-- tests/readers/engines/check_athena_sql.py reads this block (sqlglot, then DuckDB). -->"
SPACE, MODEL, VERSION = "plant_schema", "PlantModel", "1"
RAW_DIR = f"raw/{SPACE}/{MODEL}/{VERSION}/views"
PUBLISH_DIR = f"publish/{SPACE}/{MODEL}/{VERSION}"
# (view, kind): raw table RAW_DIR/<view>/<kind>, publish file PUBLISH_DIR/<view>/<kind>.parquet
TABLES = [("Pump", "nodes"), ("Pump", "edges"), ("PumpWorkOrder", "edges"),
          ("Site", "nodes"), ("WorkOrder", "nodes")]
# Tables whose history must hold an update and a deletion (make_lake.py writes both).
HISTORY = {("Pump", "nodes"), ("Pump", "edges")}
# The columns the Trino query returns beyond the publish file's (it has no EXCLUDE).
EXTRA = {"rn", "_arrival", "_exitedtime"}


def fail(claim: str, detail: str) -> None:
    print(f"FAILED: {claim}\n  {detail}", file=sys.stderr)
    sys.stdout.flush()
    os._exit(1)


def ok(claim: str) -> None:
    print(f"ok: {claim}")


def catalog_name(view: str, kind: str) -> str:
    """The Glue table name of a raw table (docs/bi-tools.md, "Table names"), for simple names."""
    parts = ["raw", SPACE, MODEL, VERSION, view, kind]
    return "_".join(re.sub(r"[^a-z0-9_]", "_", p.lower()) for p in parts)


def documented_query() -> str:
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    after = text.split(MARKER, 1)
    if len(after) != 2:
        sys.exit(f"{DOC}: the marker of the Athena current-state query is missing")
    block = re.match(r"\s*```sql\n(.*?)\n```", after[1], re.S)
    if block is None:
        sys.exit(f"{DOC}: no ```sql block right after the Athena marker")
    return block.group(1)


def connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    ext_dir = os.environ.get("CDF_S3_TEST_DUCKDB_EXTENSION_DIR") or os.path.join(
        sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions")
    con.execute(f"SET extension_directory = '{ext_dir}'")
    con.execute("LOAD delta")
    con.execute("CREATE SCHEMA cdf_lake")
    return con


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a.tzinfo is not None and b.tzinfo is not None and a == b
    return type(a) is type(b) and a == b


def main() -> int:
    parser = argparse.ArgumentParser(description="Checks the Athena current-state query of docs/bi-tools.md")
    parser.add_argument("--lake", required=True)
    args = parser.parse_args()
    lake = os.path.abspath(args.lake)
    print(f"sqlglot {sqlglot.__version__}, DuckDB {duckdb.__version__}")
    query = documented_query()

    pump = catalog_name("Pump", "nodes")
    claim = (f"sqlglot parses the docs' Athena current-state query as Trino SQL: one SELECT "
             f"reading cdf_lake.{pump}")
    try:
        statements = sqlglot.parse(query, read="trino")
    except sqlglot.errors.ParseError as error:
        fail(claim, str(error))
    if len(statements) != 1 or not isinstance(statements[0], exp.Select):
        fail(claim, f"statements: {[type(s).__name__ for s in statements]}")
    tree = statements[0]
    tables = [(t.db, t.name) for t in tree.find_all(exp.Table)]
    if tables != [("cdf_lake", pump)]:
        fail(claim, f"it reads {tables}")
    ok(claim)

    con = connection()
    columns = {}
    for view, kind in TABLES:
        path = os.path.join(lake, RAW_DIR, view, kind)
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM delta_scan('{path}')").fetchall()]
        lowered = [n.lower() for n in names]
        if len(set(lowered)) != len(lowered):
            sys.exit(f"{path}: two columns share a lower-case name: {names}")
        columns[(view, kind)] = lowered
        select = ", ".join(f'"{n}" AS "{n.lower()}"' for n in names)
        con.execute(f"CREATE VIEW cdf_lake.{catalog_name(view, kind)} AS "
                    f"SELECT {select} FROM delta_scan('{path}')")

    claim = ("every column the query names is a column of the raw table as Athena lists it "
             "(lower case), or its own rn")
    named = {c.name for c in tree.find_all(exp.Column)}
    unknown = sorted(n for n in named if n not in columns[("Pump", "nodes")] and n != "rn")
    if unknown:
        fail(claim, f"not columns of {pump}: {unknown}")
    ok(f"{claim}: {', '.join(sorted(named))}")

    for view, kind in TABLES:
        name = catalog_name(view, kind)
        claim = (f"the query, transpiled to DuckDB, over cdf_lake.{name} returns the rows of "
                 f"publish {view}/{kind}.parquet")
        table = tree.copy()
        for t in table.find_all(exp.Table):
            t.set("this", exp.to_identifier(name))
        sql = table.sql(dialect="duckdb", unsupported_level=sqlglot.ErrorLevel.RAISE)
        stats = con.execute(
            f"SELECT count(*), count(DISTINCT (space, externalid)), count(deletedtime) "
            f"FROM cdf_lake.{name}").fetchone()
        rows, keys, deleted = stats
        updated = rows - deleted - keys
        if (view, kind) in HISTORY and not (updated and deleted):
            fail(claim, f"the raw table has {updated} updates and {deleted} deletions, the check "
                        "needs both: write the lake with make_lake.py")
        got = con.execute(sql).fetch_arrow_table()
        publish = pq.read_table(os.path.join(lake, PUBLISH_DIR, view, f"{kind}.parquet"))
        want_names = [n.lower() for n in publish.column_names]
        if set(got.column_names) != set(want_names) | EXTRA:
            fail(claim, f"columns {sorted(got.column_names)}, publish (lower case) "
                        f"{sorted(want_names)} and {sorted(EXTRA)}")
        key = lambda r: (r["space"], r["externalid"])
        got_rows = sorted(got.to_pylist(), key=key)
        want_rows = sorted(({n.lower(): v for n, v in r.items()} for r in publish.to_pylist()), key=key)
        if [key(r) for r in got_rows] != [key(r) for r in want_rows]:
            fail(claim, f"keys {[key(r) for r in got_rows]}, publish {[key(r) for r in want_rows]}")
        # Lists: native in the raw table, JSON text in the publish file.
        as_json = {n.lower() for n in publish.column_names
                   if publish.schema.field(n).type == "string"
                   and got.schema.field(n.lower()).type != "string"}
        for g, w in zip(got_rows, want_rows):
            if g["rn"] != 1 or g["_exitedtime"] is not None or g["_arrival"] is None:
                fail(claim, f"{key(g)}: rn {g['rn']}, _exitedtime {g['_exitedtime']}, "
                            f"_arrival {g['_arrival']}")
            for column in want_names:
                value, expected = g[column], w[column]
                if column in as_json:
                    expected = None if expected is None else json.loads(expected)
                    equal = value == expected
                else:
                    equal = same(value, expected)
                if not equal:
                    fail(claim, f"{key(g)} {column}: query {value!r}, publish {expected!r}")
        ok(f"{claim} ({len(want_rows)} rows; raw: {rows} rows, {updated} update(s), "
           f"{deleted} deletion(s))")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # pyarrow's and duckdb's native thread pools can abort the interpreter's shutdown.
    os._exit(code)
