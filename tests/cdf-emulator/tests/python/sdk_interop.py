"""Interop check: drives a running cdf-emulator with the official Python SDK (cognite-sdk 7.8x or 8.x).

Usage:
    pip install "cognite-sdk>=7.80"
    cdf-emulator --addr 127.0.0.1:8181 &
    OAUTHLIB_INSECURE_TRANSPORT=1 python sdk_interop.py http://127.0.0.1:8181

(cognite-sdk 7.x refuses plain-http token endpoints unless OAUTHLIB_INSECURE_TRANSPORT is set.)
Exits non-zero on the first failed call or mismatch.
"""
import sys
from cognite.client import CogniteClient, ClientConfig
from cognite.client.credentials import OAuthClientCredentials
from cognite.client.data_classes import data_modeling as dm
try:  # cognite-sdk 8.x
    from cognite.client.data_classes.data_modeling.query import (
        QuerySync, NodeResultSetExpressionSync, SelectSync, SourceSelector, EdgeResultSetExpressionSync,
    )
    SDK8 = True
except ImportError:  # cognite-sdk 7.x: sync takes a plain Query
    from cognite.client.data_classes.data_modeling.query import (
        Query as QuerySync, NodeResultSetExpression as NodeResultSetExpressionSync, Select as SelectSync,
        SourceSelector, EdgeResultSetExpression as EdgeResultSetExpressionSync,
    )
    SDK8 = False
from cognite.client.data_classes import filters as f
from cognite.client.data_classes.data_modeling.data_types import Enum as EnumT, EnumValue

base = sys.argv[1]
creds = OAuthClientCredentials(token_url=f"{base}/oauth2/token", client_id="emulator-client",
                               client_secret="emulator-secret", scopes=["https://x/.default"])
c = CogniteClient(ClientConfig(client_name="interop", project="emulated-project", credentials=creds, base_url=base))

sp = c.data_modeling.spaces.apply(dm.SpaceApply("interop", name="Interop"))
print("space", sp.space)
cont = c.data_modeling.containers.apply(dm.ContainerApply(space="interop", external_id="PumpC", properties={
    "name": dm.ContainerProperty(dm.Text(), nullable=False),
    "big": dm.ContainerProperty(dm.Int64()),
    "kw": dm.ContainerProperty(dm.Float64()),
    "at": dm.ContainerProperty(dm.Timestamp()),
    "day": dm.ContainerProperty(dm.Date()),
    "meta": dm.ContainerProperty(dm.Json()),
    "site": dm.ContainerProperty(dm.DirectRelation()),
    "tags": dm.ContainerProperty(dm.Text(is_list=True)),
    "state": dm.ContainerProperty(EnumT({"on": EnumValue(), "off": EnumValue()})),
}))
print("container", cont.external_id, sorted(cont.properties))
vid = dm.ViewId("interop", "Pump", "1")
view = c.data_modeling.views.apply(dm.ViewApply(space="interop", external_id="Pump", version="1", properties={
    p: dm.MappedPropertyApply(dm.ContainerId("interop", "PumpC"), p) for p in ["name", "big", "kw", "at", "day", "meta", "site", "tags", "state"]
} | {"links": dm.MultiEdgeConnectionApply(type=dm.DirectRelationReference("interop", "links"), source=vid, direction="outwards")}))
print("view", view.external_id, type(view.properties["kw"]).__name__, type(view.properties["links"]).__name__)
model = c.data_modeling.data_models.apply(dm.DataModelApply(space="interop", external_id="M", version="1", views=[vid]))
got = c.data_modeling.data_models.retrieve(("interop", "M", "1"), inline_views=True)
print("datamodel inline views", [type(v).__name__ for v in got[0].views])
lst = c.data_modeling.data_models.list(limit=-1)
print("datamodels listed", len(lst))
views = c.data_modeling.views.retrieve(("interop", "Pump"))
print("views retrieved", len(views))

nodes = [dm.NodeApply("interop", f"n{i}", sources=[dm.NodeOrEdgeData(vid, {
    "name": f"pump {i}", "big": 2**60 + i, "kw": 1.5 * i, "at": "2024-01-01T00:00:00Z", "day": "2024-02-03",
    "meta": {"a": [1, 2]}, "site": {"space": "interop", "externalId": "site"}, "tags": ["x", "y"], "state": "on"})]) for i in range(5)]
res = c.data_modeling.instances.apply(nodes, auto_create_direct_relations=True)
print("applied", len(res.nodes), res.nodes[0].version, res.nodes[0].was_modified)
edge = dm.EdgeApply("interop", "e1", type=("interop", "links"), start_node=("interop", "n0"), end_node=("interop", "n1"))
c.data_modeling.instances.apply(edges=[edge])

q = QuerySync(with_={"pumps": NodeResultSetExpressionSync(filter=f.HasData(views=[vid]), limit=2)},
              select={"pumps": SelectSync([SourceSelector(vid, ["*"])])})
seen = []
while True:
    r = c.data_modeling.instances.sync(q)
    seen += [n.external_id for n in r["pumps"]]
    q.cursors = r.cursors
    if len(r["pumps"]) < 2:
        break
print("sync seen", seen)
assert seen == ["n0", "n1", "n2", "n3", "n4"], seen
first = c.data_modeling.instances.retrieve(nodes=("interop", "n1"), sources=[vid]).nodes[0]
props = first.properties[vid]
print("retrieve big", props["big"], "at", props["at"], "site", props["site"])
assert props["big"] == 2**60 + 1 and props["at"] == "2024-01-01T00:00:00.000+00:00"
lst = c.data_modeling.instances.list(instance_type="node", sources=[vid], filter=f.Range(vid.as_property_ref("kw"), gte=3), limit=-1)
print("list kw>=3", sorted(n.external_id for n in lst))
assert sorted(n.external_id for n in lst) == ["n2", "n3", "n4"]
c.data_modeling.instances.delete(nodes=[("interop", "n0")])
r = c.data_modeling.instances.sync(q)
print("after delete", [(n.external_id, n.deleted_time is not None) for n in r["pumps"]])
edge_kw = {"sync_mode": "one_phase", "skip_already_deleted": False} if SDK8 else {}
qe = QuerySync(with_={"e": EdgeResultSetExpressionSync(limit=10, **edge_kw)}, select={"e": SelectSync([])})
r = c.data_modeling.instances.sync(qe)
edges = [(e.external_id, e.deleted_time is not None) for e in r["e"]]
print("edges", edges)
# 8.x asks for already-deleted instances; 7.x uses the API default (skipAlreadyDeleted=true).
assert edges == ([("e1", True)] if SDK8 else []), edges

c.raw.rows.insert("db one", "t/1", {"k/1": {"a": 1}, "k 2": {"b": "x"}}, ensure_parent=True)
print("raw row", c.raw.rows.retrieve("db one", "t/1", "k/1").columns)
assert c.raw.rows.retrieve("db one", "t/1", "k/1").columns == {"a": 1}
print("raw list", sorted(r.key for r in c.raw.rows.list("db one", "t/1", limit=-1)))
print("raw dbs", [d.name for d in c.raw.databases.list(limit=-1)])

from cognite.client.data_classes import ExtractionPipelineConfigWrite, ExtractionPipelineRunWrite, ExtractionPipelineWrite
c.extraction_pipelines.create(ExtractionPipelineWrite(external_id="pl", name="pl", data_set_id=1))
c.extraction_pipelines.config.create(ExtractionPipelineConfigWrite(external_id="pl", config="a: 1\n"))
print("config", repr(c.extraction_pipelines.config.retrieve("pl").config))
assert c.extraction_pipelines.config.retrieve("pl").config == "a: 1\n"
c.extraction_pipelines.runs.create(ExtractionPipelineRunWrite(extpipe_external_id="pl", status="success", message="ok"))
print("runs", [(r.status, r.message) for r in c.extraction_pipelines.runs.list(external_id="pl", limit=-1)])

c.data_modeling.instances.delete(nodes=[("interop", f"n{i}") for i in range(1, 5)] + [("interop", "site")])
c.data_modeling.data_models.delete(("interop", "M", "1"))
c.data_modeling.views.delete(vid)
c.data_modeling.containers.delete(("interop", "PumpC"))
c.data_modeling.spaces.delete("interop")
print("cleanup ok; spaces left:", [s.space for s in c.data_modeling.spaces.list(limit=-1)])
c.extraction_pipelines.delete(external_id="pl")
c.raw.databases.delete("db one", recursive=True)
print("OK")
