//! Decoding Parquet files on every core, in order.
//!
//! Files are cut into their row groups. Up to `threads` row groups are decoded at once,
//! each on its own task, and their batches come out in file order, then row group order:
//! exactly the batches, in exactly the order, that reading the files one after the other
//! gives. For raw files that is arrival order, so the newest change of a key still arrives
//! last. Memory: at most `threads` decoded row groups wait for their consumer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use tokio::task::JoinHandle;

use super::build::RawFile;
use super::error::{SnapshotError, SnapshotResult};
use super::reader::{self, BatchStream, RowGroups};

/// Raw files whose footers are fetched ahead of the row groups being decoded, to hide S3
/// latency.
const FILES_OPENED_AHEAD: usize = 2;

/// The publish batches of one row group of a raw file.
pub(crate) struct DecodedGroup {
    /// Which of the files read the row group belongs to (its index in their slice).
    pub(crate) file: usize,
    pub(crate) batches: Vec<RecordBatch>,
}

/// The row groups of raw `files` in their publish form, decoded `threads` at a time, in
/// arrival order.
pub(crate) fn decode_in_order<'a>(
    store: &'a ObjectStoreRef,
    files: &'a [RawFile],
    raw_schema: SchemaRef,
    threads: usize,
) -> impl Stream<Item = SnapshotResult<DecodedGroup>> + Send + 'a {
    stream::iter(files.iter().enumerate())
        .map(move |(position, file)| async move {
            let groups = reader::row_groups(store, &file.path, file.size).await?;
            let units = (0..groups.count()).map(move |index| {
                Ok::<_, SnapshotError>((position, file.path.clone(), groups.clone(), index))
            });
            Ok::<_, SnapshotError>(stream::iter(units))
        })
        .buffered(FILES_OPENED_AHEAD)
        .try_flatten()
        .map_ok(move |(position, path, groups, index)| {
            decode_group(
                groups,
                index,
                path,
                position,
                Form::Publish(raw_schema.clone()),
            )
        })
        .try_buffered(threads.max(1))
}

/// The batches of a previously published file, labelled with `schema`, decoded `threads`
/// row groups at a time.
pub(crate) fn published_in_order(
    groups: RowGroups,
    path: String,
    schema: SchemaRef,
    threads: usize,
) -> BatchStream<'static> {
    let units = (0..groups.count()).map(move |index| (groups.clone(), index));
    stream::iter(units)
        .map(move |(groups, index)| {
            decode_group(
                groups,
                index,
                path.clone(),
                0,
                Form::Labelled(schema.clone()),
            )
        })
        .buffered(threads.max(1))
        .map_ok(|group| stream::iter(group.batches.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// What a decoded row group becomes.
enum Form {
    /// The publish form of rows of this raw table schema.
    Publish(SchemaRef),
    /// The rows as stored, labelled with this schema.
    Labelled(SchemaRef),
}

/// Decodes row group `index` of the file at `position` on a task of its own.
fn decode_group(
    groups: RowGroups,
    index: usize,
    path: String,
    position: usize,
    form: Form,
) -> Spawned<DecodedGroup> {
    Spawned(tokio::spawn(async move {
        let object = groups.open(index, &path)?;
        let batches = match form {
            Form::Publish(raw_schema) => reader::publish_batches(object, &path, raw_schema),
            Form::Labelled(schema) => reader::batches_as(object, &path, schema),
        };
        let batches = batches.try_collect().await?;
        Ok(DecodedGroup {
            file: position,
            batches,
        })
    }))
}

/// A spawned task, cancelled when dropped (a failed read stops the decoding ahead of it).
struct Spawned<T>(JoinHandle<SnapshotResult<T>>);

impl<T> Future for Spawned<T> {
    type Output = SnapshotResult<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| {
            joined.map_err(|source| SnapshotError::Worker {
                context: "decoding a raw row group",
                source,
            })?
        })
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
