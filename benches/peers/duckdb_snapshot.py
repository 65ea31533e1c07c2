"""DuckDB peer of the `snapshot` bench: the same publish file from the same raw Delta table.

Run by `cargo bench --bench snapshot -- --vs-duckdb` (with tests/.venv/bin/python), one mode
per process so that each reports its own peak memory:

  full         latest change per (space, externalId) by arrival (commit version, position
               of the file in the commit, row in the file), deletions removed, lists as
               JSON text, sorted by key, written as Snappy Parquet.
  incremental  the same for the commits after --since-version, merged into --previous.
  check        whether two published files hold the same rows in the same order (or a
               folder of parts the same rows, each part sorted).

Prints one JSON line: seconds (the query, without interpreter start-up), peak RSS (MiB).
"""

import argparse
import json
import os
import resource
import sys
import time

import duckdb

KEY = ("space", "externalId")
RAW_ONLY = ("_exitedTime", "_arrival")


def active_files(table, since_version=None):
    """Data files of the Delta table in arrival order, as (path, version, position).

    Reads the JSON commits of `_delta_log` (the bench writes no checkpoints it depends on:
    every commit file is still there). With `since_version`, only files added after it.
    """
    log = os.path.join(table, "_delta_log")
    commits = sorted(
        (int(name.split(".")[0]), name)
        for name in os.listdir(log)
        if name.endswith(".json") and name.split(".")[0].isdigit()
    )
    files = {}
    for version, name in commits:
        position = 0
        with open(os.path.join(log, name)) as handle:
            for line in handle:
                action = json.loads(line)
                if "add" in action:
                    add = action["add"]
                    if since_version is None or version > since_version:
                        files[add["path"]] = (version, position)
                    position += 1
                elif "remove" in action:
                    files.pop(action["remove"]["path"], None)
    ordered = sorted(files.items(), key=lambda item: item[1])
    return [(os.path.join(table, path), v, p) for path, (v, p) in ordered]


def publish_columns(con, files):
    """The publish form's select list: lists as JSON text, the raw-only columns left out (the
    exit marker: the bench's rows have no exits; the arrival order, which the query takes
    from the log instead)."""
    described = con.execute(
        "DESCRIBE SELECT * FROM read_parquet(?)", [files[0][0]]
    ).fetchall()
    columns = []
    for name, kind, *_ in described:
        if name in RAW_ONLY:
            continue
        quoted = '"' + name.replace('"', '""') + '"'
        if kind.endswith("[]"):
            columns.append(f"to_json({quoted})::VARCHAR AS {quoted}")
        else:
            columns.append(quoted)
    return columns


def latest_changes(con, files):
    """Creates view `changes`: the last arrival of each key among `files`, tombstones kept."""
    con.execute(
        "CREATE TABLE arrival(filename VARCHAR, arrival_commit BIGINT, arrival_position INTEGER)"
    )
    con.executemany("INSERT INTO arrival VALUES (?, ?, ?)", files)
    columns = ", ".join(publish_columns(con, files))
    paths = [f[0] for f in files]
    con.execute(
        f"""
        CREATE VIEW changes AS
        SELECT * EXCLUDE (filename, file_row_number, arrival_commit, arrival_position) FROM (
            SELECT {columns}, r.filename, r.file_row_number, a.arrival_commit, a.arrival_position
            FROM read_parquet({paths!r}, filename = true, file_row_number = true) r
            JOIN arrival a USING (filename)
        )
        QUALIFY row_number() OVER (
            PARTITION BY space, externalId
            ORDER BY arrival_commit DESC, arrival_position DESC, file_row_number DESC) = 1
        """
    )


def write(con, query, out):
    con.execute(
        f"COPY ({query} ORDER BY space, externalId) TO '{out}' "
        "(FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 131072)"
    )


def full(args, con):
    latest_changes(con, active_files(args.table))
    write(con, 'SELECT * FROM changes WHERE "deletedTime" IS NULL', args.out)


def incremental(args, con):
    files = active_files(args.table, since_version=args.since_version)
    latest_changes(con, files)
    write(
        con,
        f"""
        SELECT * FROM (
            SELECT p.* FROM read_parquet('{args.previous}') p
            ANTI JOIN changes c USING (space, externalId)
            UNION ALL
            SELECT * FROM changes WHERE "deletedTime" IS NULL
        )""",
        args.out,
    )


def check(args, con):
    """Same rows (every column) and same key order.

    `--out` may be a folder of parts (`part-*.parquet`): then the folder's rows together
    must equal the peer's file, and each part must be sorted by key on its own.
    """
    ours, theirs = args.out, args.previous
    if os.path.isdir(ours):
        ours = os.path.join(ours, "*.parquet")
    counts = con.execute(
        f"SELECT (SELECT count(*) FROM '{ours}'), (SELECT count(*) FROM '{theirs}')"
    ).fetchone()
    differing = con.execute(
        f"""SELECT count(*) FROM (
              (SELECT * FROM '{ours}' EXCEPT ALL SELECT * FROM '{theirs}')
              UNION ALL
              (SELECT * FROM '{theirs}' EXCEPT ALL SELECT * FROM '{ours}'))"""
    ).fetchone()[0]
    if ours.endswith("*.parquet"):
        # Within each part, every key follows the previous one.
        misordered = con.execute(
            f"""SELECT count(*) FROM (
                  SELECT space, externalId,
                         lag(space) OVER w AS prev_space,
                         lag(externalId) OVER w AS prev_id
                    FROM read_parquet('{ours}', filename = true, file_row_number = true)
                  WINDOW w AS (PARTITION BY filename ORDER BY file_row_number))
                WHERE prev_space IS NOT NULL
                  AND (space < prev_space
                       OR (space = prev_space AND externalId <= prev_id))"""
        ).fetchone()[0]
    else:
        misordered = con.execute(
            f"""SELECT count(*) FROM
                  (SELECT space, externalId, file_row_number
                     FROM read_parquet('{ours}', file_row_number = true)) a
                  FULL JOIN
                  (SELECT space, externalId, file_row_number
                     FROM read_parquet('{theirs}', file_row_number = true)) b
                  USING (file_row_number)
                WHERE a.space IS DISTINCT FROM b.space
                   OR a.externalId IS DISTINCT FROM b.externalId"""
        ).fetchone()[0]
    return {
        "rows": counts[0],
        "peer_rows": counts[1],
        "differing_rows": differing,
        "misordered_rows": misordered,
        "equal": counts[0] == counts[1] and differing == 0 and misordered == 0,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["full", "incremental", "check"])
    parser.add_argument("--table", help="the raw Delta table directory")
    parser.add_argument("--out", required=True, help="file written (check: ours)")
    parser.add_argument("--previous", help="incremental: previous file; check: the peer's")
    parser.add_argument("--since-version", type=int)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--temp-dir")
    args = parser.parse_args()

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    if args.temp_dir:
        con.execute(f"SET temp_directory = '{args.temp_dir}'")
    started = time.monotonic()
    detail = {"full": full, "incremental": incremental, "check": check}[args.mode](args, con)
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({
        "engine": f"duckdb {duckdb.__version__}",
        "seconds": seconds,
        "peak_rss_mib": peak,
        "detail": detail,
    }))
    return 0 if args.mode != "check" or detail["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
