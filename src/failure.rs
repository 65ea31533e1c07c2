//! What went wrong with one model, view, stream, file or table, and whether running again can
//! help.
//!
//! Every job reports its problems per part (the rest of the run goes on), and the Lambda edge
//! turns them into one `errorType`. A message alone cannot tell a CDF outage from a view that
//! the model lacks, so each failure carries its [`Cause`], decided where the typed error is
//! still at hand (a [`CdfError`], a [`LakeError`]) and never parsed back out of text.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::cdf::CdfError;
use crate::lake::LakeError;

/// Whether the same invocation, run again unchanged, can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Retry {
    /// The cause is transient: the next scheduled run picks the work up.
    Helps,
    /// The same run fails the same way until someone changes the data model, the
    /// configuration, the credentials or the permissions.
    Useless,
}

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Retry::Helps => "Retryable",
            Retry::Useless => "Permanent",
        })
    }
}

/// Declares [`Cause`] with its list and names, so that the names a failure, a metric and
/// a Lambda error type carry are spelled once.
macro_rules! causes {
    ($($(#[$meta:meta])* $name:ident,)*) => {
        /// Why a part of a run (or an invocation as a whole) failed. The names are the one
        /// vocabulary of failures: the `<Cause>` of the Lambda error type
        /// `Retryable.<Cause>` / `Permanent.<Cause>`, the `cause` of a failure in a run
        /// summary, and the `Failures<Cause>` metrics, so they are part of the
        /// operator-facing contract: add variants, never rename them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub enum Cause {
            $($(#[$meta])* $name,)*
        }

        impl Cause {
            /// Every cause, in the order declared.
            pub const ALL: &'static [Cause] = &[$(Cause::$name,)*];

            /// The cause's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Cause::$name => stringify!($name),)*
                }
            }

            /// The EMF metric counting failures of this cause: `Failures<Cause>`.
            pub(crate) fn metric_name(self) -> &'static str {
                match self {
                    $(Cause::$name => concat!("Failures", stringify!($name)),)*
                }
            }
        }
    };
}

causes! {
    /// CDF or its identity provider failed transiently (throttling, 5xx, network) for the
    /// whole retry budget.
    CdfUnavailable,
    /// The identity provider refused the client credentials.
    CdfAuthentication,
    /// CDF refused a request for good (a missing capability, a malformed request).
    CdfRejected,
    /// A configured data model does not exist in CDF.
    ModelNotFound,
    /// A configured or requested view is not part of its data model, or CDF has no
    /// definition for it.
    ViewNotFound,
    /// The lake's object store failed transiently.
    LakeUnavailable,
    /// The lake's object store refused access (credentials, permissions, bucket).
    LakeAccessDenied,
    /// Writers kept committing to the same Delta table first; the next run retries.
    CommitConflict,
    /// New data cannot be stored in the existing table without losing data.
    SchemaConflict,
    /// A view's raw table does not exist yet: its sync has not committed (see the sync's
    /// errors). The snapshot after its first successful sync publishes it.
    NotSynced,
    /// The local disk (the snapshot's spill directory) failed: full, or not writable.
    LocalStorage,
    /// The Delta log lacks what the run needs (log retention removed it, or another tool
    /// changed the table): a resync of the stream repairs it.
    LakeInconsistent,
    /// The Glue Data Catalog could not be reached or refused a request.
    CatalogUnavailable,
    /// A Glue table of the name the replicator would use belongs to someone else.
    CatalogConflict,
    /// The configuration names something that cannot be used as it is.
    InvalidConfiguration,
    /// The request (payload, command-line options) names a view or stream that does not exist.
    InvalidRequest,
    /// A defect of the replicator (a panic, an internal invariant).
    Internal,
    /// The stream's RAW state row was written for another lake: two deployments share one
    /// state table. The stream is left alone (never resynced) until each deployment has its
    /// own `extractor.state-store.raw.table`.
    StateOfAnotherLake,
    /// The run's deadline came before this part could be done (CDF throttled with a
    /// `Retry-After` beyond it, or answered too slowly); the next run does it.
    DeadlineReached,
    /// The lake's store refused a name for good: a file or object name longer than the
    /// local file system or S3 allows.
    LakeRejected,
    /// Secrets Manager could not be reached, or throttled (a warm container keeps using
    /// the values it read before).
    SecretUnavailable,
    /// Secrets Manager refused the secret for good: no secret of that name or ARN, or no
    /// permission on it or on its KMS key.
    SecretAccessDenied,
    /// The secret's value is not a flat JSON object of variables.
    InvalidSecret,
    /// A unit of a snapshot run split over many workers failed in a way the next run can
    /// fix (a transient failure, its timeout, a throttled invocation); its own invocation's
    /// error names the cause.
    UnitIncomplete,
    /// A unit of a snapshot run split over many workers failed for good; its own
    /// invocation's error names the cause.
    UnitFailed,
}

impl Cause {
    /// Whether a retry can help with a failure of this cause.
    pub fn retry(self) -> Retry {
        match self {
            Cause::CdfUnavailable
            | Cause::LakeUnavailable
            | Cause::CommitConflict
            | Cause::NotSynced
            | Cause::CatalogUnavailable
            | Cause::DeadlineReached
            | Cause::SecretUnavailable
            | Cause::UnitIncomplete => Retry::Helps,
            Cause::CdfAuthentication
            | Cause::CdfRejected
            | Cause::ModelNotFound
            | Cause::ViewNotFound
            | Cause::LakeAccessDenied
            | Cause::LakeRejected
            | Cause::SchemaConflict
            | Cause::LocalStorage
            | Cause::CatalogConflict
            | Cause::LakeInconsistent
            | Cause::InvalidConfiguration
            | Cause::InvalidRequest
            | Cause::Internal
            | Cause::StateOfAnotherLake
            | Cause::SecretAccessDenied
            | Cause::InvalidSecret
            | Cause::UnitFailed => Retry::Useless,
        }
    }

    /// A CDF failure: only transient ones are retried, so running out of attempts means CDF
    /// was unavailable for the whole retry budget.
    pub(crate) fn of_cdf(error: &CdfError) -> Cause {
        if error.is_deadline_reached() {
            return Cause::DeadlineReached;
        }
        if error.is_retryable() || matches!(error, CdfError::RetriesExhausted { .. }) {
            return Cause::CdfUnavailable;
        }
        match error.root() {
            CdfError::Auth { .. } => Cause::CdfAuthentication,
            CdfError::InvalidSettings { .. } => Cause::InvalidConfiguration,
            _ => Cause::CdfRejected,
        }
    }

    /// A lake failure, by what the object store or the Delta log said.
    pub(crate) fn of_lake(error: &LakeError) -> Cause {
        use deltalake::DeltaTableError;
        match error {
            LakeError::InvalidSegment { .. }
            | LakeError::InvalidDestination { .. }
            | LakeError::InvalidOption { .. } => Cause::InvalidConfiguration,
            LakeError::LocalIo { source, .. } => of_io(source),
            LakeError::Delta { source, .. } => match source.as_ref() {
                DeltaTableError::ObjectStore { source } => of_object_store(source),
                DeltaTableError::KernelError(kernel) => of_kernel(kernel),
                DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_) => {
                    Cause::LakeInconsistent
                }
                DeltaTableError::VersionAlreadyExists(_) => Cause::CommitConflict,
                DeltaTableError::Transaction { .. } => Cause::CommitConflict,
                _ => Cause::LakeUnavailable,
            },
            LakeError::Conflict { .. } => Cause::CommitConflict,
            LakeError::IncompatibleType { .. } | LakeError::MissingRequiredColumn { .. } => {
                Cause::SchemaConflict
            }
            LakeError::LogUnavailable { .. }
            | LakeError::MalformedLog { .. }
            | LakeError::CommitMetadata { .. }
            | LakeError::StreamCommitNotFound { .. }
            | LakeError::UnreadableDataFile { .. } => Cause::LakeInconsistent,
            LakeError::MixedBatchSchemas { .. }
            | LakeError::TableMissing { .. }
            | LakeError::InvalidTxnVersion { .. }
            | LakeError::Arrow { .. } => Cause::Internal,
        }
    }
}

/// The kernel reads the log through the object store and wraps its errors.
fn of_kernel(error: &delta_kernel::Error) -> Cause {
    match error {
        delta_kernel::Error::ObjectStore(source) => of_object_store(source),
        delta_kernel::Error::Backtraced { source, .. } => of_kernel(source),
        _ => Cause::LakeUnavailable,
    }
}

/// Refusals are permanent; everything else an object store reports (timeouts, 5xx, resets)
/// may pass.
pub(crate) fn of_object_store(error: &deltalake::ObjectStoreError) -> Cause {
    use deltalake::ObjectStoreError as E;
    match error {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Cause::LakeAccessDenied,
        _ if refuses_the_name(error) => Cause::LakeRejected,
        _ => Cause::LakeUnavailable,
    }
}

/// A local file-system error: refused access and names the file system cannot hold are
/// permanent, the rest (a full disk, I/O errors) may pass.
fn of_io(error: &std::io::Error) -> Cause {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => Cause::LakeAccessDenied,
        // ENAMETOOLONG (and Windows' invalid names): the same name fails every time.
        std::io::ErrorKind::InvalidFilename => Cause::LakeRejected,
        _ => Cause::LakeUnavailable,
    }
}

/// S3's error code for a key longer than 1,024 bytes. object_store passes S3's answer on
/// only as the text of its (private) request error, so the documented code is looked for
/// there.
const S3_KEY_TOO_LONG: &str = "KeyTooLongError";

/// Whether the store refused a name for good, anywhere in the error's chain: a file name
/// the local file system cannot hold (object_store's local store wraps the `io::Error`), or
/// an S3 key over 1,024 bytes.
fn refuses_the_name(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::InvalidFilename
        {
            return true;
        }
        if error.to_string().contains(S3_KEY_TOO_LONG) {
            return true;
        }
        next = error.source();
    }
    false
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed part of a run: why, and the message naming what failed.
///
/// Serialized as `{"cause": "...", "retryable": bool, "message": "..."}` in the run summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The kind of failure; it decides whether a retry can help.
    pub cause: Cause,
    /// What failed and why, for people; never carries a secret.
    pub message: String,
}

impl Failure {
    /// A failure of `cause` described by `message`.
    pub fn new(cause: Cause, message: impl Into<String>) -> Self {
        Self {
            cause,
            message: message.into(),
        }
    }

    /// `context: error`, classified by the CDF error.
    pub(crate) fn cdf(context: impl fmt::Display, error: &CdfError) -> Self {
        Self::new(Cause::of_cdf(error), format!("{context}: {error}"))
    }

    /// `context: error`, classified by the lake error.
    pub(crate) fn lake(context: impl fmt::Display, error: &LakeError) -> Self {
        Self::new(Cause::of_lake(error), format!("{context}: {error}"))
    }

    pub(crate) fn retry(&self) -> Retry {
        self.cause.retry()
    }

    /// The same failure with its message behind `context: `.
    pub(crate) fn context(self, context: impl fmt::Display) -> Self {
        Self {
            message: format!("{context}: {}", self.message),
            ..self
        }
    }

    /// With known secrets replaced: messages quote CDF, S3 and Delta answers, which may echo
    /// a secret or a token.
    pub(crate) fn redacted(self) -> Self {
        Self {
            message: crate::secret::redact(&self.message),
            ..self
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Serialize for Failure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Failure", 3)?;
        s.serialize_field("cause", self.cause.as_str())?;
        s.serialize_field("retryable", &(self.retry() == Retry::Helps))?;
        s.serialize_field("message", &self.message)?;
        s.end()
    }
}

/// What a run's failures amount to, for whoever decides whether to run it again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailureCounts {
    /// How many parts failed of each cause.
    pub by_cause: BTreeMap<Cause, u64>,
}

impl FailureCounts {
    /// The failures counted by cause.
    pub fn of<'a>(failures: impl IntoIterator<Item = &'a Failure>) -> Self {
        let mut by_cause = BTreeMap::new();
        for failure in failures {
            *by_cause.entry(failure.cause).or_insert(0) += 1;
        }
        Self { by_cause }
    }

    /// No failure.
    pub fn is_empty(&self) -> bool {
        self.by_cause.is_empty()
    }

    /// How many failures a retry can (or cannot) fix.
    pub fn count(&self, retry: Retry) -> u64 {
        self.by_cause
            .iter()
            .filter(|(cause, _)| cause.retry() == retry)
            .map(|(_, n)| n)
            .sum()
    }

    /// `None` without failures. Any transient failure makes a retry worthwhile (that part
    /// can succeed next time); otherwise the one permanent cause, or [`Verdict::Mixed`]
    /// when several permanent causes failed parts of the run.
    pub fn verdict(&self) -> Option<Verdict> {
        if self.is_empty() {
            return None;
        }
        if self.count(Retry::Helps) > 0 {
            return Some(Verdict::Retryable);
        }
        let mut causes = self.by_cause.keys();
        match (causes.next(), causes.next()) {
            (Some(cause), None) => Some(Verdict::Permanent(*cause)),
            _ => Some(Verdict::Mixed),
        }
    }
}

/// What a run with failures amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At least one failure is transient.
    Retryable,
    /// Every failure is permanent, of this one cause.
    Permanent(Cause),
    /// Every failure is permanent, of several causes.
    Mixed,
}

impl Verdict {
    /// The error type of a run with these failures: `Retryable.RunIncomplete` when a retry
    /// can fix one of them, the one permanent cause's own type, or `Permanent.RunFailed`
    /// for permanent failures of several causes.
    pub fn error_type(self) -> ErrorType {
        match self {
            Verdict::Retryable => ErrorType {
                retry: Retry::Helps,
                name: RUN_INCOMPLETE,
            },
            Verdict::Permanent(cause) => cause.into(),
            Verdict::Mixed => ErrorType {
                retry: Retry::Useless,
                name: RUN_FAILED,
            },
        }
    }
}

/// The name of a run some of whose parts failed, one of them transiently.
const RUN_INCOMPLETE: &str = "RunIncomplete";
/// The name of a run whose parts failed for good, of several causes.
const RUN_FAILED: &str = "RunFailed";

/// How a failed invocation is reported (the Lambda `errorType`): whether a retry helps, and
/// the [`Cause`] (or, for a run whose parts failed of several causes, the run's
/// [`Verdict`]), as `Retryable.<name>` or `Permanent.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorType {
    /// Whether running again unchanged can succeed.
    pub retry: Retry,
    /// The cause's name, `RunIncomplete` or `RunFailed`.
    pub name: &'static str,
}

impl From<Cause> for ErrorType {
    fn from(cause: Cause) -> Self {
        Self {
            retry: cause.retry(),
            name: cause.as_str(),
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.retry, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(cause: Cause) -> Failure {
        Failure::new(cause, "x")
    }

    #[test]
    fn every_cause_is_one_error_type_of_its_own_name() {
        let mut seen = std::collections::BTreeSet::new();
        for &cause in Cause::ALL {
            let error_type = ErrorType::from(cause).to_string();
            let prefix = match cause.retry() {
                Retry::Helps => "Retryable",
                Retry::Useless => "Permanent",
            };
            assert_eq!(error_type, format!("{prefix}.{cause}"));
            assert_eq!(cause.metric_name(), format!("Failures{cause}"));
            assert!(seen.insert(cause.as_str()), "{cause} twice");
            // A failure in a summary carries the same name.
            let text = serde_json::to_value(Failure::new(cause, "x")).unwrap();
            assert_eq!(text["cause"], cause.as_str());
        }
        // The run verdicts' names are not causes, so a name means one thing.
        for name in [RUN_INCOMPLETE, RUN_FAILED] {
            assert!(!seen.contains(name), "{name}");
        }
        assert_eq!(
            Verdict::Retryable.error_type().to_string(),
            "Retryable.RunIncomplete"
        );
        assert_eq!(
            Verdict::Permanent(Cause::ViewNotFound)
                .error_type()
                .to_string(),
            "Permanent.ViewNotFound"
        );
        assert_eq!(
            Verdict::Mixed.error_type().to_string(),
            "Permanent.RunFailed"
        );
    }

    /// The operator's table of causes (docs/operations.md) lists every one, with whether a
    /// retry helps.
    #[test]
    fn the_operations_guide_lists_every_cause() {
        let guide = include_str!("../docs/operations.md");
        for &cause in Cause::ALL {
            let retryable = match cause.retry() {
                Retry::Helps => "yes",
                Retry::Useless => "no",
            };
            let row = format!("| `{cause}` | {retryable} |");
            assert!(
                guide.contains(&row),
                "docs/operations.md lacks the row `{row}`"
            );
        }
    }

    #[test]
    fn one_transient_failure_makes_the_run_retryable() {
        let failures = [failure(Cause::ViewNotFound), failure(Cause::CdfUnavailable)];
        assert_eq!(
            FailureCounts::of(&failures).verdict(),
            Some(Verdict::Retryable)
        );
    }

    #[test]
    fn permanent_failures_name_their_cause_or_are_mixed() {
        let one = [failure(Cause::ViewNotFound), failure(Cause::ViewNotFound)];
        assert_eq!(
            FailureCounts::of(&one).verdict(),
            Some(Verdict::Permanent(Cause::ViewNotFound))
        );
        let two = [failure(Cause::ViewNotFound), failure(Cause::SchemaConflict)];
        assert_eq!(FailureCounts::of(&two).verdict(), Some(Verdict::Mixed));
        assert_eq!(FailureCounts::of(&[]).verdict(), None);
    }

    #[test]
    fn failures_serialize_with_cause_and_retryability() {
        let text = serde_json::to_string(&failure(Cause::CommitConflict)).unwrap();
        assert_eq!(
            text,
            r#"{"cause":"CommitConflict","retryable":true,"message":"x"}"#
        );
    }

    #[test]
    fn object_store_refusals_are_permanent() {
        let denied = LakeError::delta(
            &"s3://b/t",
            "loading",
            deltalake::DeltaTableError::ObjectStore {
                source: deltalake::ObjectStoreError::PermissionDenied {
                    path: "t".into(),
                    source: "403 Forbidden".into(),
                },
            },
        );
        assert_eq!(Cause::of_lake(&denied), Cause::LakeAccessDenied);
        let timeout = LakeError::delta(
            &"s3://b/t",
            "loading",
            deltalake::DeltaTableError::ObjectStore {
                source: deltalake::ObjectStoreError::Generic {
                    store: "S3",
                    source: "timed out".into(),
                },
            },
        );
        assert_eq!(Cause::of_lake(&timeout), Cause::LakeUnavailable);
        // How a table load reports a refused `_last_checkpoint` read: inside a kernel error.
        let kernel = LakeError::delta(
            &"s3://b/t",
            "loading the table",
            deltalake::DeltaTableError::KernelError(delta_kernel::Error::ObjectStore(
                deltalake::ObjectStoreError::PermissionDenied {
                    path: "t/_delta_log/_last_checkpoint".into(),
                    source: "403 Forbidden".into(),
                },
            )),
        );
        assert_eq!(Cause::of_lake(&kernel), Cause::LakeAccessDenied);
    }

    /// How object_store's local store wraps an `io::Error` (`local::Error` is private).
    #[derive(Debug, thiserror::Error)]
    #[error("Unable to open file {path}: {source}")]
    struct LocalStoreError {
        path: String,
        #[source]
        source: std::io::Error,
    }

    fn name_too_long() -> std::io::Error {
        // ENAMETOOLONG on Linux and macOS alike is what `std` decodes as InvalidFilename.
        std::io::Error::from(std::io::ErrorKind::InvalidFilename)
    }

    #[test]
    fn names_a_store_cannot_hold_are_permanent() {
        let local = LakeError::LocalIo {
            path: "/lake/raw/x".into(),
            source: name_too_long(),
        };
        assert_eq!(Cause::of_lake(&local), Cause::LakeRejected);
        assert_eq!(Cause::LakeRejected.retry(), Retry::Useless);
        // What object_store's local store reports when it cannot create a file.
        let wrapped = LakeError::delta(
            &"file:///lake/raw/x",
            "committing",
            deltalake::DeltaTableError::ObjectStore {
                source: deltalake::ObjectStoreError::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(LocalStoreError {
                        path: "/lake/raw/x/part-0.parquet".into(),
                        source: name_too_long(),
                    }),
                },
            },
        );
        assert_eq!(Cause::of_lake(&wrapped), Cause::LakeRejected);
        let s3 = deltalake::ObjectStoreError::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 400 Bad Request: <Error><Code>KeyTooLongError</Code><Message>Your key is too long</Message></Error>".into(),
        };
        assert_eq!(of_object_store(&s3), Cause::LakeRejected);
        // A full disk may be freed: still worth a retry.
        let full = LakeError::LocalIo {
            path: "/lake/raw/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        assert_eq!(Cause::of_lake(&full), Cause::LakeUnavailable);
    }

    #[test]
    fn a_deadline_that_cut_a_call_is_retryable() {
        let error = CdfError::DeadlineReached {
            endpoint: "POST /models/instances/sync".into(),
            attempts: 1,
            last: None,
        };
        assert_eq!(Cause::of_cdf(&error), Cause::DeadlineReached);
        assert_eq!(Cause::DeadlineReached.retry(), Retry::Helps);
        assert!(error.to_string().contains("deadline"), "{error}");
    }
}
