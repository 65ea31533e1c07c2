"""Checks the ClickHouse notes of docs/bi-tools.md against ClickHouse itself (embedded, chDB),
on a lake this product wrote.

Each claim of the notes is one check; the script prints `ok: <claim>` per check and exits 1 at
the first claim the engine contradicts. Run it on a lake from make_lake.py (it needs the
year-0001 pump, the pump without aliases and the `site` direct relation):

    python tests/readers/engines/check_clickhouse.py --lake /tmp/engines/lake

Needs chdb (requirements.txt here): the same engine as clickhouse-server and clickhouse-local
of the version it prints. Local files are read with `file()` and `deltaLakeLocal()`; on S3 the
same queries use `s3()` and `deltaLake()`, which this check does not run.
"""

from __future__ import annotations

import argparse
import os
import sys

import chdb

PUMP = "publish/plant_schema/PlantModel/1/Pump/nodes.parquet"
SITE = "publish/plant_schema/PlantModel/1/Site/nodes.parquet"
RAW_PUMP = "raw/plant_schema/PlantModel/1/views/Pump/nodes"


def fail(claim: str, detail: str) -> None:
    print(f"FAILED: {claim}\n  {detail}", file=sys.stderr)
    sys.exit(1)


def ok(claim: str) -> None:
    print(f"ok: {claim}", flush=True)


def rows(sql: str) -> list[list[str]]:
    """The result as rows of text fields (TabSeparatedRaw: no escapes to undo)."""
    text = chdb.query(sql, "TabSeparatedRaw").data()
    return [line.split("\t") for line in text.splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description="Checks the ClickHouse notes of docs/bi-tools.md")
    parser.add_argument("--lake", required=True)
    args = parser.parse_args()
    # chDB reads files only under the working directory it started in.
    lake = os.path.abspath(args.lake)
    os.chdir(lake)
    pump = f"file('{lake}/{PUMP}', Parquet)"
    site = f"file('{lake}/{SITE}', Parquet)"
    raw = f"deltaLakeLocal('{lake}/{RAW_PUMP}')"
    print(f"ClickHouse {rows('SELECT version()')[0][0]} (chdb {chdb.__version__})", flush=True)

    claim = "year-0001 dates and timestamps read as written, in both layers, with no setting"
    for source in (pump, raw):
        got = rows(f"SELECT serviceDate, toString(commissionedAt, 'UTC') FROM {source} "
                   "WHERE externalId = 'pump-0000'")
        if any(r != ["0001-01-01", "0001-01-01 00:00:00.000000"] for r in got) or not got:
            fail(claim, f"{source}: {got}")
    ok(claim)

    claim = "quoted dotted columns read in both layers (backticks or double quotes)"
    for source in (pump, raw):  # without the raw table's tombstone, which has no values
        got = rows(f'SELECT DISTINCT `site.externalId`, "site.externalId", "type.space" '
                   f"FROM {source} WHERE deletedTime IS NULL ORDER BY 1")
        if got != [["site-0", "site-0", "\\N"], ["site-1", "site-1", "\\N"]]:
            fail(claim, f"{source}: {got}")
    ok(claim)

    claim = ("a table aliased like a direct relation (AS site) is not what site.externalId "
             "names: the join matches every pair")
    wrong = rows(f"SELECT p.externalId, site.name FROM {pump} AS p JOIN {site} AS site "
                 "ON site.externalId = p.`site.externalId`")
    if len(wrong) != 8:
        fail(claim, f"{len(wrong)} rows: {wrong}")
    ok(claim)

    claim = "with another alias (AS s) the join is right"
    right = rows(f"SELECT p.externalId, s.name FROM {pump} AS p JOIN {site} AS s "
                 "ON s.space = p.`site.space` AND s.externalId = p.`site.externalId` ORDER BY 1")
    if right != [["pump-0000", "Oslo"], ["pump-0001", "Bergen"], ["pump-0002", "Oslo"],
                 ["pump-0003", "Bergen"]]:
        fail(claim, f"{right}")
    ok(claim)

    claim = "deltaLake refuses a filter on a dotted raw column by default"
    try:
        rows(f"SELECT externalId FROM {raw} WHERE `site.externalId` = 'site-0'")
        fail(claim, "the filter ran")
    except Exception as error:  # chdb raises a plain RuntimeError with the server's message
        if "Predicate references unknown column" not in str(error):
            fail(claim, f"another error: {str(error)[:300]}")
    ok(claim)

    claim = "SETTINGS delta_lake_enable_engine_predicate = 0 runs it"
    got = rows(f"SELECT externalId, version FROM {raw} WHERE `site.externalId` = 'site-0' "
               "ORDER BY externalId, version SETTINGS delta_lake_enable_engine_predicate = 0")
    if got != [["pump-0000", "1"], ["pump-0002", "1"], ["pump-0002", "2"]]:
        fail(claim, f"{got}")
    ok(claim)

    claim = "a filter on an undotted raw column needs no setting"
    got = rows(f"SELECT count() FROM {raw} WHERE externalId = 'pump-0002'")
    if got != [["2"]]:
        fail(claim, f"{got}")
    ok(claim)

    claim = "the raw layer's null list reads as [] (not NULL); the publish file's stays NULL"
    raw_list = rows(f"SELECT toString(aliases), isNull(aliases) FROM {raw} "
                    "WHERE externalId = 'pump-0001'")
    published = rows(f"SELECT isNull(aliases) FROM {pump} WHERE externalId = 'pump-0001'")
    if raw_list != [["[]", "0"]] or published != [["1"]]:
        fail(claim, f"raw {raw_list}, publish {published}")
    ok(claim)

    claim = ("JSONExtract(ifNull(aliases, '[]'), 'Array(String)') turns a published list into "
             "an array (JSONExtract refuses a Nullable column)")
    got = rows(f"SELECT toString(JSONExtract(ifNull(aliases, '[]'), 'Array(String)')) FROM {pump} "
               "WHERE externalId IN ('pump-0000', 'pump-0001') ORDER BY externalId")
    if got != [["['P0','PUMP-0']"], ["[]"]]:
        fail(claim, f"{got}")
    ok(claim)

    claim = ("raw timestamps carry no time zone (shown in the session's), published ones are "
             "DateTime64(6, 'UTC')")
    types = rows(f"SELECT toTypeName(commissionedAt) FROM {raw} LIMIT 1")
    shown = rows(f"SELECT toString(commissionedAt) FROM {raw} WHERE externalId = 'pump-0001' "
                 "SETTINGS session_timezone = 'Europe/Oslo'")
    published_type = rows(f"SELECT toTypeName(commissionedAt) FROM {pump} LIMIT 1")
    if (types != [["Nullable(DateTime64(6))"]] or shown != [["2011-05-01 10:30:00.000000"]]
            or published_type != [["Nullable(DateTime64(6, 'UTC'))"]]):
        fail(claim, f"raw {types} shown {shown}, publish {published_type}")
    ok(claim)

    claim = "toTimeZone(commissionedAt, 'UTC') shows a raw timestamp in UTC"
    got = rows(f"SELECT toString(toTimeZone(commissionedAt, 'UTC')) FROM {raw} "
               "WHERE externalId = 'pump-0001' SETTINGS session_timezone = 'Europe/Oslo'")
    if got != [["2011-05-01 08:30:00.000000"]]:
        fail(claim, f"{got}")
    ok(claim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
