//! The lake's identity: who a RAW state row belongs to.
//!
//! A state row describes one lake's Delta tables. Two deployments that write different lakes
//! (a dev and a prod stack, a second prefix) but keep their rows in the same RAW table would
//! each find the other's rows and take them for their own. So every lake carries an identity,
//! written once into the lake itself at [`IDENTITY_PATH`] (`raw/_lake.json` under the
//! prefix): a random id, the time it was created and the location it was created at. Each
//! state row records the id of the lake it was written for (see
//! [`crate::sync::state_store`]), and a sync that finds another lake's id in a row leaves
//! that stream alone instead of starting it over.
//!
//! The file lives under `raw/`, next to the tables it identifies, so the functions' S3
//! permissions (`raw/*`) already cover it, and readers that list a layer skip it like any
//! name starting with `_`. It is created with a put-if-absent (`If-None-Match: *` on S3, a
//! no-clobber create on a local disk), so two first runs that race agree on one id: the
//! loser reads the winner's. It is never rewritten.

use chrono::SecondsFormat;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use deltalake::{ObjectStoreError, Path};
use serde::{Deserialize, Serialize};

use super::destination::Destination;
use super::error::LakeError;
use crate::failure::{Cause, Failure};

/// Where the identity lives, relative to the destination prefix.
pub const IDENTITY_PATH: &str = "raw/_lake.json";

/// What `raw/_lake.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LakeIdentity {
    /// A random UUID (version 4), the lake's name in state rows.
    pub lake_id: String,
    /// When the identity was written, RFC 3339 UTC.
    pub created_at: String,
    /// The location (`s3://bucket/prefix/` or `file:///dir/`) it was written at. Only
    /// reported: a lake that was moved keeps its identity.
    pub location: String,
}

/// Why the lake's identity could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The destination itself could not be opened.
    #[error("{0}")]
    Destination(#[from] LakeError),
    /// The object store failed or refused reading or writing the file.
    #[error("{action} the lake identity {location}: {source}")]
    Store {
        /// `reading` or `writing`.
        action: &'static str,
        /// The file's URL.
        location: String,
        /// What the store said.
        #[source]
        source: ObjectStoreError,
    },
    /// The file exists but is not an identity: something else wrote it, or it was edited.
    #[error(
        "the lake identity {location} is not valid ({reason}); restore it from a backup or \
         remove it together with the lake's state rows"
    )]
    Invalid {
        /// The file's URL.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl IdentityError {
    /// The failure of a run that needed the identity.
    pub(crate) fn to_failure(&self) -> Failure {
        let cause = match self {
            IdentityError::Destination(error) => Cause::of_lake(error),
            IdentityError::Store { source, .. } => crate::failure::of_object_store(source),
            IdentityError::Invalid { .. } => Cause::LakeInconsistent,
        };
        Failure::new(cause, self.to_string())
    }
}

impl Destination {
    /// Where the lake is, for people: `s3://bucket/prefix/` or `file:///dir/`.
    pub fn location(&self) -> String {
        self.root_url()
            .map(|url| url.to_string())
            .unwrap_or_else(|error| format!("<unusable destination: {error}>"))
    }

    /// The lake's identity, written now if the lake has none yet. Two callers that race
    /// to write it both end with the one that was stored first.
    pub async fn establish_identity(&self) -> Result<LakeIdentity, IdentityError> {
        let store = self.object_store()?;
        if let Some(identity) = self.read_identity_from(&store).await? {
            return Ok(identity);
        }
        let identity = LakeIdentity {
            lake_id: random_uuid(),
            created_at: chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            location: self.location(),
        };
        let body = serde_json::to_vec_pretty(&identity).map_err(|e| IdentityError::Invalid {
            location: self.identity_location(),
            reason: format!("serializing: {e}"),
        })?;
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match store
            .put_opts(&Path::from(IDENTITY_PATH), PutPayload::from(body), create)
            .await
        {
            Ok(_) => {
                tracing::info!(lake = %identity.location, lake_id = %identity.lake_id, "wrote the lake's identity");
                Ok(identity)
            }
            // Another run wrote it first (S3 answers a lost create with 412, or with 409
            // while the other write is in flight): theirs is the lake's identity.
            Err(error) => match self.read_identity_from(&store).await? {
                Some(theirs) => Ok(theirs),
                None => Err(IdentityError::Store {
                    action: "writing",
                    location: self.identity_location(),
                    source: error,
                }),
            },
        }
    }

    /// The lake's identity, or `None` when it has none yet. Reads only: never creates the
    /// file, nor (for a local lake) any directory.
    pub async fn read_identity(&self) -> Result<Option<LakeIdentity>, IdentityError> {
        if let Destination::Local(local) = self
            && !local.root().join(IDENTITY_PATH).is_file()
        {
            return Ok(None);
        }
        let store = self.object_store()?;
        self.read_identity_from(&store).await
    }

    async fn read_identity_from(
        &self,
        store: &ObjectStoreRef,
    ) -> Result<Option<LakeIdentity>, IdentityError> {
        let store_error = |source| IdentityError::Store {
            action: "reading",
            location: self.identity_location(),
            source,
        };
        let bytes = match store.get(&Path::from(IDENTITY_PATH)).await {
            Ok(result) => result.bytes().await.map_err(store_error)?,
            Err(ObjectStoreError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(store_error(error)),
        };
        let identity: LakeIdentity =
            serde_json::from_slice(&bytes).map_err(|e| IdentityError::Invalid {
                location: self.identity_location(),
                reason: e.to_string(),
            })?;
        if identity.lake_id.trim().is_empty() {
            return Err(IdentityError::Invalid {
                location: self.identity_location(),
                reason: "its lakeId is empty".into(),
            });
        }
        Ok(Some(identity))
    }

    fn identity_location(&self) -> String {
        format!("{}{IDENTITY_PATH}", self.location())
    }
}

/// A random (version 4) UUID in its usual text form.
fn random_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LocalDestination;

    #[test]
    fn ids_are_version_4_uuids_and_differ() {
        let a = random_uuid();
        let b = random_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{a}");
        assert!(
            matches!(groups[3].chars().next(), Some('8' | '9' | 'a' | 'b')),
            "{a}"
        );
    }

    #[tokio::test]
    async fn the_identity_is_written_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Destination::Local(LocalDestination::new(dir.path().join("lake")).unwrap());
        assert_eq!(lake.read_identity().await.unwrap(), None);
        assert!(!dir.path().join("lake").exists(), "reading creates nothing");
        let first = lake.establish_identity().await.unwrap();
        assert_eq!(first.location, lake.location());
        assert_eq!(lake.establish_identity().await.unwrap(), first);
        assert_eq!(lake.read_identity().await.unwrap(), Some(first.clone()));
        let on_disk = std::fs::read_to_string(dir.path().join("lake").join(IDENTITY_PATH)).unwrap();
        assert!(on_disk.contains(&first.lake_id), "{on_disk}");
    }

    #[tokio::test]
    async fn racing_first_runs_agree_on_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Destination::Local(LocalDestination::new(dir.path().join("lake")).unwrap());
        let runs = (0..8).map(|_| {
            let lake = lake.clone();
            tokio::spawn(async move { lake.establish_identity().await.unwrap() })
        });
        let ids: std::collections::BTreeSet<String> = futures::future::join_all(runs)
            .await
            .into_iter()
            .map(|joined| joined.unwrap().lake_id)
            .collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
    }

    #[tokio::test]
    async fn a_file_that_is_no_identity_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lake");
        std::fs::create_dir_all(root.join("raw")).unwrap();
        std::fs::write(root.join(IDENTITY_PATH), "{\"hello\": 1}").unwrap();
        let lake = Destination::Local(LocalDestination::new(&root).unwrap());
        let error = lake.establish_identity().await.unwrap_err();
        assert!(matches!(error, IdentityError::Invalid { .. }), "{error}");
        assert_eq!(error.to_failure().cause, Cause::LakeInconsistent);
        assert_eq!(
            std::fs::read_to_string(root.join(IDENTITY_PATH)).unwrap(),
            "{\"hello\": 1}"
        );
    }
}
