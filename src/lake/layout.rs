//! Where each table and published file lives, relative to the destination prefix.
//!
//! The layout is shared with the original Python replicator so existing readers keep
//! working:
//!
//! ```text
//! raw/<space>/<model>/<version>/views/<view>/nodes/          Delta table
//! raw/<space>/<model>/<version>/views/<view>/edges/          Delta table
//! raw/<space>/<model>/<version>/views/<view>/rejected/       Delta table (quarantine)
//! publish/<space>/<model>/<version>/<view>/nodes.parquet
//! publish/<space>/<model>/<version>/<view>/edges.parquet
//! publish/<space>/<model>/<version>/<view>/_manifest.json
//! ```
//!
//! A huge view's file is a folder of parts instead (see `snapshot::parts`):
//! `publish/<space>/<model>/<version>/<view>/nodes/part-00003-of-00016.parquet`.
//!
//! `<view>` is a [`ViewFolder`]: the view's externalId, or `<viewSpace>.<viewExternalId>`
//! when two views of one model share an externalId (views of a model may come from
//! different spaces), shortened when longer than a file name may be.

use std::collections::HashMap;
use std::fmt;

use super::error::{LakeError, LakeResult};

/// Checks that a CDF identifier can be used as exactly one path segment.
///
/// CDF identifiers cannot contain `/`, but config files and remote configs are user input, and
/// a segment such as `..` would silently write outside the prefix.
pub(crate) fn validate_segment(what: &'static str, value: &str) -> LakeResult<()> {
    let reject = |reason| {
        Err(LakeError::InvalidSegment {
            what,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return reject("it is empty");
    }
    if value == "." || value == ".." {
        return reject("relative path components are not allowed");
    }
    if value.contains('/') || value.contains('\\') {
        return reject("it contains a path separator");
    }
    if value.chars().any(char::is_control) {
        return reject("it contains control characters");
    }
    Ok(())
}

/// The configured data model whose views are replicated: `<space>/<model>/<version>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    space: String,
    external_id: String,
    version: String,
}

impl ModelRef {
    /// Validates the three identifiers as path segments.
    pub fn new(
        space: impl Into<String>,
        external_id: impl Into<String>,
        version: impl Into<String>,
    ) -> LakeResult<Self> {
        let (space, external_id, version) = (space.into(), external_id.into(), version.into());
        validate_segment("data model space", &space)?;
        validate_segment("data model externalId", &external_id)?;
        validate_segment("data model version", &version)?;
        Ok(ModelRef {
            space,
            external_id,
            version,
        })
    }

    /// The data model's space.
    pub(crate) fn space(&self) -> &str {
        &self.space
    }

    /// The data model's externalId.
    pub(crate) fn external_id(&self) -> &str {
        &self.external_id
    }

    /// The data model's version.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    fn relative(&self) -> String {
        format!("{}/{}/{}", self.space, self.external_id, self.version)
    }
}

/// Longest path segment, in bytes, that a view folder may have: what common local file
/// systems take for one name (ext4, XFS, APFS: 255 bytes). S3 takes keys of up to 1,024
/// bytes, and with every id at CDF's maximum length (space 43, model and view externalId
/// 255, version 43 characters, all ASCII) the longest key the layout makes stays under
/// 750 bytes, leaving the rest to the destination prefix.
pub(crate) const MAX_SEGMENT_BYTES: usize = 255;

/// Hex digits of the hash in a shortened folder name.
const SHORT_HASH_HEX: usize = 16;

/// The folder name of one view inside a model's raw and publish trees.
///
/// A view's folder name is its externalId, or `<viewSpace>.<viewExternalId>` when another
/// view of the model has the same externalId. A name longer than [`MAX_SEGMENT_BYTES`] is
/// stored under a short form: its first 238 bytes, `-`, and 16 lower-case hex digits of the
/// FNV-1a 64-bit hash of the whole name (255 bytes in all). Byte 238 of a real folder name
/// lies in a view externalId, which cannot hold a `-`, so a short form never equals another
/// view's name; and `-` is stored as it is by every store (object_store escapes `~` and
/// most other punctuation). Names that fit are used as they are.
///
/// [`ViewFolder::as_str`] is the path segment; the value displays as the full name, which is
/// what summaries, manifests, `status` and the catalog show.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewFolder {
    /// The path segment: `name`, or its short form.
    segment: String,
    /// The full folder name.
    name: String,
}

impl ViewFolder {
    /// The plain folder: the view externalId.
    pub fn plain(view_external_id: &str) -> LakeResult<Self> {
        validate_segment("view externalId", view_external_id)?;
        Ok(ViewFolder::named(view_external_id.to_string()))
    }

    /// The space-qualified folder `<viewSpace>.<viewExternalId>`, used when another view of
    /// the same model has the same externalId.
    pub(crate) fn qualified(view_space: &str, view_external_id: &str) -> LakeResult<Self> {
        validate_segment("view space", view_space)?;
        validate_segment("view externalId", view_external_id)?;
        Ok(ViewFolder::named(format!(
            "{view_space}.{view_external_id}"
        )))
    }

    fn named(name: String) -> Self {
        ViewFolder {
            segment: short_form(&name),
            name,
        }
    }

    /// Folders for all views of one model, in input order, given as `(space, externalId)`.
    ///
    /// A view gets the qualified folder exactly when its externalId occurs more than once in
    /// the list, so the folder of a view only changes when the model's view list does, which
    /// comes with a new model version and therefore new paths anyway.
    pub(crate) fn for_views<S: AsRef<str>, X: AsRef<str>>(
        views: &[(S, X)],
    ) -> LakeResult<Vec<Self>> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (_, xid) in views {
            *counts.entry(xid.as_ref()).or_default() += 1;
        }
        views
            .iter()
            .map(|(space, xid)| {
                let (space, xid) = (space.as_ref(), xid.as_ref());
                if counts.get(xid).copied().unwrap_or(0) > 1 {
                    ViewFolder::qualified(space, xid)
                } else {
                    ViewFolder::plain(xid)
                }
            })
            .collect()
    }

    /// The path segment of the folder: the name, or its short form when the name is too
    /// long for a file system.
    pub(crate) fn as_str(&self) -> &str {
        &self.segment
    }

    /// The full folder name, never shortened.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// `name` when it fits in [`MAX_SEGMENT_BYTES`], else its short form (see [`ViewFolder`]).
fn short_form(name: &str) -> String {
    if name.len() <= MAX_SEGMENT_BYTES {
        return name.to_owned();
    }
    let mut keep = MAX_SEGMENT_BYTES - 1 - SHORT_HASH_HEX;
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}-{:016x}", &name[..keep], fnv1a64(name.as_bytes()))
}

/// FNV-1a 64: stable across releases and platforms, as a folder name must be. The prefix
/// before it already tells most names apart; the hash only has to separate long names that
/// share their first 238 bytes.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl fmt::Display for ViewFolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Whether a raw table holds node or edge changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceKind {
    /// Node changes of a view.
    Nodes,
    /// Edge changes of a view (its edge connections, or the edge view itself).
    Edges,
}

impl InstanceKind {
    /// The folder / file stem: `nodes` or `edges`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InstanceKind::Nodes => "nodes",
            InstanceKind::Edges => "edges",
        }
    }
}

impl fmt::Display for InstanceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Path of a raw Delta table relative to the destination prefix, without a trailing slash:
/// `raw/<space>/<model>/<version>/views/<view>/<nodes|edges>`.
pub(crate) fn raw_table_path(model: &ModelRef, view: &ViewFolder, kind: InstanceKind) -> String {
    format!("raw/{}/views/{}/{}", model.relative(), view.as_str(), kind)
}

/// Path of a view's quarantine (rejected-rows) Delta table relative to the destination
/// prefix: `raw/<space>/<model>/<version>/views/<view>/rejected`. It sits next to the
/// view's `nodes` and `edges` tables, and every stream of the view writes to it.
pub(crate) fn rejected_table_path(model: &ModelRef, view: &ViewFolder) -> String {
    format!(
        "raw/{}/views/{}/{REJECTED}",
        model.relative(),
        view.as_str()
    )
}

/// The folder name of the quarantine table; no [`InstanceKind`] uses it.
pub(crate) const REJECTED: &str = "rejected";

/// The publish-layer object paths of one view, relative to the destination prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishPaths {
    /// `publish/<space>/<model>/<version>/<view>`
    pub dir: String,
    /// `<dir>/nodes.parquet`
    pub(crate) nodes: String,
    /// `<dir>/edges.parquet`
    pub(crate) edges: String,
    /// `<dir>/_manifest.json`, written last.
    pub manifest: String,
}

impl PublishPaths {
    /// The data file of `kind`.
    pub(crate) fn data_file(&self, kind: InstanceKind) -> &str {
        match kind {
            InstanceKind::Nodes => &self.nodes,
            InstanceKind::Edges => &self.edges,
        }
    }

    /// The folder of `kind`'s parts, with a trailing `/`: `<dir>/nodes/`.
    pub(crate) fn parts_dir(&self, kind: InstanceKind) -> String {
        format!("{}/{kind}/", self.dir)
    }

    /// Part `index` (0-based) of `count` of `kind`: `<dir>/nodes/part-00003-of-00016.parquet`.
    pub(crate) fn part_file(&self, kind: InstanceKind, index: u32, count: u32) -> String {
        format!("{}/{}", self.dir, part_name(kind, index, count))
    }
}

/// A part's path relative to the view folder: `nodes/part-00003-of-00016.parquet`. Both
/// numbers have five digits, so the names sort in part order.
pub(crate) fn part_name(kind: InstanceKind, index: u32, count: u32) -> String {
    format!("{kind}/part-{index:05}-of-{count:05}.parquet")
}

/// The kind, index and count of a part's path relative to the view folder, if it is one.
pub(crate) fn parse_part_name(relative: &str) -> Option<(InstanceKind, u32, u32)> {
    let (kind, name) = relative.split_once('/')?;
    let kind = [InstanceKind::Nodes, InstanceKind::Edges]
        .into_iter()
        .find(|k| k.as_str() == kind)?;
    let numbers = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (index, count) = numbers.split_once("-of-")?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(index) || !digits(count) {
        return None;
    }
    Some((kind, index.parse().ok()?, count.parse().ok()?))
}

/// The publish-layer paths of one view.
pub(crate) fn publish_paths(model: &ModelRef, view: &ViewFolder) -> PublishPaths {
    let dir = format!("publish/{}/{}", model.relative(), view.as_str());
    PublishPaths {
        nodes: format!("{dir}/nodes.parquet"),
        edges: format!("{dir}/edges.parquet"),
        manifest: format!("{dir}/_manifest.json"),
        dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelRef {
        ModelRef::new("sp", "Model", "v1.2").unwrap()
    }

    #[test]
    fn raw_and_publish_paths_follow_the_layout() {
        let view = ViewFolder::plain("Pump").unwrap();
        assert_eq!(
            raw_table_path(&model(), &view, InstanceKind::Nodes),
            "raw/sp/Model/v1.2/views/Pump/nodes"
        );
        assert_eq!(
            raw_table_path(&model(), &view, InstanceKind::Edges),
            "raw/sp/Model/v1.2/views/Pump/edges"
        );
        assert_eq!(
            rejected_table_path(&model(), &view),
            "raw/sp/Model/v1.2/views/Pump/rejected"
        );
        let publish = publish_paths(&model(), &view);
        assert_eq!(publish.dir, "publish/sp/Model/v1.2/Pump");
        assert_eq!(publish.nodes, "publish/sp/Model/v1.2/Pump/nodes.parquet");
        assert_eq!(publish.edges, "publish/sp/Model/v1.2/Pump/edges.parquet");
        assert_eq!(
            publish.manifest,
            "publish/sp/Model/v1.2/Pump/_manifest.json"
        );
        assert_eq!(publish.data_file(InstanceKind::Edges), publish.edges);
    }

    #[test]
    fn duplicate_view_external_ids_are_qualified_with_their_space() {
        let folders =
            ViewFolder::for_views(&[("a", "Pump"), ("b", "Pump"), ("a", "Valve")]).unwrap();
        let names: Vec<&str> = folders.iter().map(ViewFolder::as_str).collect();
        assert_eq!(names, ["a.Pump", "b.Pump", "Valve"]);
    }

    #[test]
    fn folder_names_that_fit_are_kept_byte_for_byte() {
        let xid = format!("V{}", "x".repeat(251));
        let fits = ViewFolder::qualified("sp", &xid).unwrap();
        assert_eq!(fits.as_str().len(), MAX_SEGMENT_BYTES);
        assert_eq!(fits.as_str(), format!("sp.{xid}"));
        assert_eq!(fits.to_string(), fits.as_str());
        let plain = ViewFolder::plain(&format!("V{}1", "x".repeat(253))).unwrap();
        assert_eq!(plain.as_str().len(), 255);
        assert_eq!(plain.as_str(), plain.name());
    }

    #[test]
    fn longer_folder_names_get_a_documented_short_form() {
        let xid = format!("V{}1", "x".repeat(253));
        let a = ViewFolder::qualified("space_a", &xid).unwrap();
        let b = ViewFolder::qualified("space_b", &xid).unwrap();
        let full = format!("space_a.{xid}");
        assert_eq!(a.name(), full);
        assert_eq!(a.to_string(), full, "shown by its full name");
        let segment = a.as_str();
        assert_eq!(segment.len(), MAX_SEGMENT_BYTES);
        assert_eq!(&segment[..238], &full[..238]);
        assert_eq!(&segment[238..239], "-");
        assert_eq!(
            &segment[239..],
            format!("{:016x}", fnv1a64(full.as_bytes()))
        );
        // Pinned: the rule is part of the lake's layout and must never change.
        assert_eq!(&segment[239..], "026e9af2888a244a");
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(
            ViewFolder::qualified("space_a", &xid).unwrap(),
            a,
            "deterministic"
        );
        let path = raw_table_path(&model(), &a, InstanceKind::Nodes);
        assert_eq!(path, format!("raw/sp/Model/v1.2/views/{segment}/nodes"));
        assert_eq!(
            publish_paths(&model(), &a).dir,
            format!("publish/sp/Model/v1.2/{segment}")
        );
        // A cut never splits a character.
        let wide = short_form(&"é".repeat(200));
        assert!(wide.len() <= MAX_SEGMENT_BYTES);
        assert!(wide.starts_with(&"é".repeat(119)));
    }

    #[test]
    fn dangerous_segments_are_rejected() {
        for bad in ["", ".", "..", "a/b", "a\\b", "x\ny"] {
            let err = ViewFolder::plain(bad).unwrap_err();
            assert!(
                err.to_string().contains("view externalId"),
                "{bad:?}: {err}"
            );
        }
        assert!(ModelRef::new("sp", "..", "1").is_err());
        assert!(ViewFolder::qualified("a/b", "V").is_err());
    }

    #[test]
    fn parts_live_in_a_folder_per_kind() {
        let view = ViewFolder::plain("Pump").unwrap();
        let paths = publish_paths(&model(), &view);
        assert_eq!(
            paths.part_file(InstanceKind::Nodes, 3, 16),
            "publish/sp/Model/v1.2/Pump/nodes/part-00003-of-00016.parquet"
        );
        assert_eq!(
            paths.parts_dir(InstanceKind::Edges),
            "publish/sp/Model/v1.2/Pump/edges/"
        );
        assert_eq!(
            parse_part_name("edges/part-00015-of-00016.parquet"),
            Some((InstanceKind::Edges, 15, 16))
        );
        for other in [
            "nodes.parquet",
            "nodes/part-3-of-16.parquet",
            "rejected/part-00003-of-00016.parquet",
            "nodes/part-00003-of-00016.parquet.tmp",
            "nodes/x/part-00003-of-00016.parquet",
        ] {
            assert_eq!(parse_part_name(other), None, "{other}");
        }
    }
}
