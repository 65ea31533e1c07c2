"""The official Cognite Python SDK, run against the CDF emulator, must get the answers real CDF gives.

Each check drives the SDK the way a user would and asserts on the values it hands back. When an
answer diverges, the failure names the REST call (method, path and SDK method) that diverged.
The tests run in file order: the expired-cursor check moves the emulator's clock three days
ahead, so it comes last.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from cognite.client import CogniteClient
from cognite.client.data_classes import (
    DataSetWrite,
    ExtractionPipelineConfigWrite,
    ExtractionPipelineRunWrite,
    ExtractionPipelineWrite,
)
from cognite.client.data_classes import data_modeling as dm
from cognite.client.data_classes import filters as flt
from cognite.client.data_classes.data_modeling.data_types import Enum, EnumValue, ListablePropertyType
from cognite.client.exceptions import CogniteAPIError

from conftest import EmulatorSettings, emulator_control, make_client
from sdk_compat import (
    SDK_MAJOR,
    BTreeIndexWrite,
    ContainerPropertyWrite,
    InvertedIndexWrite,
    RequiresConstraintWrite,
    UniquenessConstraintWrite,
    edge_sync,
    node_sync,
    select_all,
    sync_query,
)

THREE_DAYS_AND_A_MS = 3 * 24 * 3600 * 1000 + 1
INVALID_CURSOR_MESSAGE = "Invalid cursor provided."
EXPIRED_CURSOR_MESSAGE = "Cursor has expired. Try again with a new cursor."


# --- failure reporting ----------------------------------------------------------------------------


@contextmanager
def api(call: str) -> Iterator[None]:
    """Attribute any exception raised inside to `call`, e.g. "POST /models/views (views.apply)"."""
    try:
        yield
    except AssertionError:
        raise
    except CogniteAPIError as err:
        pytest.fail(
            f"{call} diverged: HTTP {err.code}: {err.message!r} (x-request-id {err.x_request_id})", pytrace=True
        )
    except Exception as err:  # the SDK failed to parse or use the emulator's answer
        pytest.fail(f"{call} diverged: the SDK raised {type(err).__name__}: {err}", pytrace=True)


def expect_api_error(
    call: str, status: int | range, message: str | None, fn: Any, *args: Any, **kwargs: Any
) -> CogniteAPIError:
    """Run `fn` and require the SDK to raise CogniteAPIError with this status (and exact message)."""
    statuses = status if isinstance(status, range) else range(status, status + 1)
    try:
        result = fn(*args, **kwargs)
    except CogniteAPIError as err:
        assert err.code in statuses, f"{call}: expected HTTP {status}, got HTTP {err.code}: {err.message!r}"
        if message is not None:
            assert err.message == message, f"{call}: expected message {message!r}, got {err.message!r}"
        return err
    pytest.fail(f"{call}: expected HTTP {status} ({message!r}), but the call succeeded and returned {result!r}")





# --- the schema under test ----------------------------------------------------------------------

STATUS_ENUM = Enum(
    values={
        "running": EnumValue(name="Running"),
        "stopped": EnumValue(description="Not running"),
        "unknown": EnumValue(),
    },
    unknown_value="unknown",
)

# Every container property type the replicator maps to Arrow, single-valued and as lists.
ALL_TYPES: dict[str, dm.PropertyType] = {
    "text": dm.Text(),
    "boolean": dm.Boolean(),
    "int32": dm.Int32(),
    "int64": dm.Int64(),
    "float32": dm.Float32(),
    "float64": dm.Float64(),
    "timestamp": dm.Timestamp(),
    "date": dm.Date(),
    "json": dm.Json(),
    "direct": dm.DirectRelation(),
    "enum": STATUS_ENUM,
    "textList": dm.Text(is_list=True),
    "booleanList": dm.Boolean(is_list=True),
    "int32List": dm.Int32(is_list=True),
    "int64List": dm.Int64(is_list=True),
    "float32List": dm.Float32(is_list=True),
    "float64List": dm.Float64(is_list=True),
    "timestampList": dm.Timestamp(is_list=True),
    "dateList": dm.Date(is_list=True),
    "jsonList": dm.Json(is_list=True),
    "directList": dm.DirectRelation(is_list=True),
}


@dataclass(frozen=True)
class Schema:
    schema_space: str
    inst_space: str
    sync_space: str
    base: dm.ContainerId
    all_types: dm.ContainerId
    edge_props: dm.ContainerId
    entity_v1: dm.ViewId
    entity_v2: dm.ViewId
    all_types_view: dm.ViewId
    related_edge: dm.ViewId
    model_v1: dm.DataModelId
    model_v2: dm.DataModelId

    @property
    def related_type(self) -> dm.DirectRelationReference:
        return dm.DirectRelationReference(self.schema_space, "AllTypes.related")


def container_property(type_: dm.PropertyType, nullable: bool = True) -> Any:
    return ContainerPropertyWrite(type=type_, nullable=nullable)


@pytest.fixture(scope="module")
def schema(client: CogniteClient, run_id: str) -> Schema:
    s = f"interop_schema_{run_id}"
    sch = Schema(
        schema_space=s,
        inst_space=f"interop_inst_{run_id}",
        sync_space=f"interop_sync_{run_id}",
        base=dm.ContainerId(s, "Base"),
        all_types=dm.ContainerId(s, "AllTypes"),
        edge_props=dm.ContainerId(s, "EdgeProps"),
        entity_v1=dm.ViewId(s, "Entity", "v1"),
        entity_v2=dm.ViewId(s, "Entity", "v2"),
        all_types_view=dm.ViewId(s, "AllTypesView", "v1"),
        related_edge=dm.ViewId(s, "RelatedEdge", "v1"),
        model_v1=dm.DataModelId(s, "InteropModel", "v1"),
        model_v2=dm.DataModelId(s, "InteropModel", "v2"),
    )
    spaces = [
        dm.SpaceApply(sch.schema_space, name="Interop schema", description="Containers, views, model"),
        dm.SpaceApply(sch.inst_space, name="Interop instances ø✓"),
        dm.SpaceApply(sch.sync_space, name="Interop sync"),
    ]
    with api("POST /models/spaces (data_modeling.spaces.apply)"):
        client.data_modeling.spaces.apply(spaces)

    containers = [
        dm.ContainerApply(
            s,
            "Base",
            properties={"title": container_property(dm.Text()), "label": container_property(dm.Text())},
            used_for="node",
            name="Base",
        ),
        dm.ContainerApply(
            s,
            "AllTypes",
            properties={"name": container_property(dm.Text(), nullable=False)}
            | {name: container_property(type_) for name, type_ in ALL_TYPES.items()},
            used_for="node",
            description="One property of every type",
        ),
        dm.ContainerApply(
            s,
            "EdgeProps",
            properties={"weight": container_property(dm.Float64()), "note": container_property(dm.Text())},
            used_for="edge",
        ),
    ]
    with api("POST /models/containers (data_modeling.containers.apply)"):
        client.data_modeling.containers.apply(containers)

    entity_v1 = dm.ViewApply(
        s, "Entity", "v1", name="Entity", properties={"title": dm.MappedPropertyApply(sch.base, "title")}
    )
    all_types_properties: dict[str, Any] = {
        name: dm.MappedPropertyApply(sch.all_types, name) for name in ["name", *ALL_TYPES]
    }
    all_types_properties["direct"] = dm.MappedPropertyApply(sch.all_types, "direct", source=sch.all_types_view)
    all_types_properties["related"] = dm.MultiEdgeConnectionApply(
        type=sch.related_type,
        source=sch.all_types_view,
        edge_source=sch.related_edge,
        direction="outwards",
        name="related",
    )
    all_types_view = dm.ViewApply(
        s,
        "AllTypesView",
        "v1",
        name="All types",
        implements=[sch.entity_v1],
        properties=all_types_properties,
    )
    related_edge = dm.ViewApply(
        s,
        "RelatedEdge",
        "v1",
        properties={
            "weight": dm.MappedPropertyApply(sch.edge_props, "weight"),
            "note": dm.MappedPropertyApply(sch.edge_props, "note"),
        },
    )
    with api("POST /models/views (data_modeling.views.apply)"):
        client.data_modeling.views.apply([entity_v1, all_types_view, related_edge])
    with api("POST /models/datamodels (data_modeling.data_models.apply)"):
        client.data_modeling.data_models.apply(
            dm.DataModelApply(
                s,
                "InteropModel",
                "v1",
                name="Interop model",
                views=[sch.entity_v1, sch.all_types_view, sch.related_edge],
            )
        )

    # Newer versions, created strictly later: "latest" is decided by createdTime.
    time.sleep(0.05)
    entity_v2 = dm.ViewApply(
        s,
        "Entity",
        "v2",
        name="Entity v2",
        properties={
            "title": dm.MappedPropertyApply(sch.base, "title"),
            "label": dm.MappedPropertyApply(sch.base, "label"),
        },
    )
    with api("POST /models/views (data_modeling.views.apply, second version)"):
        client.data_modeling.views.apply(entity_v2)
    time.sleep(0.05)
    with api("POST /models/datamodels (data_modeling.data_models.apply, second version)"):
        client.data_modeling.data_models.apply(
            dm.DataModelApply(
                s,
                "InteropModel",
                "v2",
                name="Interop model v2",
                views=[sch.entity_v2, sch.all_types_view, sch.related_edge],
            )
        )
    return sch


# --- data modeling schema -----------------------------------------------------------------------


def test_spaces_retrieve_and_list(client: CogniteClient, schema: Schema) -> None:
    with api("POST /models/spaces/byids (data_modeling.spaces.retrieve)"):
        got = client.data_modeling.spaces.retrieve([schema.schema_space, schema.inst_space])
    by_id = {space.space: space for space in got}
    assert set(by_id) == {schema.schema_space, schema.inst_space}, f"spaces.retrieve returned {sorted(by_id)}"
    assert by_id[schema.schema_space].name == "Interop schema"
    assert by_id[schema.schema_space].description == "Containers, views, model"
    assert by_id[schema.inst_space].name == "Interop instances ø✓", "spaces.retrieve lost the unicode name"
    assert by_id[schema.schema_space].is_global is False
    assert by_id[schema.schema_space].created_time > 0

    with api("POST /models/spaces/byids (data_modeling.spaces.retrieve, unknown id)"):
        missing = client.data_modeling.spaces.retrieve("interop_no_such_space")
    assert missing is None, f"spaces.retrieve of an unknown space must give None, got {missing!r}"

    with api("GET /models/spaces (data_modeling.spaces.list)"):
        listed = client.data_modeling.spaces.list(limit=-1)
    names = {space.space for space in listed}
    assert {schema.schema_space, schema.inst_space, schema.sync_space} <= names, f"spaces.list returned {sorted(names)}"


def test_containers_round_trip_every_property_type(client: CogniteClient, schema: Schema) -> None:
    with api("POST /models/containers/byids (data_modeling.containers.retrieve)"):
        got = client.data_modeling.containers.retrieve([schema.all_types, schema.edge_props, schema.base])
    by_id = {c.as_id(): c for c in got}
    assert set(by_id) == {schema.all_types, schema.edge_props, schema.base}

    all_types = by_id[schema.all_types]
    assert all_types.used_for == "node"
    assert all_types.description == "One property of every type"
    assert set(all_types.properties) == {"name", *ALL_TYPES}, (
        f"containers.retrieve properties: {sorted(all_types.properties)}"
    )
    assert all_types.properties["name"].nullable is False, "containers.retrieve: 'name' must stay non-nullable"
    for name, expected in ALL_TYPES.items():
        prop = all_types.properties[name]
        assert type(prop.type) is type(expected), (
            f"containers.retrieve: {name} has type {prop.type!r}, expected {expected!r}"
        )
        assert prop.nullable is True, f"containers.retrieve: {name} must be nullable"
        if isinstance(expected, ListablePropertyType):
            assert prop.type.is_list == expected.is_list, f"containers.retrieve: {name}.list is {prop.type.is_list}"
    assert all_types.properties["text"].type.collation == "ucs_basic"
    enum_type = all_types.properties["enum"].type
    assert set(enum_type.values) == {"running", "stopped", "unknown"}
    assert enum_type.values["running"].name == "Running"
    assert enum_type.values["stopped"].description == "Not running"
    assert enum_type.unknown_value == "unknown"

    assert by_id[schema.edge_props].used_for == "edge"
    assert set(by_id[schema.edge_props].properties) == {"weight", "note"}

    with api("GET /models/containers (data_modeling.containers.list)"):
        listed = client.data_modeling.containers.list(space=schema.schema_space, limit=-1)
    assert {c.as_id() for c in listed} == {schema.all_types, schema.edge_props, schema.base}


def test_views_round_trip_with_implements_and_edge_connection(client: CogniteClient, schema: Schema) -> None:
    with api("POST /models/views/byids (data_modeling.views.retrieve)"):
        got = client.data_modeling.views.retrieve([schema.all_types_view, schema.related_edge])
    by_id = {v.as_id(): v for v in got}
    assert set(by_id) == {schema.all_types_view, schema.related_edge}, (
        f"views.retrieve returned {sorted(map(str, by_id))}"
    )

    view = by_id[schema.all_types_view]
    assert view.name == "All types"
    assert view.implements == [schema.entity_v1], f"views.retrieve implements: {view.implements}"
    assert view.used_for == "node"
    assert view.writable is True
    assert view.is_global is False
    expected_props = {"name", "title", "related", *ALL_TYPES}
    assert set(view.properties) == expected_props, (
        f"views.retrieve (includeInheritedProperties=true) properties: {sorted(view.properties)}"
    )
    title = view.properties["title"]
    assert isinstance(title, dm.MappedProperty)
    assert title.container == schema.base and title.container_property_identifier == "title"
    for name, expected in ALL_TYPES.items():
        prop = view.properties[name]
        assert isinstance(prop, dm.MappedProperty), f"views.retrieve: {name} is {type(prop).__name__}"
        assert prop.container == schema.all_types
        assert prop.container_property_identifier == name
        assert type(prop.type) is type(expected), f"views.retrieve: {name} has type {prop.type!r}"
    direct = view.properties["direct"]
    assert direct.source == schema.all_types_view, f"views.retrieve: direct relation source hint is {direct.source!r}"
    assert view.properties["name"].nullable is False

    related = view.properties["related"]
    assert isinstance(related, dm.MultiEdgeConnection), f"views.retrieve: 'related' is {type(related).__name__}"
    assert related.type == schema.related_type
    assert related.source == schema.all_types_view
    assert related.edge_source == schema.related_edge
    assert related.direction == "outwards"

    edge_view = by_id[schema.related_edge]
    assert edge_view.used_for == "edge", f"a view over an edge container must be usedFor=edge, got {edge_view.used_for}"
    assert set(edge_view.properties) == {"weight", "note"}

    with api("POST /models/views/byids?includeInheritedProperties=false (data_modeling.views.retrieve)"):
        own = client.data_modeling.views.retrieve(schema.all_types_view, include_inherited_properties=False)
    assert len(own) == 1
    assert "title" not in own[0].properties, "includeInheritedProperties=false must leave out inherited 'title'"
    assert "related" in own[0].properties and "int64" in own[0].properties


def test_views_latest_version_resolution(client: CogniteClient, schema: Schema) -> None:
    entity = (schema.schema_space, "Entity")
    with api("POST /models/views/byids without version (data_modeling.views.retrieve)"):
        versions = client.data_modeling.views.retrieve(entity)
    assert sorted(v.version for v in versions) == ["v1", "v2"], "byids without a version must return every version"
    with api("POST /models/views/byids (data_modeling.views.retrieve, all_versions=False)"):
        latest = client.data_modeling.views.retrieve(entity, all_versions=False)
    assert [v.as_id() for v in latest] == [schema.entity_v2]
    assert set(latest[0].properties) == {"title", "label"}

    with api("GET /models/views?space=... (data_modeling.views.list)"):
        listed = client.data_modeling.views.list(space=schema.schema_space, limit=-1)
    assert {v.as_id() for v in listed} == {schema.entity_v2, schema.all_types_view, schema.related_edge}, (
        f"views.list without allVersions must give the newest version of each view, got {listed.as_ids()}"
    )
    with api("GET /models/views?allVersions=true (data_modeling.views.list)"):
        every = client.data_modeling.views.list(space=schema.schema_space, all_versions=True, limit=-1)
    assert {v.as_id() for v in every} == {
        schema.entity_v1,
        schema.entity_v2,
        schema.all_types_view,
        schema.related_edge,
    }
    with api("GET /models/views?limit=1 paging (data_modeling.views.list)"):
        paged = list(client.data_modeling.views(chunk_size=1, space=schema.schema_space, all_versions=True))
    assert sorted(str(v.as_id()) for chunk in paged for v in chunk) == sorted(str(v.as_id()) for v in every), (
        "paging views with nextCursor must visit every view once"
    )


def test_data_models_round_trip_and_inline_views(client: CogniteClient, schema: Schema) -> None:
    with api("POST /models/datamodels/byids (data_modeling.data_models.retrieve)"):
        by_ref = client.data_modeling.data_models.retrieve(schema.model_v1)
    assert len(by_ref) == 1
    model = by_ref[0]
    assert model.as_id() == schema.model_v1
    assert model.name == "Interop model"
    assert model.is_global is False
    assert model.views == [schema.entity_v1, schema.all_types_view, schema.related_edge], f"views: {model.views}"

    with api("POST /models/datamodels/byids?inlineViews=true (data_modeling.data_models.retrieve)"):
        inline = client.data_modeling.data_models.retrieve(schema.model_v1, inline_views=True)
    views = inline[0].views
    assert all(isinstance(v, dm.View) for v in views), f"inlineViews=true must give full views, got {views}"
    assert [v.as_id() for v in views] == [schema.entity_v1, schema.all_types_view, schema.related_edge]
    inline_all_types = next(v for v in views if v.as_id() == schema.all_types_view)
    assert "int64List" in inline_all_types.properties and "title" in inline_all_types.properties

    with api("POST /models/datamodels/byids without version (data_modeling.data_models.retrieve)"):
        both = client.data_modeling.data_models.retrieve((schema.schema_space, "InteropModel"))
    assert sorted(m.version for m in both) == ["v1", "v2"]

    with api("GET /models/datamodels?space=... (data_modeling.data_models.list)"):
        listed = client.data_modeling.data_models.list(space=schema.schema_space, limit=-1)
    assert [m.as_id() for m in listed] == [schema.model_v2], "datamodels list must return only the newest version"
    with api("GET /models/datamodels?allVersions=true&inlineViews=true (data_modeling.data_models.list)"):
        every = client.data_modeling.data_models.list(
            space=schema.schema_space, all_versions=True, inline_views=True, limit=-1
        )
    assert {m.as_id() for m in every} == {schema.model_v1, schema.model_v2}
    v2 = next(m for m in every if m.as_id() == schema.model_v2)
    assert [v.as_id() for v in v2.views] == [schema.entity_v2, schema.all_types_view, schema.related_edge]
    assert all(isinstance(v, dm.View) for v in v2.views)


def test_schema_deletes(client: CogniteClient, run_id: str) -> None:
    """Data models, views (one version or all), containers and spaces delete in the order CDF allows."""
    s = f"interop_scratch_{run_id}"
    container = dm.ContainerId(s, "Scratch")
    view_v1, view_v2 = dm.ViewId(s, "ScratchView", "v1"), dm.ViewId(s, "ScratchView", "v2")
    model = dm.DataModelId(s, "ScratchModel", "v1")
    with api("POST /models/spaces, containers, views, datamodels (scratch schema)"):
        client.data_modeling.spaces.apply(dm.SpaceApply(s))
        client.data_modeling.containers.apply(
            dm.ContainerApply(s, "Scratch", properties={"x": container_property(dm.Int64())}, used_for="node")
        )
        client.data_modeling.views.apply(
            [
                dm.ViewApply(s, v.external_id, v.version, properties={"x": dm.MappedPropertyApply(container, "x")})
                for v in (view_v1, view_v2)
            ]
        )
        client.data_modeling.data_models.apply(dm.DataModelApply(s, "ScratchModel", "v1", views=[view_v1]))

    with api("POST /models/datamodels/delete (data_modeling.data_models.delete)"):
        assert client.data_modeling.data_models.delete(model) == [model]
    with api("POST /models/datamodels/byids after delete (data_modeling.data_models.retrieve)"):
        assert len(client.data_modeling.data_models.retrieve(model)) == 0

    with api("POST /models/views/delete (data_modeling.views.delete, one version)"):
        assert client.data_modeling.views.delete(view_v1) == [view_v1]
    with api("POST /models/views/byids after delete (data_modeling.views.retrieve)"):
        left = client.data_modeling.views.retrieve((s, "ScratchView"))
    assert [v.as_id() for v in left] == [view_v2], f"only v2 may remain, got {[v.as_id() for v in left]}"
    with api("POST /models/views/delete (data_modeling.views.delete, unknown view)"):
        assert client.data_modeling.views.delete(dm.ViewId(s, "Nope", "v1")) == []
    with api("POST /models/views/delete (data_modeling.views.delete, v2)"):
        client.data_modeling.views.delete(view_v2)
    with api("POST /models/views/byids after deleting every version"):
        assert len(client.data_modeling.views.retrieve((s, "ScratchView"))) == 0

    with api("POST /models/containers/delete (data_modeling.containers.delete)"):
        assert client.data_modeling.containers.delete(container) == [container]
    with api("POST /models/spaces/delete (data_modeling.spaces.delete)"):
        assert client.data_modeling.spaces.delete(s) == [s]
    with api("POST /models/spaces/byids after delete (data_modeling.spaces.retrieve)"):
        assert client.data_modeling.spaces.retrieve(s) is None


# --- instances ----------------------------------------------------------------------------------


def ref(space: str, xid: str) -> dict[str, str]:
    return {"space": space, "externalId": xid}


def full_properties(space: str, direct_to: str, self_xid: str) -> dict[str, Any]:
    """Values of every type, chosen to catch lossy encodings (2^53+1, float32, unicode, offsets)."""
    return {
        "name": "full",
        "title": "Full node",
        "text": 'Pump ø✓ — ünïcødé 🚀 "quoted" \\ back',
        "boolean": True,
        "int32": -2147483648,
        "int64": 2**53 + 1,
        "float32": 1.5,
        "float64": 3.141592653589793,
        "timestamp": "2024-05-01T10:30:00.123+02:00",
        "date": "2024-02-29",
        "json": {"vendor": {"name": "Acme ø"}, "tags": ["a", "b"], "n": 1.5, "ok": True, "none": None},
        "direct": ref(space, direct_to),
        "enum": "running",
        "textList": ["α", "β γ", ""],
        "booleanList": [True, False, True],
        "int32List": [-2147483648, 0, 2147483647],
        "int64List": [-(2**63), 2**63 - 1, 2**53 + 1],
        "float32List": [0.5, -2.25],
        "float64List": [1e-300, -1.7976931348623157e308, 0.1],
        "timestampList": [datetime(2020, 1, 1, tzinfo=UTC), "1999-12-31T23:59:59.999Z"],
        "dateList": ["2000-01-01", "9999-12-31"],
        "jsonList": [{"a": 1}, {"b": [1, 2, {"c": "d"}]}],
        "directList": [ref(space, direct_to), ref(space, self_xid)],
    }


def expected_read(written: dict[str, Any]) -> dict[str, Any]:
    """What the API hands back for `written`: timestamps normalised to UTC with millisecond precision."""
    out = dict(written)
    out["timestamp"] = "2024-05-01T08:30:00.123+00:00"
    out["timestampList"] = ["2020-01-01T00:00:00.000+00:00", "1999-12-31T23:59:59.999+00:00"]
    return out


def minimal_properties(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "title": name.title(), **extra}


def node(space: str, xid: str, view: dm.ViewId, props: dict[str, Any]) -> dm.NodeApply:
    return dm.NodeApply(space, xid, sources=[dm.NodeOrEdgeData(view, props)])


def edge(sch: Schema, space: str, xid: str, start: str, end: str, props: dict[str, Any]) -> dm.EdgeApply:
    return dm.EdgeApply(
        space,
        xid,
        type=sch.related_type,
        start_node=dm.DirectRelationReference(space, start),
        end_node=dm.DirectRelationReference(space, end),
        sources=[dm.NodeOrEdgeData(sch.related_edge, props)],
    )


def props_of(instance: dm.Node | dm.Edge, view: dm.ViewId) -> dict[str, Any]:
    assert view in instance.properties, (
        f"{instance.instance_type} {instance.external_id}: no properties for {view}; got {list(instance.properties)}"
    )
    return dict(instance.properties[view])


def assert_properties(call: str, instance: dm.Node | dm.Edge, view: dm.ViewId, expected: dict[str, Any]) -> None:
    got = props_of(instance, view)
    for key, value in expected.items():
        assert key in got, f"{call}: {instance.external_id}.{key} is missing (got keys {sorted(got)})"
        assert got[key] == value, f"{call}: {instance.external_id}.{key} is {got[key]!r}, expected {value!r}"
        assert type(got[key]) is type(value), (
            f"{call}: {instance.external_id}.{key} is a {type(got[key]).__name__}, expected {type(value).__name__}"
        )


@dataclass
class WrittenInstances:
    full: dict[str, Any]
    apply_result: Any


@pytest.fixture(scope="module")
def written(client: CogniteClient, schema: Schema) -> WrittenInstances:
    sp = schema.inst_space
    full = full_properties(sp, direct_to="n2", self_xid="n1")
    nodes = [
        node(sp, "n1", schema.all_types_view, full),
        node(sp, "n2", schema.all_types_view, minimal_properties("minimal", int64=7, enum="stopped")),
        node(sp, "n3", schema.all_types_view, minimal_properties("doomed", int64=-1)),
    ]
    edges = [
        edge(schema, sp, "e1", "n1", "n2", {"weight": 0.75, "note": "primary ✓"}),
        edge(schema, sp, "e2", "n3", "n1", {"weight": 1.0}),
        edge(schema, sp, "e3", "n1", "n3", {"note": "to be cascaded"}),
    ]
    with api("POST /models/instances (data_modeling.instances.apply)"):
        result = client.data_modeling.instances.apply(nodes=nodes, edges=edges)
    return WrittenInstances(full=full, apply_result=result)


def test_instances_apply_reports_versions(written: WrittenInstances) -> None:
    result = written.apply_result
    assert sorted(n.external_id for n in result.nodes) == ["n1", "n2", "n3"]
    assert sorted(e.external_id for e in result.edges) == ["e1", "e2", "e3"]
    for item in [*result.nodes, *result.edges]:
        assert item.version == 1, f"instances.apply: new {item.external_id} has version {item.version}"
        assert item.was_modified is True, f"instances.apply: new {item.external_id} has wasModified={item.was_modified}"
        assert item.created_time == item.last_updated_time > 0


def test_instances_retrieve_every_property_type(
    client: CogniteClient, schema: Schema, written: WrittenInstances
) -> None:
    sp = schema.inst_space
    call = "POST /models/instances/byids (data_modeling.instances.retrieve)"
    with api(call):
        got = client.data_modeling.instances.retrieve(
            nodes=[dm.NodeId(sp, "n1"), dm.NodeId(sp, "n2"), dm.NodeId(sp, "missing")],
            sources=[schema.all_types_view],
        )
    nodes = {n.external_id: n for n in got.nodes}
    assert set(nodes) == {"n1", "n2"}, f"{call}: unknown ids must be left out; got {sorted(nodes)}"
    n1 = nodes["n1"]
    assert n1.instance_type == "node" and n1.space == sp and n1.version == 1
    assert_properties(call, n1, schema.all_types_view, expected_read(written.full))
    n2 = props_of(nodes["n2"], schema.all_types_view)
    assert n2["name"] == "minimal" and n2["int64"] == 7 and n2["enum"] == "stopped"
    for unset in ["text", "json", "int64List", "direct"]:
        assert n2.get(unset) is None, f"{call}: n2.{unset} was never written but is {n2.get(unset)!r}"

    with api(call + " for an edge"):
        got = client.data_modeling.instances.retrieve(edges=[dm.EdgeId(sp, "e1")], sources=[schema.related_edge])
    assert list(got.nodes) == [] and len(got.edges) == 1
    e1 = got.edges[0]
    assert e1.external_id == "e1" and e1.instance_type == "edge"
    assert e1.type == schema.related_type
    assert e1.start_node == dm.DirectRelationReference(sp, "n1")
    assert e1.end_node == dm.DirectRelationReference(sp, "n2")
    assert_properties(call, e1, schema.related_edge, {"weight": 0.75, "note": "primary ✓"})


def test_instances_list_and_filter(client: CogniteClient, schema: Schema, written: WrittenInstances) -> None:
    sp = schema.inst_space
    with api("POST /models/instances/list (data_modeling.instances.list, nodes)"):
        nodes = client.data_modeling.instances.list(
            instance_type="node", space=sp, sources=[schema.all_types_view], limit=-1
        )
    assert sorted(n.external_id for n in nodes) == ["n1", "n2", "n3"]
    n1 = next(n for n in nodes if n.external_id == "n1")
    assert props_of(n1, schema.all_types_view)["int64"] == 2**53 + 1

    with api("POST /models/instances/list (data_modeling.instances.list, edges)"):
        edges = client.data_modeling.instances.list(
            instance_type="edge", space=sp, sources=[schema.related_edge], limit=-1
        )
    assert sorted(e.external_id for e in edges) == ["e1", "e2", "e3"]

    big = flt.Range(schema.all_types_view.as_property_ref("int64"), gt=2**53)
    with api("POST /models/instances/list with a range filter (data_modeling.instances.list)"):
        filtered = client.data_modeling.instances.list(
            instance_type="node", space=sp, sources=[schema.all_types_view], filter=big, limit=-1
        )
    assert [n.external_id for n in filtered] == ["n1"], "range gt 2^53 on int64 must match only n1"

    with api("POST /models/instances/list paged by cursor (data_modeling.instances iterate)"):
        pages = list(client.data_modeling.instances(chunk_size=2, instance_type="node", space=sp))
    assert sorted(n.external_id for page in pages for n in page) == ["n1", "n2", "n3"]


def test_instances_update_noop_and_null(client: CogniteClient, schema: Schema, written: WrittenInstances) -> None:
    sp, view = schema.inst_space, schema.all_types_view
    call = "POST /models/instances (data_modeling.instances.apply, update)"
    with api(call):
        changed = client.data_modeling.instances.apply(
            node(sp, "n2", view, {"text": "now with text", "int64List": [1, 2, 3]})
        )
    result = changed.nodes[0]
    assert result.version == 2 and result.was_modified is True, f"{call}: {result}"
    assert result.last_updated_time >= result.created_time

    with api(call + " identical values"):
        same = client.data_modeling.instances.apply(node(sp, "n2", view, {"text": "now with text"}))
    assert same.nodes[0].version == 2, f"{call}: a write that changes nothing must not bump the version"
    assert same.nodes[0].was_modified is False, f"{call}: a write that changes nothing must report wasModified=false"
    assert same.nodes[0].last_updated_time == result.last_updated_time

    with api(call + " null clears"):
        client.data_modeling.instances.apply(node(sp, "n2", view, {"enum": None}))
    with api("POST /models/instances/byids (data_modeling.instances.retrieve_nodes)"):
        n2 = client.data_modeling.instances.retrieve_nodes(dm.NodeId(sp, "n2"), sources=view)
    assert n2 is not None
    got = props_of(n2, view)
    assert n2.version == 3
    assert got["text"] == "now with text" and got["int64List"] == [1, 2, 3]
    assert got["name"] == "minimal" and got["int64"] == 7, "a partial update must keep the other properties"
    assert got.get("enum") is None, "writing null must clear the value"


def test_instances_delete_cascades_to_edges(client: CogniteClient, schema: Schema, written: WrittenInstances) -> None:
    sp = schema.inst_space
    with api("POST /models/instances/delete (data_modeling.instances.delete)"):
        deleted = client.data_modeling.instances.delete(nodes=[dm.NodeId(sp, "n3"), dm.NodeId(sp, "never-existed")])
    assert dm.NodeId(sp, "n3") in deleted.nodes

    with api("POST /models/instances/byids after delete (data_modeling.instances.retrieve)"):
        got = client.data_modeling.instances.retrieve(
            nodes=[dm.NodeId(sp, "n3")], edges=[dm.EdgeId(sp, xid) for xid in ["e1", "e2", "e3"]]
        )
    assert list(got.nodes) == [], "a deleted node must not be retrievable"
    assert [e.external_id for e in got.edges] == ["e1"], "deleting n3 must delete its edges e2 and e3"

    with api("POST /models/instances/list after delete (data_modeling.instances.list)"):
        edges = client.data_modeling.instances.list(instance_type="edge", space=sp, limit=-1)
        nodes = client.data_modeling.instances.list(instance_type="node", space=sp, limit=-1)
    assert [e.external_id for e in edges] == ["e1"]
    assert sorted(n.external_id for n in nodes) == ["n1", "n2"]

    with api("POST /models/instances/delete (data_modeling.instances.delete, edge)"):
        client.data_modeling.instances.delete(edges=dm.EdgeId(sp, "e1"))
    with api("POST /models/instances/list (data_modeling.instances.list)"):
        assert list(client.data_modeling.instances.list(instance_type="edge", space=sp, limit=-1)) == []


# --- sync -----------------------------------------------------------------------------------------


@dataclass
class SyncPage:
    nodes: list[dm.Node]
    edges: list[dm.Edge]
    cursors: dict[str, str]


def sync_once(client: CogniteClient, query: Any, call: str) -> SyncPage:
    with api(f"POST /models/instances/sync ({call})"):
        result = client.data_modeling.instances.sync(query)
    keys = set(query.with_)
    cursors = dict(result.cursors)
    assert set(cursors) == keys, f"sync ({call}): nextCursor must have a key per result set, got {sorted(cursors)}"
    for key, cursor in cursors.items():
        assert isinstance(cursor, str) and cursor, f"sync ({call}): nextCursor[{key}] is {cursor!r}"
    query.cursors = cursors
    return SyncPage(
        nodes=list(result["nodes"]) if "nodes" in keys else [],
        edges=list(result["edges"]) if "edges" in keys else [],
        cursors=cursors,
    )


def sync_until_short_page(
    client: CogniteClient, query: Any, call: str, max_calls: int = 10
) -> tuple[list[SyncPage], int]:
    """Follow cursors until every result set returns fewer items than its limit (caught up)."""
    pages: list[SyncPage] = []
    limits = {key: expr.limit for key, expr in query.with_.items()}
    for _ in range(max_calls):
        page = sync_once(client, query, call)
        pages.append(page)
        for key, items in (("nodes", page.nodes), ("edges", page.edges)):
            if key in limits:
                assert len(items) <= limits[key], f"sync ({call}): {len(items)} {key} exceed limit {limits[key]}"
        if all(len(getattr(page, key)) < limit for key, limit in limits.items()):
            return pages, len(pages)
    pytest.fail(f"sync ({call}): still returning full pages after {max_calls} calls")


def by_xid(items: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        assert item.external_id not in out, f"sync: {item.external_id} delivered twice within one catch-up"
        out[item.external_id] = item
    return out


def sync_nodes_filter(schema: Schema) -> flt.Filter:
    return flt.And(
        flt.HasData(views=[schema.all_types_view]),
        flt.Equals(["node", "space"], schema.sync_space),
    )


def sync_edges_filter(schema: Schema) -> flt.Filter:
    return flt.And(
        flt.Equals(["edge", "space"], schema.sync_space),
        flt.Equals(
            ["edge", "type"], {"space": schema.related_type.space, "externalId": schema.related_type.external_id}
        ),
    )


def sync_query_for(schema: Schema, mode: str, node_limit: int, edge_limit: int | None = None) -> Any:
    with_: dict[str, Any] = {"nodes": node_sync(sync_nodes_filter(schema), node_limit, mode)}
    select: dict[str, Any] = {"nodes": select_all(schema.all_types_view)}
    if edge_limit is not None:
        with_["edges"] = edge_sync(sync_edges_filter(schema), edge_limit, mode)
        select["edges"] = select_all(schema.related_edge)
    return sync_query(with_, select)


@pytest.fixture(scope="module")
def sync_seed(client: CogniteClient, schema: Schema) -> dict[str, Any]:
    sp, view = schema.sync_space, schema.all_types_view
    full = full_properties(sp, direct_to="s1", self_xid="s0")
    nodes = [node(sp, "s0", view, full)] + [
        node(sp, f"s{i}", view, minimal_properties(f"sync node {i}", int64=i)) for i in range(1, 5)
    ]
    edges = [
        edge(schema, sp, "se0", "s0", "s1", {"weight": 2.5}),
        edge(schema, sp, "se1", "s2", "s3", {"note": "cascaded when s2 goes"}),
    ]
    with api("POST /models/instances (data_modeling.instances.apply, sync seed)"):
        client.data_modeling.instances.apply(nodes=nodes, edges=edges)
    return full


def test_sync_two_phase_backfill_then_changes_and_tombstones(
    client: CogniteClient, schema: Schema, sync_seed: dict[str, Any]
) -> None:
    sp, view = schema.sync_space, schema.all_types_view
    query = sync_query_for(schema, "two_phase", node_limit=2, edge_limit=10)

    pages, calls = sync_until_short_page(client, query, "two_phase backfill")
    backfill_nodes = by_xid([n for p in pages for n in p.nodes])
    backfill_edges = by_xid([e for p in pages for e in p.edges])
    assert set(backfill_nodes) == {"s0", "s1", "s2", "s3", "s4"}, f"backfill nodes: {sorted(backfill_nodes)}"
    assert set(backfill_edges) == {"se0", "se1"}, f"backfill edges: {sorted(backfill_edges)}"
    assert calls >= 3, f"5 nodes with limit 2 need at least 3 pages, got {calls}"
    assert_properties("sync backfill", backfill_nodes["s0"], view, expected_read(sync_seed))
    assert all(n.deleted_time is None for n in backfill_nodes.values())
    assert backfill_edges["se0"].start_node == dm.DirectRelationReference(sp, "s0")
    assert props_of(backfill_edges["se0"], schema.related_edge)["weight"] == 2.5

    empty = sync_once(client, query, "caught up, nothing changed")
    assert empty.nodes == [] and empty.edges == [], "sync with no changes must return empty pages"

    with api("POST /models/instances (data_modeling.instances.apply, changes after backfill)"):
        client.data_modeling.instances.apply(
            nodes=[
                node(sp, "s1", view, {"text": "updated after backfill"}),
                node(sp, "s5", view, minimal_properties("born after backfill", int64=5)),
            ],
            edges=[edge(schema, sp, "se0", "s0", "s1", {"weight": 3.5})],
        )
    with api("POST /models/instances/delete (data_modeling.instances.delete, during sync)"):
        client.data_modeling.instances.delete(nodes=dm.NodeId(sp, "s2"))

    pages, _ = sync_until_short_page(client, query, "stream after backfill")
    changed_nodes = by_xid([n for p in pages for n in p.nodes])
    changed_edges = by_xid([e for p in pages for e in p.edges])
    assert set(changed_nodes) == {"s1", "s2", "s5"}, (
        f"sync must deliver exactly the changed nodes, got {sorted(changed_nodes)}"
    )
    assert set(changed_edges) == {"se0", "se1"}, (
        f"sync must deliver the updated and the cascaded edge, got {sorted(changed_edges)}"
    )

    s1 = changed_nodes["s1"]
    assert s1.deleted_time is None and s1.version == 2
    assert props_of(s1, view)["text"] == "updated after backfill"
    assert props_of(s1, view)["int64"] == 1, "sync must return all properties of an updated node"
    assert changed_nodes["s5"].version == 1 and changed_nodes["s5"].deleted_time is None

    s2 = changed_nodes["s2"]
    assert isinstance(s2.deleted_time, int) and s2.deleted_time > 0, f"s2 tombstone deletedTime is {s2.deleted_time!r}"
    se1 = changed_edges["se1"]
    assert isinstance(se1.deleted_time, int) and se1.deleted_time > 0, (
        f"deleting s2 must produce a tombstone for its edge se1, deletedTime is {se1.deleted_time!r}"
    )
    se0 = changed_edges["se0"]
    assert se0.deleted_time is None and se0.version == 2
    assert props_of(se0, schema.related_edge)["weight"] == 3.5

    final = sync_once(client, query, "caught up again")
    assert final.nodes == [] and final.edges == []
    assert final.cursors["nodes"] and final.cursors["edges"], "an empty page must still return cursors"


def test_sync_one_phase_returns_live_instances_once(
    client: CogniteClient, schema: Schema, sync_seed: dict[str, Any]
) -> None:
    query = sync_query_for(schema, "one_phase", node_limit=3)
    pages, _ = sync_until_short_page(client, query, "one_phase from scratch")
    seen = by_xid([n for p in pages for n in p.nodes])
    assert set(seen) == {"s0", "s1", "s3", "s4", "s5"}, (
        f"one_phase from scratch must return every live node once (s2 was deleted before), got {sorted(seen)}"
    )
    assert all(n.deleted_time is None for n in seen.values())


def test_sync_backfill_returns_already_deleted_instances_on_request(
    client: CogniteClient, schema: Schema, run_id: str
) -> None:
    """`skipAlreadyDeleted: false` brings the tombstones of instances deleted before the sync
    began, with their `deletedTime`: how the replicator's `verify` learns when an instance that
    CDF no longer lists was deleted."""
    sp, view = f"interop_tombstones_{run_id}", schema.all_types_view
    with api("POST /models/spaces (data_modeling.spaces.apply)"):
        client.data_modeling.spaces.apply(dm.SpaceApply(sp))
    with api("POST /models/instances (data_modeling.instances.apply)"):
        client.data_modeling.instances.apply(
            nodes=[node(sp, xid, view, minimal_properties(f"tombstone check {xid}")) for xid in ("sd0", "sd1")]
        )
    with api("POST /models/instances/delete (data_modeling.instances.delete)"):
        client.data_modeling.instances.delete(nodes=dm.NodeId(sp, "sd1"))
    only_these = flt.And(flt.HasData(views=[view]), flt.Equals(["node", "space"], sp))

    def backfill(skip: bool) -> dict[str, Any]:
        query = sync_query({"nodes": node_sync(only_these, 10, "one_phase", skip)}, {"nodes": select_all(view)})
        pages, _ = sync_until_short_page(client, query, f"one_phase, skipAlreadyDeleted={skip}")
        return by_xid([n for p in pages for n in p.nodes])

    skipped = backfill(True)
    assert set(skipped) == {"sd0"}, f"the default leaves deleted instances out, got {sorted(skipped)}"
    everything = backfill(False)
    assert set(everything) == {"sd0", "sd1"}, f"skipAlreadyDeleted=false, got {sorted(everything)}"
    assert everything["sd0"].deleted_time is None
    tombstone = everything["sd1"]
    assert isinstance(tombstone.deleted_time, int) and tombstone.deleted_time > 0, (
        f"sd1 must come back as a tombstone with deletedTime, got {tombstone.deleted_time!r}"
    )


def test_sync_no_backfill_sees_only_later_changes(
    client: CogniteClient, schema: Schema, sync_seed: dict[str, Any]
) -> None:
    sp, view = schema.sync_space, schema.all_types_view
    query = sync_query_for(schema, "no_backfill", node_limit=100)
    first = sync_once(client, query, "no_backfill first call")
    assert first.nodes == [], f"no_backfill must not return existing nodes, got {[n.external_id for n in first.nodes]}"

    with api("POST /models/instances (data_modeling.instances.apply)"):
        client.data_modeling.instances.apply(node(sp, "s3", view, {"boolean": False}))
    after = sync_once(client, query, "no_backfill after one change")
    assert [n.external_id for n in after.nodes] == ["s3"]
    assert props_of(after.nodes[0], view)["boolean"] is False


def test_sync_invalid_cursor_is_rejected(client: CogniteClient, schema: Schema) -> None:
    query = sync_query_for(schema, "two_phase", node_limit=10)
    query.cursors = {"nodes": "bm90LWEtY3Vyc29y"}
    expect_api_error(
        "POST /models/instances/sync with a made-up cursor",
        400,
        INVALID_CURSOR_MESSAGE,
        client.data_modeling.instances.sync,
        query,
    )


def test_sync_backfill_sort_requires_two_phase(client: CogniteClient, schema: Schema) -> None:
    expr = node_sync(sync_nodes_filter(schema), 10, "one_phase")
    expr.backfill_sort = [dm.InstanceSort(["node", "externalId"])]
    query = sync_query({"nodes": expr}, {"nodes": select_all(schema.all_types_view)})
    expect_api_error(
        "POST /models/instances/sync with backfillSort in onePhase mode",
        400,
        "Backfill sort can only be used with two-phase sync.",
        client.data_modeling.instances.sync,
        query,
    )


# --- schema rules and view filters ---------------------------------------------------------------


def test_container_constraints_and_indexes_come_back_with_state(client: CogniteClient, schema: Schema) -> None:
    s = schema.schema_space
    container = dm.ContainerApply(
        s,
        "Constrained",
        properties={
            "tag": container_property(dm.Text(), nullable=False),
            "levels": container_property(dm.Int32(is_list=True)),
        },
        used_for="node",
        constraints={
            "needsBase": RequiresConstraintWrite(require=schema.base),
            "uniqueTag": UniquenessConstraintWrite(properties=["tag"]),
        },
        indexes={
            "byTag": BTreeIndexWrite(properties=["tag"], cursorable=True),
            "byLevels": InvertedIndexWrite(properties=["levels"]),
        },
    )
    with api("POST /models/containers with constraints and indexes (data_modeling.containers.apply)"):
        applied = client.data_modeling.containers.apply(container)
    with api("POST /models/containers/byids (data_modeling.containers.retrieve)"):
        got = client.data_modeling.containers.retrieve(container.as_id())
    assert got is not None
    for read in (applied, got):
        assert set(read.constraints) == {"needsBase", "uniqueTag"}
        assert set(read.indexes) == {"byTag", "byLevels"}
        for name, item in [*read.constraints.items(), *read.indexes.items()]:
            assert item.state == "current", f"{name} has state {item.state!r}"
        assert read.constraints["needsBase"].require == schema.base
        assert read.constraints["uniqueTag"].properties == ["tag"]
        assert read.indexes["byTag"].properties == ["tag"] and read.indexes["byTag"].cursorable is True
        assert read.properties["tag"].constraint_state.nullability == "current"


def gauge_status_enum(*values: str) -> Enum:
    return Enum(values={v: EnumValue() for v in values})


def test_enum_values_may_be_added_but_not_removed(client: CogniteClient, schema: Schema) -> None:
    s = schema.schema_space
    cid = dm.ContainerId(s, "EnumGrowth")

    def apply(*values: str) -> Any:
        return client.data_modeling.containers.apply(
            dm.ContainerApply(s, cid.external_id, properties={"state": container_property(gauge_status_enum(*values))})
        )

    with api("POST /models/containers (data_modeling.containers.apply, enum)"):
        apply("on", "off")
    with api("POST /models/containers adding an enum value (data_modeling.containers.apply)"):
        grown = apply("on", "off", "standby")
    assert set(grown.properties["state"].type.values) == {"on", "off", "standby"}
    expect_api_error("POST /models/containers removing an enum value", 400, None, apply, "on", "standby")


@dataclass(frozen=True)
class FilterSchema:
    space: str
    base: dm.ViewId
    running: dm.ViewId
    typed: dm.ViewId
    at_running_site: dm.ViewId
    gauge_type: dm.DirectRelationReference


@pytest.fixture(scope="module")
def filter_schema(client: CogniteClient, schema: Schema, run_id: str) -> FilterSchema:
    s = schema.schema_space
    fs = FilterSchema(
        space=f"interop_filter_{run_id}",
        base=dm.ViewId(s, "Gauge", "v1"),
        running=dm.ViewId(s, "RunningGauge", "v1"),
        typed=dm.ViewId(s, "TypedGauge", "v1"),
        at_running_site=dm.ViewId(s, "AtRunningSite", "v1"),
        gauge_type=dm.DirectRelationReference(s, "GaugeType"),
    )
    container = dm.ContainerId(s, "Gauge")
    props = {
        "label": dm.MappedPropertyApply(container, "label"),
        "state": dm.MappedPropertyApply(container, "state"),
        "site": dm.MappedPropertyApply(container, "site"),
    }
    state = fs.base.as_property_ref("state")
    with api("POST /models/spaces + containers + views with filters (apply)"):
        client.data_modeling.spaces.apply(dm.SpaceApply(fs.space))
        client.data_modeling.containers.apply(
            dm.ContainerApply(
                s,
                "Gauge",
                properties={
                    "label": container_property(dm.Text()),
                    "state": container_property(gauge_status_enum("running", "stopped")),
                    "site": container_property(dm.DirectRelation()),
                },
                used_for="node",
            )
        )
        client.data_modeling.views.apply(
            [
                dm.ViewApply(s, "Gauge", "v1", properties=props),
                dm.ViewApply(s, "RunningGauge", "v1", properties=props, filter=flt.Equals(state, "running")),
                dm.ViewApply(s, "TypedGauge", "v1", properties=props, filter=flt.Equals(["node", "type"], fs.gauge_type)),
                dm.ViewApply(
                    s,
                    "AtRunningSite",
                    "v1",
                    properties=props,
                    filter=flt.Nested(fs.base.as_property_ref("site"), flt.Equals(state, "running")),
                ),
            ]
        )
    with api("POST /models/instances (data_modeling.instances.apply, gauges)"):
        client.data_modeling.instances.apply(
            [
                gauge(fs, "site-a", state="running"),
                gauge(fs, "site-b", state="stopped"),
                gauge(fs, "g1", typed=True, state="running", site=ref(fs.space, "site-b")),
                gauge(fs, "g2", state="stopped", site=ref(fs.space, "site-a")),
            ]
        )
    return fs


def gauge(fs: FilterSchema, xid: str, typed: bool = False, **props: Any) -> dm.NodeApply:
    return dm.NodeApply(
        fs.space, xid, type=fs.gauge_type if typed else None, sources=[dm.NodeOrEdgeData(fs.base, props)]
    )


def members(client: CogniteClient, fs: FilterSchema, view: dm.ViewId) -> list[str]:
    with api(f"POST /models/instances/list hasData({view.external_id}) (data_modeling.instances.list)"):
        listed = client.data_modeling.instances.list(
            instance_type="node", filter=flt.HasData(views=[view]), space=fs.space, limit=-1
        )
    return sorted(n.external_id for n in listed)


def test_view_filters_round_trip_and_select_members(client: CogniteClient, filter_schema: FilterSchema) -> None:
    fs = filter_schema
    with api("POST /models/views/byids (data_modeling.views.retrieve, filtered views)"):
        views = {v.as_id(): v for v in client.data_modeling.views.retrieve([fs.running, fs.typed, fs.at_running_site])}
    assert views[fs.running].filter is not None
    running = views[fs.running].filter
    assert isinstance(running, flt.Equals), f"RunningGauge filter came back as {running!r}"
    assert list(running.dump()["equals"]["property"]) == [fs.base.space, "Gauge/v1", "state"]
    assert running.dump()["equals"]["value"] == "running"
    assert isinstance(views[fs.at_running_site].filter, flt.Nested)

    assert members(client, fs, fs.running) == ["g1", "site-a"]
    assert members(client, fs, fs.typed) == ["g1"]
    assert members(client, fs, fs.at_running_site) == ["g2"]
    with api("POST /models/instances/list with sources of a filtered view"):
        listed = client.data_modeling.instances.list(
            instance_type="node", sources=[fs.running], filter=flt.HasData(views=[fs.running]), space=fs.space
        )
    assert {n.external_id: props_of(n, fs.running)["state"] for n in listed} == {"g1": "running", "site-a": "running"}
    with api("POST /models/instances/aggregate count (data_modeling.instances.aggregate)"):
        count = client.data_modeling.instances.aggregate(
            fs.running, dm.aggregations.Count("externalId"), instance_type="node", space=fs.space
        )
    assert count.value == 2


def test_leaving_a_filtered_view_emits_no_sync_event(client: CogniteClient, filter_schema: FilterSchema) -> None:
    fs = filter_schema
    query = sync_query(
        {"nodes": node_sync(flt.HasData(views=[fs.running]), 100, "one_phase")},
        {"nodes": select_all(fs.running)},
    )
    first = sync_once(client, query, "one_phase over a filtered view")
    assert sorted(n.external_id for n in first.nodes) == ["g1", "site-a"]

    # g1 stops (leaves RunningGauge); g2 starts (enters by its own change); site-b starts,
    # which moves g1 into AtRunningSite through the nested filter.
    with api("POST /models/instances (data_modeling.instances.apply, move gauges)"):
        client.data_modeling.instances.apply(
            [
                gauge(fs, "g1", typed=True, state="stopped", site=ref(fs.space, "site-b")),
                gauge(fs, "g2", state="running", site=ref(fs.space, "site-a")),
                gauge(fs, "site-b", state="running"),
            ]
        )
    changes = sync_once(client, query, "one_phase after members moved")
    assert sorted(n.external_id for n in changes.nodes) == ["g2", "site-b"], (
        "an instance that left the view's filter must produce no sync event"
    )
    assert members(client, fs, fs.running) == ["g2", "site-a", "site-b"]
    assert members(client, fs, fs.at_running_site) == ["g1", "g2"], (
        "g1 entered AtRunningSite because its site changed"
    )


# --- RAW ------------------------------------------------------------------------------------------

AWKWARD_ROWS: dict[str, dict[str, Any]] = {
    "a/b": {"kind": "slash", "n": 1},
    "with space": {"kind": "space", "n": 2, "nested": {"a": [1, 2]}},
    "ø✓": {"kind": "unicode", "n": 3, "text": "blåbær ✓"},
    "per%cent?q=1#frag": {"kind": "reserved characters", "n": 4},
    "plain": {"kind": "plain", "n": 5, "flag": True, "nothing": None},
}


@pytest.fixture(scope="module")
def raw_table(client: CogniteClient, run_id: str) -> tuple[str, str]:
    db, table = f"interop_db_{run_id}", "awkward keys"
    with api("POST /raw/dbs (raw.databases.create)"):
        created = client.raw.databases.create(db)
    assert created.name == db
    with api("POST /raw/dbs/{db}/tables (raw.tables.create)"):
        t = client.raw.tables.create(db, table)
    assert t.name == table
    with api("POST /raw/dbs/{db}/tables/{table}/rows (raw.rows.insert)"):
        client.raw.rows.insert(db, table, AWKWARD_ROWS)
    return db, table


def test_raw_databases_and_tables(client: CogniteClient, raw_table: tuple[str, str]) -> None:
    db, table = raw_table
    with api("GET /raw/dbs (raw.databases.list)"):
        dbs = client.raw.databases.list(limit=-1)
    assert db in {d.name for d in dbs}
    with api("GET /raw/dbs/{db}/tables (raw.tables.list)"):
        tables = client.raw.tables.list(db, limit=-1)
    assert [t.name for t in tables] == [table]
    expect_api_error("POST /raw/dbs with an existing name", 400, None, client.raw.databases.create, db)


def test_raw_rows_with_awkward_keys(client: CogniteClient, raw_table: tuple[str, str]) -> None:
    db, table = raw_table
    for key, columns in AWKWARD_ROWS.items():
        call = f"GET /raw/dbs/{{db}}/tables/{{table}}/rows/{{key}} for key {key!r} (raw.rows.retrieve)"
        with api(call):
            row = client.raw.rows.retrieve(db, table, key)
        assert row is not None, f"{call}: row not found"
        assert row.key == key, f"{call}: key came back as {row.key!r}"
        assert row.columns == columns, f"{call}: columns {row.columns!r}, expected {columns!r}"
        assert row.last_updated_time and row.last_updated_time > 0
    with api("GET /raw/dbs/{db}/tables/{table}/rows/{key} for a missing key (raw.rows.retrieve)"):
        missing = client.raw.rows.retrieve(db, table, "no such key/ø")
    assert missing is None, f"retrieving a missing row must give None (404), got {missing!r}"


def test_raw_rows_list_paging_and_columns(client: CogniteClient, raw_table: tuple[str, str]) -> None:
    db, table = raw_table
    with api("GET /raw/dbs/{db}/tables/{table}/rows?limit=2 (raw.rows.list)"):
        two = client.raw.rows.list(db, table, limit=2)
    assert len(two) == 2
    assert {r.key for r in two} <= set(AWKWARD_ROWS)

    with api("GET /raw/.../rows?limit=2 followed by nextCursor (raw.rows iterate, chunk_size=2)"):
        chunks = list(client.raw.rows(db, table, chunk_size=2))
    assert all(len(chunk) <= 2 for chunk in chunks)
    assert {r.key: r.columns for chunk in chunks for r in chunk} == AWKWARD_ROWS
    keys = [r.key for chunk in chunks for r in chunk]
    assert sorted(keys) == sorted(AWKWARD_ROWS), f"paging rows must visit every row once, got {keys}"

    with api("GET /raw/.../cursors, then GET /raw/.../rows?columns=n,kind per cursor (raw.rows.list)"):
        narrow = client.raw.rows.list(db, table, columns=["n", "kind"], limit=-1)
    assert {r.key: r.columns for r in narrow} == {k: {"n": v["n"], "kind": v["kind"]} for k, v in AWKWARD_ROWS.items()}
    with api("GET /raw/.../rows?columns=, (raw.rows.list, keys only)"):
        keys_only = client.raw.rows.list(db, table, columns=[], limit=-1)
    assert {r.key: r.columns for r in keys_only} == dict.fromkeys(AWKWARD_ROWS, {})


def test_raw_rows_list_everything(client: CogniteClient, raw_table: tuple[str, str]) -> None:
    """`rows.list(limit=-1)` is how SDK users read a whole table (8.x: parallel cursors, `columns=`)."""
    db, table = raw_table
    with api("GET /raw/.../rows with every column (raw.rows.list, limit=-1)"):
        everything = client.raw.rows.list(db, table, limit=-1)
    got = {r.key: r.columns for r in everything}
    assert got == AWKWARD_ROWS, (
        "GET /raw/.../rows (raw.rows.list, limit=-1; 8.x sends columns= with each partition cursor) "
        f"must return every row with all its columns, got {got}"
    )


def test_raw_rows_replace_and_delete(client: CogniteClient, raw_table: tuple[str, str]) -> None:
    db, table = raw_table
    with api("POST /raw/.../rows (raw.rows.insert, replace)"):
        client.raw.rows.insert(db, table, {"plain": {"replaced": "yes"}})
    with api("GET /raw/.../rows/plain (raw.rows.retrieve)"):
        replaced = client.raw.rows.retrieve(db, table, "plain")
    assert replaced is not None and replaced.columns == {"replaced": "yes"}, "insert must replace the whole row"

    with api("POST /raw/dbs/{db}/tables/{table}/rows/delete (raw.rows.delete)"):
        client.raw.rows.delete(db, table, ["a/b", "ø✓", "never existed"])
    with api("GET /raw/.../rows after delete (raw.rows iterate)"):
        left = [r.key for chunk in client.raw.rows(db, table, chunk_size=100) for r in chunk]
    assert sorted(left) == sorted(["with space", "per%cent?q=1#frag", "plain"])
    with api("GET /raw/.../rows/a%2Fb after delete (raw.rows.retrieve)"):
        assert client.raw.rows.retrieve(db, table, "a/b") is None


# --- extraction pipelines -------------------------------------------------------------------------

PIPELINE_CONFIG_V1 = "sync:\n  space: plant_data\n  page-size: 1000\n"
PIPELINE_CONFIG_V2 = 'sync:\n  space: plant_data\n  page-size: 2000  # raised\nnotes: "ø ✓"\n'


@pytest.fixture(scope="module")
def pipeline_xid(run_id: str) -> str:
    return f"interop-pipeline-{run_id}"


def test_extraction_pipeline_create(client: CogniteClient, pipeline_xid: str) -> None:
    """Real CDF needs a data set and the pipeline before configs or runs can be stored."""
    with api("POST /datasets (data_sets.create)"):
        data_set = client.data_sets.create(DataSetWrite(external_id=f"{pipeline_xid}-ds", name="Interop data set"))
    with api("POST /extpipes (extraction_pipelines.create)"):
        created = client.extraction_pipelines.create(
            ExtractionPipelineWrite(external_id=pipeline_xid, name="Interop pipeline", data_set_id=data_set.id)
        )
    assert created.external_id == pipeline_xid and created.data_set_id == data_set.id
    with api("POST /extpipes/byids (extraction_pipelines.retrieve)"):
        got = client.extraction_pipelines.retrieve(external_id=pipeline_xid)
    assert got is not None and got.name == "Interop pipeline"


def test_extraction_pipeline_config_revisions(client: CogniteClient, pipeline_xid: str) -> None:
    call = "POST /extpipes/config (extraction_pipelines.config.create)"
    with api(call):
        first = client.extraction_pipelines.config.create(
            ExtractionPipelineConfigWrite(external_id=pipeline_xid, config=PIPELINE_CONFIG_V1, description="first")
        )
    assert first.external_id == pipeline_xid and first.config == PIPELINE_CONFIG_V1
    assert isinstance(first.revision, int)
    with api(call):
        second = client.extraction_pipelines.config.create(
            ExtractionPipelineConfigWrite(
                external_id=pipeline_xid, config=PIPELINE_CONFIG_V2, description="raise page size"
            )
        )
    assert second.revision == first.revision + 1, f"revisions {first.revision} then {second.revision}"

    with api("GET /extpipes/config?externalId=... (extraction_pipelines.config.retrieve)"):
        latest = client.extraction_pipelines.config.retrieve(pipeline_xid)
    assert latest.config == PIPELINE_CONFIG_V2, f"latest config is {latest.config!r}"
    assert latest.revision == second.revision and latest.description == "raise page size"
    assert latest.created_time and latest.created_time > 0

    with api("GET /extpipes/config?externalId=...&revision=N (extraction_pipelines.config.retrieve)"):
        old = client.extraction_pipelines.config.retrieve(pipeline_xid, revision=first.revision)
    assert old.config == PIPELINE_CONFIG_V1

    with api("GET /extpipes/config/revisions (extraction_pipelines.config.list)"):
        revisions = client.extraction_pipelines.config.list(pipeline_xid)
    assert sorted(r.revision for r in revisions) == [first.revision, second.revision]

    # CDF documents only "400" here; any client error means "no remote config" to a caller.
    expect_api_error(
        "GET /extpipes/config for an unknown pipeline",
        range(400, 500),
        None,
        client.extraction_pipelines.config.retrieve,
        f"{pipeline_xid}-unknown",
    )


def test_extraction_pipeline_runs(client: CogniteClient, pipeline_xid: str) -> None:
    statuses = ["seen", "failure", "success"]
    created = []
    for status in statuses:
        with api(f"POST /extpipes/runs status={status} (extraction_pipelines.runs.create)"):
            run = client.extraction_pipelines.runs.create(
                ExtractionPipelineRunWrite(
                    extpipe_external_id=pipeline_xid, status=status, message=f"interop {status} ø✓"
                )
            )
        assert run.status == status and run.message == f"interop {status} ø✓", f"runs.create returned {run!r}"
        assert isinstance(run.id, int) and run.created_time and run.created_time > 0
        created.append(run)
        time.sleep(0.01)

    with api("GET /extpipes/runs?externalId=... (extraction_pipelines.runs.list)"):
        runs = client.extraction_pipelines.runs.list(external_id=pipeline_xid, limit=-1)
    assert [r.status for r in runs] == list(reversed(statuses)), (
        f"runs must be listed newest first, got {[r.status for r in runs]}"
    )
    assert {r.id for r in runs} == {r.id for r in created}

    with api("POST /extpipes/runs/list with a status filter (extraction_pipelines.runs.list)"):
        failures = client.extraction_pipelines.runs.list(external_id=pipeline_xid, statuses=["failure"], limit=-1)
    assert [r.message for r in failures] == ["interop failure ø✓"]


# --- auth -------------------------------------------------------------------------------------------


def test_wrong_client_secret_is_refused(emulator: EmulatorSettings) -> None:
    bad = make_client(
        EmulatorSettings(
            base_url=emulator.base_url,
            token_url=emulator.token_url,
            project=emulator.project,
            client_id=emulator.client_id,
            client_secret="definitely-not-the-secret",
        )
    )
    with pytest.raises(Exception) as info:
        bad.data_modeling.spaces.list(limit=1)
    assert "invalid_client" in str(info.value), (
        f"POST /oauth2/token with a wrong secret must answer the OAuth error invalid_client, got {info.value!r}"
    )


# --- runs last: moves the emulator clock three days ahead --------------------------------------------


def test_sync_expired_cursor_after_three_days(
    emulator: EmulatorSettings, client: CogniteClient, schema: Schema
) -> None:
    query = sync_query_for(schema, "one_phase", node_limit=1000)
    sync_once(client, query, "cursor that is about to expire")
    stale = dict(query.cursors)

    emulator_control(emulator, "clock/advance", {"ms": THREE_DAYS_AND_A_MS})
    # Tokens do not outlive three days either: a new client fetches a fresh one.
    later = make_client(emulator)
    query.cursors = stale
    expect_api_error(
        "POST /models/instances/sync with a cursor older than three days",
        400,
        EXPIRED_CURSOR_MESSAGE,
        later.data_modeling.instances.sync,
        query,
    )

    if SDK_MAJOR >= 8:
        query.cursors = stale
        query.allow_expired_cursors_and_accept_missed_deletes = True
        page = sync_once(later, query, "expired cursor with allowExpiredCursorsAndAcceptMissedDeletes")
        assert page.nodes == [], "nothing changed since the cursor was issued"

    fresh = sync_query_for(schema, "one_phase", node_limit=1000)
    restarted = sync_once(later, fresh, "restart without cursor after expiry")
    assert {n.external_id for n in restarted.nodes} == {"s0", "s1", "s3", "s4", "s5"}
