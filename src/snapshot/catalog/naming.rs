//! Athena-safe, deterministic names for catalog tables and columns.
//!
//! Athena lower-cases every identifier and only reads `[a-z0-9_]` without quoting, while
//! CDF identifiers are mixed case and the lake's columns carry dots (`type.space`). The
//! rules here are the ones `docs/bi-tools.md` documents; they must only change with a note
//! there, because users' queries name these tables and columns.
//!
//! - A name part is lower-cased and every character outside `[a-z0-9_]` becomes `_`.
//! - Table names: `<space>_<model>_<version>_<view>_<nodes|edges>` for a published file,
//!   the same with `raw_` in front for a raw Delta table.
//! - When two tables of one run would get the same name (sanitizing is lossy: `a.b` and
//!   `a_b`), each of them gets `_<hash>`, eight hex digits of a hash of its lake path, so
//!   the names do not depend on which one is registered first.
//! - Names longer than Glue's 255 characters are cut to 246 and get `_<hash>`.
//! - Columns, in file order: the sanitized name; a column whose sanitized name is already
//!   taken by an earlier column (case twins such as `Name` and `name`) gets `_<hash>` of
//!   its original name. File columns only ever get appended, so a column keeps its catalog
//!   name when the schema grows.

use std::collections::{BTreeMap, HashSet};

/// Glue's limit for table and column names.
pub(crate) const MAX_NAME_CHARS: usize = 255;

/// Lower case, every character outside `[a-z0-9_]` as `_`; never empty.
pub(crate) fn sanitize(part: &str) -> String {
    let text: String = part
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if text.is_empty() {
        "_".to_owned()
    } else {
        text
    }
}

/// Eight hex digits of FNV-1a 64 over `text`: stable across releases and platforms.
pub(crate) fn short_hash(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{:08x}", hash >> 32)
}

/// `name` cut to fit Glue's limit with a hash of `identity`, when it is too long.
fn within_limit(name: String, identity: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name;
    }
    let kept: String = name.chars().take(MAX_NAME_CHARS - 9).collect();
    format!("{kept}_{}", short_hash(identity))
}

/// The table name of a published file or raw table before clash handling: the sanitized
/// parts joined by `_`, with `raw_` in front for a raw table.
pub(crate) fn table_base_name(raw: bool, parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .map(|part| sanitize(part))
        .collect::<Vec<_>>()
        .join("_");
    if raw { format!("raw_{joined}") } else { joined }
}

/// Final table names for `(identity, base name)` pairs: bases that occur more than once get
/// `_<hash of identity>`; every name fits Glue's limit. Returned in input order.
pub(crate) fn unique_table_names(tables: &[(String, String)]) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, base) in tables {
        *counts.entry(base.as_str()).or_default() += 1;
    }
    tables
        .iter()
        .map(|(identity, base)| {
            if counts.get(base.as_str()).copied().unwrap_or(0) > 1 {
                let kept: String = base.chars().take(MAX_NAME_CHARS - 9).collect();
                format!("{kept}_{}", short_hash(identity))
            } else {
                within_limit(base.clone(), identity)
            }
        })
        .collect()
}

/// Catalog names of file columns, in file order (see the module docs).
pub(crate) fn column_names<S: AsRef<str>>(columns: &[S]) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::new();
    columns
        .iter()
        .map(|original| {
            let original = original.as_ref();
            let base = within_limit(sanitize(original), original);
            let mut name = base.clone();
            let mut attempt = 0u32;
            while taken.contains(&name) {
                let identity = if attempt == 0 {
                    original.to_owned()
                } else {
                    format!("{original}\u{0}{attempt}")
                };
                let kept: String = base.chars().take(MAX_NAME_CHARS - 9).collect();
                name = format!("{kept}_{}", short_hash(&identity));
                attempt += 1;
            }
            taken.insert(name.clone());
            name
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_lower_case_with_underscores() {
        assert_eq!(sanitize("startNode.externalId"), "startnode_externalid");
        assert_eq!(sanitize("v1.2-beta"), "v1_2_beta");
        assert_eq!(sanitize("Ünïcode"), "_n_code");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("already_fine_01"), "already_fine_01");
    }

    #[test]
    fn table_names_follow_the_layout_and_clashes_get_stable_hashes() {
        assert_eq!(
            table_base_name(false, &["sp", "CogniteCore", "v1", "Pump", "nodes"]),
            "sp_cognitecore_v1_pump_nodes"
        );
        assert_eq!(
            table_base_name(true, &["sp", "M", "1", "sp.Pump", "edges"]),
            "raw_sp_m_1_sp_pump_edges"
        );
        let tables = vec![
            (
                "publish/a.b/M/1/V/nodes".to_owned(),
                "a_b_m_1_v_nodes".to_owned(),
            ),
            (
                "publish/a_b/M/1/V/nodes".to_owned(),
                "a_b_m_1_v_nodes".to_owned(),
            ),
            (
                "publish/x/M/1/V/nodes".to_owned(),
                "x_m_1_v_nodes".to_owned(),
            ),
        ];
        let names = unique_table_names(&tables);
        assert_eq!(names[2], "x_m_1_v_nodes");
        assert_ne!(names[0], names[1]);
        assert!(names[0].starts_with("a_b_m_1_v_nodes_") && names[0].len() == 15 + 9);
        let mut reversed = tables.clone();
        reversed.reverse();
        let again = unique_table_names(&reversed);
        assert_eq!(again[2], names[0], "names do not depend on the order");
        assert_eq!(again[1], names[1]);
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "v".repeat(300);
        let names = unique_table_names(&[
            ("id-1".into(), long.clone()),
            ("id-2".into(), long[..10].to_owned()),
        ]);
        assert_eq!(names[0].chars().count(), MAX_NAME_CHARS);
        assert!(names[0].ends_with(&format!("_{}", short_hash("id-1"))));
        assert_eq!(names[1], "vvvvvvvvvv");
        let other = unique_table_names(&[("id-3".into(), long)]);
        assert_ne!(other[0], names[0]);
    }

    #[test]
    fn columns_are_unique_and_stable_when_the_schema_grows() {
        let columns = [
            "space",
            "externalId",
            "type.space",
            "Name",
            "name",
            "name_x",
            "name.x",
        ];
        let names = column_names(&columns);
        assert_eq!(&names[..4], ["space", "externalid", "type_space", "name"]);
        assert_eq!(names[4], format!("name_{}", short_hash("name")));
        assert_eq!(names[5], "name_x");
        assert_eq!(names[6], format!("name_x_{}", short_hash("name.x")));
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        let mut grown = columns.to_vec();
        grown.push("NAME");
        let grown_names = column_names(&grown);
        assert_eq!(&grown_names[..names.len()], &names[..]);
        assert!(!names.contains(&grown_names[7]));
        for name in &grown_names {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            );
        }
    }
}
