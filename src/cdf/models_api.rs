//! Data models and views.

use super::client::ApiRequest;
use super::dto::{DataModel, DataModelId, Items, ItemsPage, ItemsRef, ViewDefinition, ViewId};
use super::{CdfClient, CdfError};

/// `byids` endpoints of data modeling take at most this many ids.
const BYIDS_CHUNK: usize = 100;

/// Filters for listing data models.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataModelListQuery {
    /// Only models in this space; every space when `None`.
    pub space: Option<String>,
    /// `false`: only the newest version of each model.
    pub all_versions: bool,
    /// Return full view definitions instead of view references.
    pub inline_views: bool,
    /// Include CDF's global (system) data models.
    pub include_global: bool,
    /// Page size, 1..=1000. The client fetches all pages either way.
    pub limit: Option<u32>,
}

impl CdfClient {
    /// All data models matching `query`, following `nextCursor` to the last page.
    pub async fn list_data_models(
        &self,
        query: &DataModelListQuery,
    ) -> Result<Vec<DataModel>, CdfError> {
        let mut models = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = ApiRequest::get("/models/datamodels".to_owned())
                .query("allVersions", query.all_versions)
                .query("inlineViews", query.inline_views)
                .query("includeGlobal", query.include_global)
                .query("limit", query.limit.unwrap_or(1000));
            if let Some(space) = &query.space {
                request = request.query("space", space);
            }
            if let Some(cursor) = &cursor {
                request = request.query("cursor", cursor);
            }
            let page: ItemsPage<DataModel> = self.send_json(&request).await?;
            models.extend(page.items);
            match page.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => return Ok(models),
            }
        }
    }

    /// The data models with the given ids; unknown ids are left out. An id without version
    /// matches every version of that model.
    pub async fn retrieve_data_models(
        &self,
        ids: &[DataModelId],
        inline_views: bool,
    ) -> Result<Vec<DataModel>, CdfError> {
        let mut models = Vec::new();
        for chunk in ids.chunks(BYIDS_CHUNK) {
            let request = ApiRequest::post(
                "/models/datamodels/byids".to_owned(),
                &ItemsRef { items: chunk },
            )?
            .query("inlineViews", inline_views);
            let page: Items<DataModel> = self.send_json(&request).await?;
            models.extend(page.items);
        }
        Ok(models)
    }

    /// One data model: the given version, or with `version: None` the newest one (highest
    /// `createdTime`, as CDF defines "newest"; version strings are opaque and not ordered).
    /// `Ok(None)` when no such model exists.
    pub async fn resolve_data_model(
        &self,
        space: &str,
        external_id: &str,
        version: Option<&str>,
        inline_views: bool,
    ) -> Result<Option<DataModel>, CdfError> {
        let id = DataModelId::new(space, external_id, version.map(str::to_owned));
        let candidates = self
            .retrieve_data_models(std::slice::from_ref(&id), inline_views)
            .await?;
        Ok(pick_model(candidates, &id))
    }

    /// View definitions, with inherited properties included; unknown ids are left out.
    pub async fn retrieve_views(&self, ids: &[ViewId]) -> Result<Vec<ViewDefinition>, CdfError> {
        let mut views = Vec::new();
        for chunk in ids.chunks(BYIDS_CHUNK) {
            let request =
                ApiRequest::post("/models/views/byids".to_owned(), &ItemsRef { items: chunk })?
                    .query("includeInheritedProperties", true);
            let page: Items<ViewDefinition> = self.send_json(&request).await?;
            views.extend(page.items);
        }
        Ok(views)
    }
}

/// The model matching `id` exactly, or the newest one when `id` has no version. Ties on
/// `createdTime` go to the later `lastUpdatedTime`, then to the larger version string, so
/// the choice is deterministic.
fn pick_model(candidates: Vec<DataModel>, id: &DataModelId) -> Option<DataModel> {
    candidates
        .into_iter()
        .filter(|m| m.space == id.space && m.external_id == id.external_id)
        .filter(|m| id.version.as_ref().is_none_or(|v| &m.version == v))
        .max_by(|a, b| {
            (a.created_time, a.last_updated_time, &a.version).cmp(&(
                b.created_time,
                b.last_updated_time,
                &b.version,
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(xid: &str, version: &str, created: i64) -> DataModel {
        DataModel {
            space: "s".into(),
            external_id: xid.into(),
            version: version.into(),
            name: None,
            description: None,
            created_time: created,
            last_updated_time: created,
            is_global: false,
            views: vec![],
        }
    }

    #[test]
    fn newest_version_is_the_latest_created_not_the_largest_string() {
        let candidates = vec![
            model("M", "9", 100),
            model("M", "10", 300),
            model("M", "2", 200),
        ];
        let picked = pick_model(candidates, &DataModelId::new("s", "M", None)).unwrap();
        assert_eq!(picked.version, "10");
    }

    #[test]
    fn explicit_version_and_foreign_models_are_respected() {
        let candidates = vec![
            model("M", "1", 100),
            model("M", "2", 300),
            model("Other", "1", 999),
        ];
        let picked = pick_model(
            candidates.clone(),
            &DataModelId::new("s", "M", Some("1".into())),
        )
        .unwrap();
        assert_eq!(picked.version, "1");
        assert!(
            pick_model(
                candidates.clone(),
                &DataModelId::new("s", "M", Some("3".into()))
            )
            .is_none()
        );
        assert!(pick_model(candidates, &DataModelId::new("s", "Nope", None)).is_none());
    }
}
