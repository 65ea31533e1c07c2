"""Writes a small lake for the engine checks: the demo's layout and names, plus the edge cases
the engine notes of docs/bi-tools.md are about.

It starts the `cdf-emulator` binary on loopback, seeds a cut-down plant model (space
`plant_schema`, model `PlantModel`, version `1`: views `Site`, `Pump`, `WorkOrder` and the
edge source `PumpWorkOrder`, so the paths and columns are those of the demo), then runs the
real `cdf-s3-replicator` twice (`sync`, changes, `sync`) and `snapshot` into `--lake`.

The edge cases:
- `pump-0000` has the earliest values CDF stores: date `0001-01-01`, timestamp
  `0001-01-01T00:00:00.000Z` (Spark 3.x refuses or shifts dates before 1582);
- `pump-0001` has no `aliases` (a null list: ClickHouse's Delta reader reads it as `[]`);
- every pump has a direct relation `site` (dotted columns `site.space`, `site.externalId`);
- `pump-0002` is updated once, so the raw table has a history;
- `pump-0004` is deleted, with its edge `pump-0004--wo-0004` (CDF deletes a node's edges),
  so the raw tables have tombstones and the publish files the four pumps above;
- the edge `pump-0000--wo-0000` is updated once (`linkedBy`), so the edge tables have a
  history too.

Usage (from the repository root, after `cargo build --bins`):
    python tests/readers/engines/make_lake.py --lake /tmp/engines/lake
Standard library only: runs with any Python 3.9+.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SCHEMA_SPACE = "plant_schema"
DATA_SPACE = "plant_data"
MODEL = "PlantModel"
# Seconds each step may take: the emulator's start, one sync or snapshot of a few instances.
STEP_TIMEOUT = 300


def view_ref(xid: str) -> dict:
    return {"type": "view", "space": SCHEMA_SPACE, "externalId": xid, "version": "1"}


def container_ref(xid: str) -> dict:
    return {"type": "container", "space": SCHEMA_SPACE, "externalId": xid}


def schema() -> dict:
    containers = {
        "SiteC": ("node", {"name": {"type": {"type": "text"}, "nullable": False}}),
        "PumpC": ("node", {
            "tag": {"type": {"type": "text"}, "nullable": False},
            "ratedKw": {"type": {"type": "float64"}},
            "site": {"type": {"type": "direct"}},
            "commissionedAt": {"type": {"type": "timestamp"}},
            "serviceDate": {"type": {"type": "date"}},
            "aliases": {"type": {"type": "text", "list": True}},
        }),
        "WorkOrderC": ("node", {"title": {"type": {"type": "text"}, "nullable": False}}),
        "PumpWorkOrderC": ("edge", {"linkedBy": {"type": {"type": "text"}}}),
    }
    views = {"Site": "SiteC", "Pump": "PumpC", "WorkOrder": "WorkOrderC", "PumpWorkOrder": "PumpWorkOrderC"}

    def view(xid: str) -> dict:
        container = views[xid]
        props = {
            name: {"container": container_ref(container), "containerPropertyIdentifier": name}
            for name in containers[container][1]
        }
        if xid == "Pump":
            props["workOrders"] = {
                "connectionType": "multi_edge_connection",
                "type": {"space": SCHEMA_SPACE, "externalId": "Pump.workOrders"},
                "source": view_ref("WorkOrder"),
                "edgeSource": view_ref("PumpWorkOrder"),
                "direction": "outwards",
            }
        out = {"space": SCHEMA_SPACE, "externalId": xid, "version": "1", "properties": props}
        if xid == "PumpWorkOrder":
            out["usedFor"] = "edge"
        return out

    return {
        "spaces": [{"space": SCHEMA_SPACE}, {"space": DATA_SPACE}],
        "containers": [
            {"space": SCHEMA_SPACE, "externalId": xid, "properties": props, "usedFor": used}
            for xid, (used, props) in containers.items()
        ],
        "views": [view(xid) for xid in views],
        "dataModels": [{
            "space": SCHEMA_SPACE, "externalId": MODEL, "version": "1",
            "views": [view_ref(xid) for xid in views],
        }],
    }


def node(xid: str, view: str, properties: dict) -> dict:
    return {"instanceType": "node", "space": DATA_SPACE, "externalId": xid,
            "sources": [{"source": view_ref(view), "properties": properties}]}


def pump(p: int) -> dict:
    props = {
        "tag": f"P-{p:04}",
        "ratedKw": 10.0 + p,
        "site": {"space": DATA_SPACE, "externalId": f"site-{p % 2}"},
        "commissionedAt": f"20{10 + p}-05-01T08:30:00.000+00:00",
        "serviceDate": f"2024-0{1 + p}-15",
        "aliases": [f"P{p}", f"PUMP-{p}"],
    }
    if p == 0:
        props["commissionedAt"] = "0001-01-01T00:00:00.000+00:00"
        props["serviceDate"] = "0001-01-01"
    if p == 1:
        del props["aliases"]
    if p == 4:  # deleted later: in site-1, so the raw rows of site-0 are those of pumps 0 and 2
        props["site"]["externalId"] = "site-1"
    return node(f"pump-{p:04}", "Pump", props)


def instances() -> dict:
    items = [node(f"site-{i}", "Site", {"name": name}) for i, name in enumerate(["Oslo", "Bergen"])]
    for p in range(5):
        items.append(pump(p))
        order = f"wo-{p:04}"
        items.append(node(order, "WorkOrder", {"title": f"Service pump-{p:04}"}))
        items.append({
            "instanceType": "edge", "space": DATA_SPACE, "externalId": f"pump-{p:04}--{order}",
            "type": {"space": SCHEMA_SPACE, "externalId": "Pump.workOrders"},
            "startNode": {"space": DATA_SPACE, "externalId": f"pump-{p:04}"},
            "endNode": {"space": DATA_SPACE, "externalId": order},
            "sources": [{"source": view_ref("PumpWorkOrder"), "properties": {"linkedBy": "planner"}}],
        })
    return {"items": items, "autoCreateDirectRelations": True}


def update() -> dict:
    return {"items": [
        node("pump-0002", "Pump", {"tag": "P-0002", "ratedKw": 99.5}),
        {"instanceType": "edge", "space": DATA_SPACE, "externalId": "pump-0000--wo-0000",
         "type": {"space": SCHEMA_SPACE, "externalId": "Pump.workOrders"},
         "startNode": {"space": DATA_SPACE, "externalId": "pump-0000"},
         "endNode": {"space": DATA_SPACE, "externalId": "wo-0000"},
         "sources": [{"source": view_ref("PumpWorkOrder"), "properties": {"linkedBy": "supervisor"}}]},
    ]}


def deletion() -> dict:
    return {"items": [{"instanceType": "node", "space": DATA_SPACE, "externalId": "pump-0004"}]}


def post(base: str, path: str, body: dict) -> None:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=STEP_TIMEOUT) as answer:
        answer.read()


def config(base: str, token: str, project: str, lake: str) -> str:
    return f"""logger:
  console:
    level: WARNING
cognite:
  host: {base}
  project: {project}
  idp-authentication:
    token-url: {token}
    client-id: emulator-client
    secret: emulator-secret
    scopes: ["{base}/.default"]
  extraction-pipeline:
    external-id: s3-data-modeling-replicator
extractor:
  state-store:
    raw:
      database: s3_replicator_state
      table: data_modeling_state
data_modeling:
  - space: {SCHEMA_SPACE}
    data_models:
      - external_id: {MODEL}
destination:
  local:
    path: "{lake}"
"""


def run(replicator: str, command: str, config_path: str) -> None:
    subprocess.run([replicator, command, "--config", config_path], check=True,
                   stdout=subprocess.DEVNULL, timeout=STEP_TIMEOUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", required=True, help="directory to write (emptied first)")
    parser.add_argument("--replicator", default=os.path.join(REPO, "target", "debug", "cdf-s3-replicator"))
    parser.add_argument("--emulator", default=os.path.join(REPO, "target", "debug", "cdf-emulator"))
    args = parser.parse_args()
    lake = os.path.abspath(args.lake)
    shutil.rmtree(lake, ignore_errors=True)
    os.makedirs(lake)

    emulator = subprocess.Popen([args.emulator, "--addr", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, text=True)
    try:
        # The emulator prints one line once it accepts connections:
        # "cdf-emulator listening base_url=... token_url=... project=..."
        line = emulator.stdout.readline() if emulator.stdout else ""
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "base_url" not in fields:
            print(f"the emulator did not start: {line!r}", file=sys.stderr)
            return 1
        base = fields["base_url"]
        post(base, "/__emulator/schema", schema())
        post(base, "/__emulator/instances", instances())
        with tempfile.TemporaryDirectory() as work:
            config_path = os.path.join(work, "config.yaml")
            with open(config_path, "w", encoding="utf-8") as f:
                f.write(config(base, fields["token_url"], fields["project"], lake))
            run(args.replicator, "sync", config_path)
            post(base, "/__emulator/instances", update())
            post(base, "/__emulator/instances/delete", deletion())
            run(args.replicator, "sync", config_path)
            run(args.replicator, "snapshot", config_path)
    finally:
        emulator.terminate()
        emulator.wait(timeout=STEP_TIMEOUT)
    print(f"wrote {lake}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
