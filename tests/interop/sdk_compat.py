"""The few places where cognite-sdk 7.8x and 8.x spell the same request differently.

Everything else in the interop checks is written once against the API both generations share;
only the names below differ between the two SDK lines we run against the emulator.
"""

from __future__ import annotations

from typing import Any, Literal

import cognite.client
from cognite.client.data_classes import data_modeling as dm
from cognite.client.data_classes.data_modeling import containers as _containers
from cognite.client.data_classes.data_modeling import query as dmq
from cognite.client.data_classes.filters import Filter

SDK_VERSION: str = cognite.client.__version__
SDK_MAJOR: int = int(SDK_VERSION.split(".", 1)[0])

SyncMode = Literal["one_phase", "two_phase", "no_backfill"]

# 8.x split container properties into a write class (ContainerPropertyApply) and a read class;
# 7.x uses ContainerProperty for both.
ContainerPropertyWrite: Any = getattr(dm, "ContainerPropertyApply", None) or dm.ContainerProperty

# 8.x has write classes for constraints and indexes (the read classes require `state`);
# 7.x uses one class for both.
RequiresConstraintWrite: Any = getattr(_containers, "RequiresConstraintApply", None) or _containers.RequiresConstraint
UniquenessConstraintWrite: Any = (
    getattr(_containers, "UniquenessConstraintApply", None) or _containers.UniquenessConstraint
)
BTreeIndexWrite: Any = getattr(_containers, "BTreeIndexApply", None) or _containers.BTreeIndex
InvertedIndexWrite: Any = getattr(_containers, "InvertedIndexApply", None) or _containers.InvertedIndex


def node_sync(filter: Filter, limit: int, mode: SyncMode, skip_already_deleted: bool = True) -> Any:
    """A node result set for `instances.sync` (8.x: *Sync classes; 7.x: the query classes)."""
    if SDK_MAJOR >= 8:
        return dmq.NodeResultSetExpressionSync(
            filter=filter, limit=limit, sync_mode=mode, skip_already_deleted=skip_already_deleted
        )
    return dmq.NodeResultSetExpression(
        filter=filter, limit=limit, sync_mode=mode, skip_already_deleted=skip_already_deleted
    )


def edge_sync(filter: Filter, limit: int, mode: SyncMode) -> Any:
    if SDK_MAJOR >= 8:
        return dmq.EdgeResultSetExpressionSync(filter=filter, limit=limit, sync_mode=mode)
    return dmq.EdgeResultSetExpression(filter=filter, limit=limit, sync_mode=mode)


def select_all(view: dm.ViewId) -> Any:
    """Select every property of `view` (the `["*"]` form the replicator uses)."""
    selector = dmq.SourceSelector(source=view, properties=["*"])
    if SDK_MAJOR >= 8:
        return dmq.SelectSync([selector])
    return dmq.Select([selector])


def sync_query(with_: dict[str, Any], select: dict[str, Any]) -> Any:
    if SDK_MAJOR >= 8:
        return dmq.QuerySync(with_=with_, select=select)
    return dmq.Query(with_=with_, select=select)
