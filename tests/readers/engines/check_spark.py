"""Checks the Spark notes of docs/bi-tools.md against Spark itself, on a lake this product wrote.

Each claim of the notes is one check; the script prints `ok: <claim>` per check and exits 1 at
the first claim the engine contradicts. Run it on a lake from make_lake.py (it needs the
year-0001 pump and the `site` direct relation):

    python tests/readers/engines/check_spark.py --lake /tmp/engines/lake

Needs pyspark 3.5 (requirements.txt here) and Java 17; Spark runs in-process (`local[1]`).
The raw layer is read as the Parquet files of the Delta table: the Delta reader
(`delta-spark`) loads its jars from Maven at start, which is not a Python package, so it is
not part of this check.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql.utils import AnalysisException

PUMP = "publish/plant_schema/PlantModel/1/Pump/nodes.parquet"
RAW_PUMP = "raw/plant_schema/PlantModel/1/views/Pump/nodes"
REBASE = "spark.sql.parquet.datetimeRebaseModeInRead"
INT96_REBASE = "spark.sql.parquet.int96RebaseModeInRead"
YEAR_ONE = datetime.date(1, 1, 1)
# Spark casts timestamps to text in the session time zone, UTC here.
YEAR_ONE_TIMESTAMP = "0001-01-01 00:00:00"


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

    spark.stop()
    return 0


def _ids(spark: SparkSession, path: str) -> list[str]:
    return [r.externalId for r in spark.read.parquet(path).select("externalId").collect()]


if __name__ == "__main__":
    sys.exit(main())
