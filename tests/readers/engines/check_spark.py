"""Checks the Spark notes of docs/bi-tools.md against Spark itself, on a lake this product wrote.

Each claim of the notes is one check; the script prints `ok: <claim>` per check and exits 1 at
the first claim the engine contradicts. Run it on a lake from make_lake.py (it needs the
year-0001 pump and the `site` direct relation):

    python tests/readers/engines/check_spark.py --lake /tmp/engines/lake

The current-state query is read from the Python block of the Spark section of
docs/bi-tools.md (`current = spark.sql(...).drop(...)` after its marker comment), never
copied here, and run unchanged over each raw table registered under the name its FROM uses.
It needs the history make_lake.py writes: an update and a deletion between two syncs.

Needs pyspark 3.5 and deltalake (requirements.txt here) and Java 17; Spark runs in-process
(`local[1]`). The raw layer is read as the Parquet files of the Delta table's current
version (from Python `deltalake`): the Delta reader (`delta-spark`) loads its jars from Maven
at start, which is not a Python package, so it is not part of this check.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import glob
import os
import re
import sys

from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import ArrayType, MapType, StringType, StructType
from pyspark.sql.utils import AnalysisException

PUMP = "publish/plant_schema/PlantModel/1/Pump/nodes.parquet"
RAW_DIR = "raw/plant_schema/PlantModel/1/views"
RAW_PUMP = f"{RAW_DIR}/Pump/nodes"
REBASE = "spark.sql.parquet.datetimeRebaseModeInRead"
INT96_REBASE = "spark.sql.parquet.int96RebaseModeInRead"
YEAR_ONE = datetime.date(1, 1, 1)
# Spark casts timestamps to text in the session time zone, UTC here.
YEAR_ONE_TIMESTAMP = "0001-01-01 00:00:00"
DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs", "bi-tools.md")
MARKER = "<!-- tests/readers/engines/check_spark.py runs the current-state query of this block. -->"
CURRENT = re.compile(r'current = spark\.sql\("""(.*?)"""\)\.drop\(([^)]*)\)', re.S)
# (raw table under RAW_DIR, publish file under PUBLISH_DIR)
PUBLISH_DIR = "publish/plant_schema/PlantModel/1"
CURRENT_TABLES = [
    ("Pump/nodes", "Pump/nodes.parquet"),
    ("Pump/edges", "Pump/edges.parquet"),
    ("PumpWorkOrder/edges", "PumpWorkOrder/edges.parquet"),
    ("Site/nodes", "Site/nodes.parquet"),
    ("WorkOrder/nodes", "WorkOrder/nodes.parquet"),
]
# Tables whose history must hold an update and a deletion (make_lake.py writes both).
HISTORY = {"Pump/nodes", "Pump/edges"}


def fail(claim: str, detail: str) -> None:
    print(f"FAILED: {claim}\n  {detail}", file=sys.stderr)
    sys.exit(1)


def ok(claim: str) -> None:
    print(f"ok: {claim}")


def year_one_row(spark: SparkSession, path: str, **options: str):
    reader = spark.read
    for key, value in options.items():
        reader = reader.option(key, value)
    rows = (reader.parquet(path).where("externalId = 'pump-0000'")
            .selectExpr("serviceDate", "CAST(commissionedAt AS STRING) AS commissionedAt")
            .collect())
    return rows[0]


def main() -> int:
    parser = argparse.ArgumentParser(description="Checks the Spark notes of docs/bi-tools.md")
    parser.add_argument("--lake", required=True)
    args = parser.parse_args()
    pump = os.path.join(args.lake, PUMP)
    raw_files = sorted(glob.glob(os.path.join(args.lake, RAW_PUMP, "*.parquet")))

    spark = (SparkSession.builder.master("local[1]")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .getOrCreate())
    spark.sparkContext.setLogLevel("OFF")
    print(f"Spark {spark.version}")

    default = spark.conf.get(REBASE)
    claim = "Spark 3.x refuses a year-0001 date by default (datetimeRebaseModeInRead=EXCEPTION)"
    try:
        row = year_one_row(spark, pump)
        fail(claim, f"read {row} with the default {REBASE}={default}")
    except Exception as error:  # Py4JJavaError wrapping SparkUpgradeException
        if "READ_ANCIENT_DATETIME" not in str(error):
            fail(claim, f"another error: {str(error)[:300]}")
    ok(claim)

    claim = "LEGACY shifts year-0001 values by two days (0001-01-03)"
    spark.conf.set(REBASE, "LEGACY")
    row = year_one_row(spark, pump)
    if row.serviceDate != datetime.date(1, 1, 3):
        fail(claim, f"serviceDate read as {row.serviceDate}")
    ok(claim)

    claim = f"{REBASE}=CORRECTED reads the date and the timestamp as written"
    spark.conf.set(REBASE, "CORRECTED")
    for path in [pump] + raw_files:
        row = year_one_row(spark, path) if "pump-0000" in _ids(spark, path) else None
        if row is None:
            continue
        if row.serviceDate != YEAR_ONE or row.commissionedAt != YEAR_ONE_TIMESTAMP:
            fail(claim, f"{path}: {row}")
    ok(claim + " (publish file and raw Parquet files)")

    claim = f"Spark SQL's SET {REBASE} = CORRECTED does the same"
    spark.conf.set(REBASE, default)
    spark.sql(f"SET {REBASE} = CORRECTED")
    row = year_one_row(spark, pump)
    if row.serviceDate != YEAR_ONE:
        fail(claim, f"serviceDate read as {row.serviceDate}")
    ok(claim)

    claim = "the per-read option datetimeRebaseMode=CORRECTED does the same"
    spark.conf.set(REBASE, default)
    row = year_one_row(spark, pump, datetimeRebaseMode="CORRECTED")
    if row.serviceDate != YEAR_ONE:
        fail(claim, f"serviceDate read as {row.serviceDate}")
    ok(claim)
    spark.conf.set(REBASE, "CORRECTED")

    claim = ("timestamps are not INT96: with int96RebaseModeInRead left at EXCEPTION, "
             "the year-0001 timestamp reads")
    if spark.conf.get(INT96_REBASE) != "EXCEPTION":
        fail(claim, f"{INT96_REBASE} is {spark.conf.get(INT96_REBASE)}")
    row = year_one_row(spark, pump)
    if row.commissionedAt != YEAR_ONE_TIMESTAMP:
        fail(claim, f"commissionedAt read as {row.commissionedAt}")
    ok(claim)

    claim = "PySpark's collect() cannot turn a year-0001 timestamp into a Python datetime"
    try:
        spark.read.parquet(pump).where("externalId = 'pump-0000'").select("commissionedAt").collect()
        fail(claim, "it could")
    except ValueError:
        pass
    ok(claim)

    nodes = spark.read.parquet(pump)
    nodes.createOrReplaceTempView("pumps")
    claim = "an unquoted dotted column (site.externalId) does not resolve in Spark SQL"
    try:
        spark.sql("SELECT site.externalId FROM pumps").collect()
        fail(claim, "it resolved")
    except AnalysisException:
        pass
    ok(claim)

    claim = "backticks read it: `site.externalId` in SQL and in DataFrame select/where"
    in_sql = spark.sql(
        "SELECT externalId FROM pumps WHERE `site.externalId` = 'site-0' ORDER BY externalId"
    ).collect()
    in_api = (nodes.where("`site.externalId` = 'site-0'").select("externalId", "`site.externalId`")
              .orderBy("externalId").collect())
    expected = ["pump-0000", "pump-0002"]
    if [r.externalId for r in in_sql] != expected or [r.externalId for r in in_api] != expected:
        fail(claim, f"sql {in_sql}, api {in_api}")
    ok(claim)

    check_current_state(spark, args.lake)

    spark.stop()
    return 0


def documented_current_state() -> tuple[str, str, list[str]]:
    """The query text, the table its FROM reads and the columns the doc drops after it."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    after = text.split(MARKER, 1)
    if len(after) != 2:
        sys.exit(f"{DOC}: the marker of the Spark current-state query is missing")
    block = re.match(r"\s*```python\n(.*?)\n```", after[1], re.S)
    found = CURRENT.findall(block.group(1)) if block else []
    if len(found) != 1:
        sys.exit(f"{DOC}: no single `current = spark.sql(...).drop(...)` in the block after the marker")
    query, drop = found[0]
    tables = re.findall(r"\bFROM\s+(\w+)", query)
    if len(tables) != 1:
        sys.exit(f"the documented query must read exactly one table, it reads {tables}")
    drops = ast.literal_eval(f"({drop},)")
    return query, tables[0], list(drops)


def comparable(df: DataFrame, types: dict) -> list[tuple]:
    """Rows as text, sorted by (space, externalId): timestamps and dates cast in Spark (PySpark
    cannot collect a year-0001 timestamp), a list or struct column as JSON; `types` gives the
    raw table's type of a column the publish file holds as JSON text."""
    nested = (ArrayType, MapType, StructType)
    exprs = []
    for field in df.schema.fields:
        name = f"`{field.name}`"
        raw_type = types.get(field.name, field.dataType)
        if isinstance(field.dataType, nested):
            exprs.append(f"to_json({name})")
        elif isinstance(field.dataType, StringType) and isinstance(raw_type, nested):
            exprs.append(f"to_json(from_json({name}, '{raw_type.simpleString()}'))")
        else:
            exprs.append(f"CAST({name} AS STRING)")
    rows = [tuple(r) for r in df.selectExpr(*exprs).collect()]
    names = df.columns
    key = (names.index("space"), names.index("externalId"))
    return sorted(rows, key=lambda r: (r[key[0]], r[key[1]]))


def check_current_state(spark: SparkSession, lake: str) -> None:
    query, table, drops = documented_current_state()
    spark.conf.set(REBASE, "CORRECTED")
    for raw_path, publish_path in CURRENT_TABLES:
        label = raw_path.replace("/", " ")
        claim = (f"the docs' Spark current-state query over the raw {label} table returns "
                 f"the rows of publish {publish_path}")
        files = DeltaTable(os.path.join(lake, RAW_DIR, raw_path)).file_uris()
        raw = spark.read.parquet(*files)
        rows, keys = raw.count(), raw.select("space", "externalId").distinct().count()
        deleted = raw.where("deletedTime IS NOT NULL").count()
        updated = rows - deleted - keys
        if raw_path in HISTORY and not (updated and deleted):
            fail(claim, f"the raw table has {updated} updates and {deleted} deletions, the check "
                        "needs both: write the lake with make_lake.py")
        raw.createOrReplaceTempView(table)
        current = spark.sql(query).drop(*drops)
        publish = spark.read.parquet(os.path.join(lake, PUBLISH_DIR, publish_path))
        if set(current.columns) != set(publish.columns):
            fail(claim, f"query columns {sorted(current.columns)}, publish {sorted(publish.columns)}")
        current = current.select(*[f"`{c}`" for c in publish.columns])
        types = {f.name: f.dataType for f in raw.schema.fields}
        other = [(f.name, f.dataType.simpleString(), current.schema[f.name].dataType.simpleString())
                 for f in publish.schema.fields
                 if f.dataType != current.schema[f.name].dataType
                 and not (isinstance(f.dataType, StringType)
                          and isinstance(types[f.name], (ArrayType, MapType, StructType)))]
        if other:
            fail(claim, f"other types than the publish file (column, publish, query): {other}")
        got, want = comparable(current, types), comparable(publish, types)
        if got != want:
            fail(claim, f"query {got}\n  publish {want}")
        ok(f"{claim} ({len(want)} rows; raw: {rows} rows, {updated} update(s), "
           f"{deleted} deletion(s))")


def _ids(spark: SparkSession, path: str) -> list[str]:
    return [r.externalId for r in spark.read.parquet(path).select("externalId").collect()]


if __name__ == "__main__":
    sys.exit(main())
