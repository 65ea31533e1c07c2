//! `destination.catalog.glue`: accepted with an S3 destination, refused with a local one or
//! with a name Athena cannot query, and never settable from a remote configuration.

use serde_yaml_ng::Value;

use super::{VALID, assert_single_issue, load, readme_env, variant};
use crate::config::{ConfigError, GlueCatalogSettings, merge_remote};

const S3: &str = "destination:\n  s3:\n    bucket: lake-bucket\n    prefix: cdf\n    endpoint-url: http://127.0.0.1:9000\n    allow-http: true\n";

fn with_destination(destination: &str) -> String {
    variant("destination:\n  local:\n    path: ./lake\n", destination)
}

#[test]
fn a_glue_database_turns_the_catalog_on() {
    let yaml = with_destination(&format!(
        "{S3}  catalog:\n    glue:\n      database: cdf_lake\n      endpoint-url: http://127.0.0.1:9000/\n"
    ));
    let config = load(&yaml).unwrap();
    assert_eq!(
        config.catalog,
        Some(GlueCatalogSettings {
            database: "cdf_lake".into(),
            endpoint_url: Some("http://127.0.0.1:9000".into()),
        })
    );
    assert_eq!(load(VALID).unwrap().catalog, None);
}

#[test]
fn the_catalog_needs_s3_and_an_athena_database_name() {
    assert_single_issue(
        &variant(
            "    path: ./lake\n",
            "    path: ./lake\n  catalog:\n    glue:\n      database: cdf_lake\n",
        ),
        "destination.catalog",
        &["S3 destination", "s3://"],
    );
    assert_single_issue(
        &with_destination(&format!(
            "{S3}  catalog:\n    glue:\n      database: Cdf-Lake\n"
        )),
        "destination.catalog.glue.database",
        &["lower-case"],
    );
    assert_single_issue(
        &with_destination(&format!("{S3}  catalog:\n    glue: {{}}\n")),
        "destination.catalog.glue.database",
        &["missing"],
    );
    assert_single_issue(
        &with_destination(&format!(
            "{S3}  catalog:\n    glue:\n      database: db\n      region: x\n"
        )),
        "destination.catalog.glue.region",
        &[],
    );
    let plain_http = with_destination(
        "destination:\n  s3:\n    bucket: lake-bucket\n  catalog:\n    glue:\n      database: db\n      endpoint-url: http://127.0.0.1:9\n",
    );
    assert_single_issue(
        &plain_http,
        "destination.catalog.glue.endpoint-url",
        &["allow-http"],
    );
}

#[test]
fn a_remote_configuration_cannot_set_or_redirect_the_catalog() {
    let local = with_destination(S3).replacen(
        "  project: my-project\n",
        "  project: my-project\n  extraction-pipeline:\n    external-id: pipe\n",
        1,
    );
    let local: Value = serde_yaml_ng::from_str(&local).unwrap();
    let env = readme_env();
    for remote in [
        "destination:\n  catalog:\n    glue:\n      database: elsewhere\n",
        "destination:\n  catalog:\n    glue:\n      endpoint-url: https://attacker.example.com\n",
    ] {
        let err = merge_remote(&local, remote, &env).unwrap_err();
        let ConfigError::Invalid(issues) = &err else {
            panic!("expected Invalid, got {err}");
        };
        assert_eq!(issues.len(), 1, "{issues:#?}");
        assert_eq!(issues[0].path, "destination.catalog", "{issues:#?}");
    }
}
