"""Independent check of the generative end-to-end test (tests/integration/generative).

For every table of a generated model it reads the raw Delta table and the published Parquet
file (pyarrow) and compares them with the CDF emulator's truth, CDF's current membership of the
view (its filter applied): exactly the live instances, every system column, every property
value and the column types a BI tool sees.

The raw table's state of a key is its latest row in arrival order: the Delta log replayed
here (commit version, then position among the commit's adds; a compacted file arrives at the
newest commit it was made from, `cdfS3Replicator.compaction.lastVersion`), each active file
read through the Python `deltalake` package, which must see the same files. Neither
`version` nor a timestamp tells the latest row: an exit row repeats the version of the row
before it. A latest row with `deletedTime` or `_exitedTime` set is not live.

Columns are mapped back to CDF properties through their Arrow field metadata (`cdf.property`,
`cdf.type`, `cdf.list`, and `cdf.source` where present), never by re-implementing the rename
rule, so any rename rule passes as long as it is one-to-one and every property has a column.

Usage: generative_check.py generative <request.json>   prints a JSON report on stdout

Request: {"storage_options": {...}, "tables": [{"label", "kind", "raw", "publish",
          "declared": [{"source", "space", "key", "property", "type", "list"}], "truth": [...]}]}
"""

import datetime as dt
import json
import math
import os
import struct
import sys
from urllib.parse import unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import arrival  # noqa: E402
import publish_files as pf  # noqa: E402

# CDF json values may nest thousands of levels; json.loads and == recurse per level.
sys.setrecursionlimit(100_000)

SYSTEM_NODE = ["space", "externalId", "instanceType", "version", "createdTime",
               "lastUpdatedTime", "deletedTime", "type.space", "type.externalId"]
SYSTEM_EDGE = SYSTEM_NODE + ["startNode.space", "startNode.externalId",
                             "endNode.space", "endNode.externalId"]
# The raw tables' exit column: set on the row that records that an instance left the view.
# A table has it from its first exit row on; the publish layer never shows it.
EXITED = "_exitedTime"
# The raw tables' arrival column (`<generation>-<commit>-<row>`); never published.
ARRIVAL = "_arrival"

PUBLISH_TYPES = dict(pf.ARROW_TYPES)


def meta(field):
    m = field.metadata or {}
    return {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
            for k, v in m.items()}


def to_utc(value):
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)
    return value


def norm(value, ptype):
    """One comparable form for a value as CDF renders it and as a reader returns it."""
    if value is None:
        return None
    if ptype == "timestamp":
        return ("ts", to_utc(value))
    if ptype == "date":
        if isinstance(value, str):
            return ("date", dt.date.fromisoformat(value))
        return ("date", value)
    if ptype == "json":
        if isinstance(value, str):
            try:
                return ("json", json.loads(value))
            except ValueError:
                return ("bad json text", value)
        return ("json", value)
    if ptype == "float32":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return ("not a number", value)
        return ("f32", struct.pack("<f", float(value)))
    if ptype == "float64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return ("not a number", value)
        value = float(value)
        return ("f64", "nan" if math.isnan(value) else value)
    if ptype in ("int32", "int64"):
        if type(value) is not int:
            return ("not an int", value)
        return ("int", value)
    if ptype == "boolean":
        return ("bool", value) if isinstance(value, bool) else ("not a bool", value)
    if ptype == "direct":
        if isinstance(value, dict):
            return ("direct", value.get("space"), value.get("externalId"))
        return ("not a reference", value)
    return ("str", value) if isinstance(value, str) else ("not a string", value)


def norm_list(value, ptype, text):
    if value is None:
        return None
    if text:
        if not isinstance(value, str):
            return ("list is not JSON text", repr(value))
        value = json.loads(value)
    if not isinstance(value, list):
        return ("not a list", repr(value))
    return [norm(v, ptype) for v in value]


def read_raw(uri, options):
    """The table's schema, its latest row per key in arrival order, its row count and every
    key's rows in arrival order. The files come from the Python `deltalake` package (one
    dataset fragment per active file); their arrival order from replaying the Delta log here,
    and the two must name the same files."""
    from deltalake import DeltaTable
    dataset = DeltaTable(uri, storage_options=options or None).to_pyarrow_dataset()
    fragments = {unquote(f.path): f for f in dataset.get_fragments()}
    fs, root = arrival.filesystem(uri.rstrip("/"), options)
    active = arrival.active_files(fs, root)
    if set(active) != set(fragments):
        raise RuntimeError(f"the log replay's files differ from deltalake's: "
                           f"{sorted(set(active) ^ set(fragments))[:5]}")
    rows = 0
    latest = {}
    history = {}
    for path, arrived in sorted(active.items(), key=lambda item: item[1]):
        for row in fragments[path].to_table(schema=dataset.schema).to_pylist():
            rows += 1
            key = (row["space"], row["externalId"])
            latest[key] = row
            history.setdefault(key, []).append(
                [arrived[0], row["version"], row["lastUpdatedTime"], row["deletedTime"], row.get(EXITED)])
    return dataset.schema, latest, rows, history


def read_publish(uri, options):
    import pyarrow.parquet as pq
    if uri.startswith("s3://"):
        table = pq.read_table(uri[len("s3://"):], filesystem=pf.s3_filesystem(options))
    else:
        table = pq.read_table(uri)
    return table.schema, table.to_pylist()


def column_plan(schema, table, issues):
    """Property columns: name -> (source or None, property, type, list, part)."""
    system = set(SYSTEM_EDGE if table["kind"] == "edges" else SYSTEM_NODE)
    optional = {EXITED, ARRIVAL}
    plan = {}
    lowered = {}
    for field in schema:
        low = field.name.lower()
        if low in lowered:
            issues.append({"column": field.name, "problem": f"equals {lowered[low]} after lower-casing"})
        lowered[low] = field.name
        if field.name in system or field.name in optional:
            continue
        m = meta(field)
        if "cdf.property" not in m:
            issues.append({"column": field.name, "problem": "no cdf.property metadata"})
            continue
        part = None
        if m.get("cdf.type") == "direct" and m.get("cdf.list") != "true":
            part = "space" if field.name.endswith(".space") else "externalId"
        plan[field.name] = (m.get("cdf.source"), m["cdf.property"], m.get("cdf.type"),
                            m.get("cdf.list") == "true", part)
    for name in system:
        if name not in schema.names:
            issues.append({"column": name, "problem": "system column missing"})
    return plan


def declared_for(plan_entry, declared):
    source, prop, ptype, is_list, _ = plan_entry
    for d in declared:
        if d["property"] == prop and d["type"] == ptype and bool(d["list"]) == is_list \
                and (source is None or d["source"] == source):
            return d
    return None


def compare_rows(layer, rows_by_key, table, plan, text_lists, mismatches, history=None):
    """Compares the live rows with the truth. `history` (raw only): every row of a key in
    arrival order, [commit, version, lastUpdatedTime, deletedTime, _exitedTime], quoted
    with a key that is live on one side only."""
    truth = {(t["space"], t["externalId"]): t for t in table["truth"]}
    history = history or {}
    compared = 0
    for key in sorted(set(rows_by_key) | set(truth)):
        label = f"{table['label']} {layer} {key[0]}/{key[1]}"
        if key not in truth:
            mismatches.append({"at": label, "problem": "in the lake but not live in CDF",
                               "rows": history.get(key)})
            continue
        if key not in rows_by_key:
            mismatches.append({"at": label, "problem": "live in CDF but missing",
                               "cdf version": truth[key].get("version"), "rows": history.get(key)})
            continue
        row, want = rows_by_key[key], truth[key]
        compared += 1

        def check(column, got, expected):
            if got != expected:
                mismatches.append({"at": label, "column": column, "lake": repr(got)[:300],
                                   "cdf": repr(expected)[:300]})

        for column in ("instanceType", "version", "createdTime", "lastUpdatedTime"):
            check(column, row.get(column), want.get(column))
        check("deletedTime", row.get("deletedTime"), None)
        for ref in ["type"] + (["startNode", "endNode"] if table["kind"] == "edges" else []):
            ref_value = want.get(ref) or {}
            check(f"{ref}.space", row.get(f"{ref}.space"), ref_value.get("space"))
            check(f"{ref}.externalId", row.get(f"{ref}.externalId"), ref_value.get("externalId"))
        props = want.get("properties") or {}
        for column, entry in plan.items():
            d = declared_for(entry, table["declared"])
            if d is None:
                mismatches.append({"at": label, "column": column, "problem": f"undeclared property {entry}"})
                continue
            _, prop, ptype, is_list, part = entry
            value = ((props.get(d["space"]) or {}).get(d["key"]) or {}).get(prop)
            got = row.get(column)
            if part is not None:
                expected = None if value is None else value.get(part)
                check(column, got, expected)
            elif is_list:
                check(column, norm_list(got, ptype, text_lists), norm_list(value, ptype, False))
            else:
                check(column, norm(got, ptype), norm(value, ptype))
    return compared


def publish_types(schema, plan, issues):
    for field in schema:
        if field.name not in plan:
            continue
        _, _, ptype, is_list, part = plan[field.name]
        want = "string" if is_list or part is not None else PUBLISH_TYPES.get(ptype, "string")
        if str(field.type) != want:
            issues.append({"column": field.name, "problem": f"published as {field.type}, expected {want}"})


def check_table(table, options, report):
    mismatches, issues = [], []
    for layer, reader in (("raw", read_raw), ("publish", read_publish)):
        try:
            read = reader(table[layer], options)
        except Exception as error:  # a missing table or file is a finding, not a crash
            mismatches.append({"at": f"{table['label']} {layer}", "problem": f"unreadable: {error}"[:400]})
            continue
        schema = read[0]
        plan = column_plan(schema, table, issues)
        for d in table["declared"]:
            if not any(declared_for(entry, [d]) is not None for entry in plan.values()):
                report["missing_columns"] += 1
                issues.append({"at": f"{table['label']} {layer}",
                               "problem": f"no column for {d['source']} {d['property']} ({d['type']})"})
        if layer == "raw":
            _, latest, count, history = read
            live = {k: r for k, r in latest.items()
                    if r.get("deletedTime") is None and r.get(EXITED) is None}
            exited = [r for r in latest.values() if r.get(EXITED) is not None]
            for row in exited:
                at = f"{table['label']} raw {row['space']}/{row['externalId']}"
                if row.get("deletedTime") is not None:
                    issues.append({"at": at, "problem": "an exit row with deletedTime set"})
                filled = [c for c in plan if row.get(c) is not None]
                if filled:
                    issues.append({"at": at, "problem": f"an exit row with property values in {filled[:5]}"})
            # An exit row repeats the version of the row it follows.
            for key, rows in history.items():
                for before, after in zip(rows, rows[1:]):
                    if after[4] is not None and after[1] != before[1]:
                        issues.append({"at": f"{table['label']} raw {key[0]}/{key[1]}",
                                       "problem": "an exit row with another version than the row before it",
                                       "rows": rows})
            report["raw_rows"] += count
            report["exited_latest"] += len(exited)
            report["rows_compared"] += compare_rows("raw", live, table, plan, False, mismatches, history)
        else:
            rows = read[1]
            for raw_only in (EXITED, ARRIVAL):
                if raw_only in schema.names:
                    issues.append({"at": f"{table['label']} publish", "problem": f"publishes {raw_only}"})
            keys = [(r["space"], r["externalId"]) for r in rows]
            if keys != sorted(keys):
                issues.append({"at": f"{table['label']} publish", "problem": "not sorted by (space, externalId)"})
            if len(set(keys)) != len(keys):
                issues.append({"at": f"{table['label']} publish", "problem": "duplicate keys"})
            publish_types(schema, plan, issues)
            report["rows_compared"] += compare_rows(
                "publish", {(r["space"], r["externalId"]): r for r in rows}, table, plan, True, mismatches)
    report["mismatch_count"] += len(mismatches) + len(issues)
    for item in mismatches + issues:
        if len(report["first"]) < 15:
            report["first"].append(item)


def main():
    command, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        request = json.load(f)
    if command != "generative":
        raise SystemExit(f"unknown command {command}")
    report = {"tables": len(request["tables"]), "rows_compared": 0, "raw_rows": 0,
              "exited_latest": 0, "mismatch_count": 0, "missing_columns": 0, "first": []}
    for table in request["tables"]:
        check_table(table, request.get("storage_options") or {}, report)
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
