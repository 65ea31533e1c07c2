//! What verify asks CDF, each call counted: live counts (aggregate), the keys of a stream's
//! query (list without properties), the current state of sampled instances (byids with the
//! stream's sources) and the tombstones of instances that are gone (sync).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt as _, TryStreamExt as _, stream};

use super::watermark::RawCheckpoint;
use crate::cdf::dto::{
    AggregateRequest, ByIdsRequest, ByIdsSource, Filter, Instance, InstanceId, InstanceType,
    ListRequest, MAX_BYIDS_ITEMS, MAX_LIST_LIMIT, NodeReference, SelectSource, SyncExpression,
    SyncMode, SyncRequest, SyncSelect, ViewReference,
};
use crate::cdf::{CdfClient, CdfError};
use crate::sync::state_store::{Owner, StateRow};

/// An instance key: (`space`, `externalId`).
pub type Key = (String, String);

/// What the listing says of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The instance.
    pub key: Key,
    /// Its version now.
    pub version: i64,
    /// When CDF last changed it, epoch milliseconds.
    pub last_updated_time: i64,
}

/// The result-set name of verify's sync requests.
const TOMBSTONES: &str = "tombstones";

/// A CDF client bound to the run's deadline, counting requests, with the configured
/// parallelism for the calls that fan out (byids, tombstones).
#[derive(Debug, Clone)]
pub struct CdfReads {
    client: CdfClient,
    parallelism: usize,
    requests: Arc<AtomicU64>,
}

impl CdfReads {
    /// Reads through `client`, at most `parallelism` calls at once.
    pub fn new(client: CdfClient, parallelism: usize) -> Self {
        Self {
            client,
            parallelism: parallelism.max(1),
            requests: Arc::default(),
        }
    }

    /// The requests made so far (a call that was retried counts once).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts one request that went through another path (the state rows).
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The checkpoints in the state rows of this lake's streams (one paged list call):
    /// they extend a file's watermark past its last commit (see [`super::watermark`]).
    /// Rows of another lake are left out; state rows that cannot be read only make the
    /// watermarks come from the Delta log alone.
    pub async fn state_checkpoints(
        &self,
        database: &str,
        table: &str,
        lake_id: Option<&str>,
    ) -> BTreeMap<String, RawCheckpoint> {
        self.count_request();
        let rows = match self.client.list_all_rows(database, table, None).await {
            Ok(rows) => rows,
            Err(error) => {
                if !error.is_not_found() {
                    tracing::warn!(%error, "verify: cannot read the state rows; watermarks come from the Delta log alone");
                }
                return BTreeMap::new();
            }
        };
        rows.into_iter()
            .filter_map(|row| {
                let state = StateRow::parse(row.columns).ok()?;
                let ours = match lake_id {
                    Some(id) => !matches!(state.owner(id), Owner::Other { .. }),
                    None => state.lake_id.is_none(),
                };
                ours.then_some((
                    row.key,
                    RawCheckpoint {
                        checkpoint: state.checkpoint,
                    },
                ))
            })
            .collect()
    }

    /// Live instances with data in `view` matching `filter`, and, with `since`, those of
    /// them changed after `since` (epoch ms): one or two aggregate requests.
    pub async fn count(
        &self,
        view: &ViewReference,
        instance_type: InstanceType,
        filter: Option<Filter>,
        since: Option<i64>,
    ) -> Result<(u64, Option<u64>), CdfError> {
        self.count_request();
        let live = self
            .client
            .count_instances(&AggregateRequest::count(
                view.clone(),
                instance_type,
                filter.clone(),
            ))
            .await?;
        let changed = match since {
            None => None,
            Some(since) => {
                let prefix = instance_type.as_str();
                let range = Filter::Range {
                    property: vec![prefix.to_owned(), "lastUpdatedTime".to_owned()],
                    gt: Some(since.into()),
                    gte: None,
                    lt: None,
                    lte: None,
                };
                let filter = Filter::all_of(filter.into_iter().chain([range]).collect());
                self.count_request();
                Some(
                    self.client
                        .count_instances(&AggregateRequest::count(
                            view.clone(),
                            instance_type,
                            Some(filter),
                        ))
                        .await?,
                )
            }
        };
        Ok((live, changed))
    }

    /// Every instance of a query, without properties, page by page (⌈n/1000⌉ requests).
    pub async fn list_keys(
        &self,
        instance_type: InstanceType,
        filter: Option<Filter>,
        mut each: impl FnMut(Listed),
    ) -> Result<(), CdfError> {
        let mut cursor = None;
        loop {
            let request = ListRequest {
                instance_type,
                filter: filter.clone(),
                sources: Vec::new(),
                limit: MAX_LIST_LIMIT,
                cursor: cursor.take(),
            };
            self.count_request();
            let page = self.client.list_instances(&request).await?;
            for item in &page.items {
                each(Listed {
                    key: (item.space.clone(), item.external_id.clone()),
                    version: item.version,
                    last_updated_time: item.last_updated_time,
                });
            }
            match page.next_cursor {
                Some(next) if !page.items.is_empty() => cursor = Some(next),
                _ => return Ok(()),
            }
        }
    }

    /// The current state of `keys` with the properties of `sources`; keys that do not
    /// exist are absent from the answer. ⌈n/1000⌉ requests.
    pub async fn by_ids(
        &self,
        instance_type: InstanceType,
        keys: &[Key],
        sources: &[SelectSource],
    ) -> Result<HashMap<Key, Instance>, CdfError> {
        let pages: Vec<Vec<Instance>> = stream::iter(keys.chunks(MAX_BYIDS_ITEMS))
            .map(|chunk| async move {
                let request = ByIdsRequest {
                    items: chunk
                        .iter()
                        .map(|(space, external_id)| InstanceId {
                            instance_type,
                            space: space.clone(),
                            external_id: external_id.clone(),
                        })
                        .collect(),
                    sources: sources.iter().map(ByIdsSource::from).collect(),
                };
                self.count_request();
                self.client
                    .instances_by_ids(&request)
                    .await
                    .map(|answer| answer.items)
            })
            .buffered(self.parallelism)
            .try_collect()
            .await?;
        Ok(pages
            .into_iter()
            .flatten()
            .filter(|i| !i.is_deleted())
            .map(|i| ((i.space.clone(), i.external_id.clone()), i))
            .collect())
    }

    /// When each of `keys` was deleted, as CDF's tombstones say: a sync backfill of those
    /// instances with `skipAlreadyDeleted: false`. A key without a tombstone (and not live)
    /// is absent: it was purged, or never existed. About one request per 1000 keys.
    pub async fn deletion_times(
        &self,
        instance_type: InstanceType,
        keys: &[Key],
    ) -> Result<HashMap<Key, i64>, CdfError> {
        let chunks: Vec<HashMap<Key, i64>> = stream::iter(keys.chunks(MAX_LIST_LIMIT as usize))
            .map(|chunk| self.deletion_times_of(instance_type, chunk))
            .buffered(self.parallelism)
            .try_collect()
            .await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    async fn deletion_times_of(
        &self,
        instance_type: InstanceType,
        keys: &[Key],
    ) -> Result<HashMap<Key, i64>, CdfError> {
        let filter = Some(Filter::InstanceReferences(
            keys.iter()
                .map(|(space, external_id)| NodeReference::new(space, external_id))
                .collect(),
        ));
        let limit = MAX_LIST_LIMIT;
        let mut expression = match instance_type {
            InstanceType::Node => SyncExpression::nodes(filter, limit, SyncMode::TwoPhase),
            InstanceType::Edge => SyncExpression::edges(filter, limit, SyncMode::TwoPhase),
        };
        expression.skip_already_deleted = Some(false);
        let mut request = SyncRequest::single(TOMBSTONES, expression, SyncSelect::default());
        let mut deleted = HashMap::new();
        // The backfill holds at most one item per key: it ends with the first short page.
        for _ in 0..=keys.len() / limit as usize + 1 {
            self.count_request();
            let mut response = self.client.sync(&request).await?;
            let items = response.take_items(TOMBSTONES);
            let short = items.len() < limit as usize;
            for item in &items {
                if let Some(at) = item.deleted_time {
                    deleted.insert((item.space.clone(), item.external_id.clone()), at);
                }
            }
            if short {
                break;
            }
            let cursor = response.cursor_of(TOMBSTONES).map(str::to_owned);
            request = request.with_cursor(TOMBSTONES, cursor);
        }
        Ok(deleted)
    }
}
