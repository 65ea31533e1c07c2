//! S3 requests of a phase, counted on the local lake.
//!
//! Every object store the process opens for `file://` URLs (the Delta tables and the
//! publish layer alike) is wrapped in [`Counting`], which counts each call as the S3
//! requests it would make: a ranged read of many ranges as the GETs S3's client makes after
//! coalescing them (the local store reads each range apart), a listing as one request per
//! 1,000 keys, a multipart upload as its create, parts and complete, a batch delete as one
//! request per 1,000 keys, a rename as a copy and a delete.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use deltalake::DeltaResult;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};
use deltalake::logstore::{ObjectStoreFactory, ObjectStoreRef, StorageConfig};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use url::Url;

/// Keys per page of a listing and per batch delete.
const KEYS_PER_REQUEST: u64 = 1000;

static GET: AtomicU64 = AtomicU64::new(0);
static HEAD: AtomicU64 = AtomicU64::new(0);
static PUT: AtomicU64 = AtomicU64::new(0);
static LIST: AtomicU64 = AtomicU64::new(0);
static LISTED: AtomicU64 = AtomicU64::new(0);
static DELETE: AtomicU64 = AtomicU64::new(0);
static COPY: AtomicU64 = AtomicU64::new(0);

/// Counts the requests of every local store this process opens from now on.
pub(super) fn count_local_stores() {
    if let Ok(url) = Url::parse("file://") {
        deltalake::logstore::object_store_factories().insert(url, Arc::new(CountingFactory));
    }
}

/// The requests counted so far, by S3 operation.
pub(super) fn counted() -> Value {
    let listed = LISTED.load(Ordering::Relaxed);
    let pages = LIST.load(Ordering::Relaxed) + listed / KEYS_PER_REQUEST;
    let counts = [
        ("get", GET.load(Ordering::Relaxed)),
        ("head", HEAD.load(Ordering::Relaxed)),
        ("put", PUT.load(Ordering::Relaxed)),
        ("list", pages),
        ("delete", DELETE.load(Ordering::Relaxed)),
        ("copy", COPY.load(Ordering::Relaxed)),
    ];
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let mut value = json!({ "total": total });
    for (name, n) in counts {
        value[name] = json!(n);
    }
    value
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

struct CountingFactory;

impl ObjectStoreFactory for CountingFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let (store, path) = object_store::parse_url_opts(url, &config.raw)?;
        Ok((Arc::new(Counting(Arc::from(store))), path))
    }
}

/// A store that counts the S3 requests of its calls.
#[derive(Debug)]
struct Counting(Arc<dyn ObjectStore>);

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        add(&PUT, 1);
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        add(&PUT, 1);
        let inner = self.0.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountingUpload(inner)))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        add(if options.head { &HEAD } else { &GET }, 1);
        self.0.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        object_store::coalesce_ranges(
            ranges,
            |range| self.get_range(location, range),
            object_store::OBJECT_STORE_COALESCE_DEFAULT,
        )
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let deleted = self.0.delete_stream(locations);
        let mut keys = 0u64;
        deleted
            .inspect(move |_| {
                if keys.is_multiple_of(KEYS_PER_REQUEST) {
                    add(&DELETE, 1);
                }
                keys += 1;
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        add(&LIST, 1);
        self.0.list(prefix).inspect(|_| add(&LISTED, 1)).boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        add(&LIST, 1);
        self.0
            .list_with_offset(prefix, offset)
            .inspect(|_| add(&LISTED, 1))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        add(&LIST, 1);
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        add(&COPY, 1);
        self.0.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::RenameOptions,
    ) -> Result<()> {
        add(&COPY, 1);
        add(&DELETE, 1);
        self.0.rename_opts(from, to, options).await
    }
}

/// A multipart upload that counts its parts and its completion.
#[derive(Debug)]
struct CountingUpload(Box<dyn MultipartUpload>);

#[async_trait]
impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        add(&PUT, 1);
        self.0.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        add(&PUT, 1);
        self.0.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        add(&DELETE, 1);
        self.0.abort().await
    }
}
