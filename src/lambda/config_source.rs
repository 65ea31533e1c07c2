//! Where a function reads its configuration, and loading it on every invocation.
//!
//! - `CDF_S3_CONFIG`: the YAML itself, in a function environment variable (the SAM template
//!   fills it from a parameter, or from a small `type: remote` bootstrap document);
//! - `CDF_S3_CONFIG_PATH`: a file, bundled in the deployment package (relative paths are
//!   relative to the working directory, which in Lambda is the package root `/var/task`) or
//!   on a mounted file system.
//!
//! Exactly one of them must be set.
//!
//! When the function environment names the deployment's bucket (`AWS_S3_BUCKET`, and
//! `S3_PREFIX`, which the SAM template sets from its `Bucket` and `Prefix` parameters), the
//! loaded configuration must write exactly there, through AWS S3 with the function's role:
//! no other bucket or prefix, no `endpoint-url`, no static keys, no local directory. The text or file is read again on every invocation, and
//! with `type: remote` so is the extraction pipeline's configuration, so an edit applies to
//! the next run without a redeploy.

use std::path::PathBuf;

use crate::config::{
    Config, ConfigError, ConfigIssue, Destination, EnvSource, GlueCatalogSettings, RawConfig,
};
use crate::context::{ContextError, LoadError, resolve_remote_with};

use crate::context::ClientCache;

/// Environment variable holding the configuration YAML.
pub const CONFIG_ENV: &str = "CDF_S3_CONFIG";
/// Environment variable holding the path of the configuration file.
pub(crate) const CONFIG_PATH_ENV: &str = "CDF_S3_CONFIG_PATH";
/// The deployment's bucket (the template's `Bucket`); when set, the destination is pinned.
pub(crate) const DEPLOYMENT_BUCKET_ENV: &str = "AWS_S3_BUCKET";
/// The deployment's key prefix (the template's `Prefix`).
pub(crate) const DEPLOYMENT_PREFIX_ENV: &str = "S3_PREFIX";
/// The deployment's Glue database (the template's `GlueDatabase`); when the destination is
/// pinned, the catalog is on exactly when it is set, and only for this database.
pub(crate) const DEPLOYMENT_GLUE_DATABASE_ENV: &str = "GLUE_DATABASE";
/// The AWS SDKs' own variable for a Glue-compatible endpoint: `destination.catalog.glue.
/// endpoint-url` must equal it when the destination is pinned.
pub(crate) const DEPLOYMENT_GLUE_ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_GLUE";
/// The AWS SDKs' own variable for an S3-compatible endpoint. The template never sets it; a
/// deployer who runs the functions against another S3 protocol server (a local `cargo lambda
/// watch` against a test server, say) sets it in the function's environment, which no
/// configuration document can change, and `destination.s3.endpoint-url` must then equal it.
pub(crate) const DEPLOYMENT_ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_S3";

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// YAML text from `CDF_S3_CONFIG`.
    Inline(String),
    /// A file named by `CDF_S3_CONFIG_PATH`.
    File(PathBuf),
}

/// Why no configuration source could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigSourceError {
    /// Neither variable is set.
    #[error(
        "no configuration: set {CONFIG_ENV} (the YAML itself) or {CONFIG_PATH_ENV} (a file in the deployment package)"
    )]
    Missing,
    /// Both variables are set.
    #[error(
        "both {CONFIG_ENV} and {CONFIG_PATH_ENV} are set; set exactly one so it is clear which configuration runs"
    )]
    Both,
    /// A local `.env` file could not be read.
    #[error("{0}")]
    DotEnv(String),
}

impl ConfigSource {
    /// Chooses the source from the environment. Empty variables count as unset.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigSourceError> {
        let inline = env.get(CONFIG_ENV).filter(|v| !v.trim().is_empty());
        let path = env.get(CONFIG_PATH_ENV).filter(|v| !v.trim().is_empty());
        match (inline, path) {
            (Some(_), Some(_)) => Err(ConfigSourceError::Both),
            (Some(text), None) => Ok(ConfigSource::Inline(text)),
            (None, Some(path)) => Ok(ConfigSource::File(PathBuf::from(path))),
            (None, None) => Err(ConfigSourceError::Missing),
        }
    }

    /// How errors and logs refer to this source.
    pub(crate) fn origin(&self) -> String {
        match self {
            ConfigSource::Inline(_) => format!("the {CONFIG_ENV} environment variable"),
            ConfigSource::File(path) => path.display().to_string(),
        }
    }

    /// The `.env` files a local run reads for `${VAR}` (none in AWS, where the secret and
    /// the function's environment provide the variables): the one next to a configuration
    /// file, then the one in the working directory.
    pub(crate) fn dotenv_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let ConfigSource::File(path) = self
            && let Some(dir) = path.parent()
        {
            let dir = if dir.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                dir
            };
            files.push(dir.join(".env"));
        }
        if let Ok(cwd) = std::env::current_dir() {
            files.push(cwd.join(".env"));
        }
        files
    }

    /// Reads, substitutes and validates the configuration; with `type: remote`, fetches the
    /// extraction pipeline's configuration through the cached CDF client and merges it.
    pub async fn load(
        &self,
        env: &dyn EnvSource,
        clients: &ClientCache,
    ) -> Result<Config, LoadError> {
        let raw = match self {
            ConfigSource::Inline(text) => RawConfig::from_yaml(text, &self.origin(), env)?,
            ConfigSource::File(path) => RawConfig::load(path, env)?,
        };
        let mut config = resolve_remote_with(raw, env, |cognite| {
            clients.client_for(cognite).map_err(ContextError::from)
        })
        .await?;
        pinned_destination(&config, env)?;
        pin_catalog(&mut config, env)?;
        Ok(config)
    }
}

/// Refuses a configuration that would write anywhere but the deployment's bucket and prefix
/// (when `AWS_S3_BUCKET` is set), or with anything but the function's own role: the role's
/// session token travels with every request, so an `endpoint-url` would hand it to that
/// host. Every mismatch is reported, with its key.
pub(crate) fn pinned_destination(config: &Config, env: &dyn EnvSource) -> Result<(), ConfigError> {
    let Some(bucket) = env
        .get(DEPLOYMENT_BUCKET_ENV)
        .filter(|b| !b.trim().is_empty())
    else {
        return Ok(());
    };
    let raw_prefix = env.get(DEPLOYMENT_PREFIX_ENV).unwrap_or_default();
    let why = format!(
        "in Lambda the destination is pinned to the deployment's bucket and prefix \
         ({DEPLOYMENT_BUCKET_ENV}, {DEPLOYMENT_PREFIX_ENV}: the stack's Bucket and Prefix \
         parameters), written with the function's role"
    );
    let mut issues = Vec::new();
    match &config.destination {
        Destination::Local(_) => issues.push(ConfigIssue::new(
            "destination.local",
            format!("a local directory is not allowed; {why}"),
        )),
        Destination::S3(s3) => {
            if s3.bucket != bucket {
                issues.push(ConfigIssue::new(
                    "destination.s3.bucket",
                    format!(
                        "{:?} is not the deployment's bucket {bucket:?}; {why}",
                        s3.bucket
                    ),
                ));
            }
            match crate::config::normalize_s3_prefix(&raw_prefix) {
                Ok(prefix) if prefix == s3.prefix => {}
                Ok(prefix) => issues.push(ConfigIssue::new(
                    "destination.s3.prefix",
                    format!(
                        "{:?} is not the deployment's prefix {prefix:?}; {why}",
                        s3.prefix
                    ),
                )),
                Err(expected) => issues.push(ConfigIssue::new(
                    "destination.s3.prefix",
                    format!("{DEPLOYMENT_PREFIX_ENV} is not a valid prefix ({expected})"),
                )),
            }
            let deployment_endpoint = env
                .get(DEPLOYMENT_ENDPOINT_ENV)
                .filter(|e| !e.trim().is_empty());
            match (&s3.endpoint_url, &deployment_endpoint) {
                (None, _) => {}
                (Some(url), Some(deployed))
                    if url.as_str().trim_end_matches('/') == deployed.trim_end_matches('/') => {}
                (Some(_), _) => issues.push(ConfigIssue::new(
                    "destination.s3.endpoint-url",
                    format!(
                        "is not allowed unless it equals the function's {DEPLOYMENT_ENDPOINT_ENV}; {why}"
                    ),
                )),
            }
            if s3.credentials.is_some() {
                issues.push(ConfigIssue::new(
                    "destination.s3.access-key-id",
                    format!("static keys are not allowed; {why}"),
                ));
            }
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(issues))
    }
}

/// Pins the Glue Data Catalog like the destination (when `AWS_S3_BUCKET` is set): with
/// `GLUE_DATABASE` set the catalog is on for that database (a `destination.catalog.glue`
/// block may repeat it, not change it); without it a catalog block is refused, since the
/// function's role may not write to any catalog. An `endpoint-url` must equal the
/// function's `AWS_ENDPOINT_URL_GLUE`, so no document can send the role's token elsewhere.
pub(crate) fn pin_catalog(config: &mut Config, env: &dyn EnvSource) -> Result<(), ConfigError> {
    let pinned = env
        .get(DEPLOYMENT_BUCKET_ENV)
        .is_some_and(|b| !b.trim().is_empty());
    if !pinned {
        return Ok(());
    }
    let database = env
        .get(DEPLOYMENT_GLUE_DATABASE_ENV)
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    let why = format!(
        "in Lambda the Glue database is pinned to the deployment's ({DEPLOYMENT_GLUE_DATABASE_ENV}: \
         the stack's GlueDatabase parameter)"
    );
    let mut issues = Vec::new();
    match (&database, &config.catalog) {
        (None, None) => {}
        (None, Some(_)) => issues.push(ConfigIssue::new(
            "destination.catalog",
            format!("the deployment has no Glue database; {why}. Set GlueDatabase to turn the catalog on"),
        )),
        (Some(database), configured) => {
            if let Some(catalog) = configured {
                if &catalog.database != database {
                    issues.push(ConfigIssue::new(
                        "destination.catalog.glue.database",
                        format!(
                            "{:?} is not the deployment's database {database:?}; {why}",
                            catalog.database
                        ),
                    ));
                }
                let deployed = env
                    .get(DEPLOYMENT_GLUE_ENDPOINT_ENV)
                    .filter(|e| !e.trim().is_empty());
                match (&catalog.endpoint_url, &deployed) {
                    (None, _) => {}
                    (Some(url), Some(deployed))
                        if url.trim_end_matches('/') == deployed.trim_end_matches('/') => {}
                    (Some(_), _) => issues.push(ConfigIssue::new(
                        "destination.catalog.glue.endpoint-url",
                        format!(
                            "is not allowed unless it equals the function's \
                             {DEPLOYMENT_GLUE_ENDPOINT_ENV}; {why}"
                        ),
                    )),
                }
            }
            if issues.is_empty() {
                let endpoint_url = configured.as_ref().and_then(|c| c.endpoint_url.clone());
                config.catalog = Some(GlueCatalogSettings {
                    database: database.clone(),
                    endpoint_url,
                });
            }
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(issues))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn exactly_one_source() {
        let inline = MapEnv::new().with(CONFIG_ENV, "cognite: {}");
        assert_eq!(
            ConfigSource::from_env(&inline).unwrap(),
            ConfigSource::Inline("cognite: {}".into())
        );
        let file = MapEnv::new()
            .with(CONFIG_PATH_ENV, "config.yaml")
            .with(CONFIG_ENV, " ");
        assert_eq!(
            ConfigSource::from_env(&file).unwrap(),
            ConfigSource::File("config.yaml".into())
        );
        let both = inline.clone().with(CONFIG_PATH_ENV, "config.yaml");
        assert_eq!(ConfigSource::from_env(&both), Err(ConfigSourceError::Both));
        let err = ConfigSource::from_env(&MapEnv::new()).unwrap_err();
        assert!(err.to_string().contains(CONFIG_ENV) && err.to_string().contains(CONFIG_PATH_ENV));
    }

    #[tokio::test]
    async fn inline_errors_name_the_variable_and_the_key() {
        let source = ConfigSource::Inline("cognite:\n  host: ${NOT_SET_ANYWHERE}\n".into());
        let err = source
            .load(&MapEnv::new(), &ClientCache::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("NOT_SET_ANYWHERE"), "{err}");
        assert!(err.contains("cognite.host"), "{err}");
    }

    #[tokio::test]
    async fn an_endpoint_is_allowed_only_when_the_deployment_sets_it() {
        let yaml = "cognite:\n  host: https://api.cognitedata.com\n  project: p\n  idp-authentication:\n    token-url: https://login.example.com/token\n    client-id: c\n    secret: s3cr3t-client-value\n    scopes: [x]\ndata_modeling:\n  - space: s\n    data_models:\n      - external_id: m\ndestination:\n  s3:\n    bucket: lake\n    prefix: cdf-data\n    region: us-east-1\n    endpoint-url: http://127.0.0.1:9000\n    allow-http: true\n";
        let pinned = MapEnv::new()
            .with(DEPLOYMENT_BUCKET_ENV, "lake")
            .with(DEPLOYMENT_PREFIX_ENV, "cdf-data/");
        let config = crate::context::load_config_text(yaml, "test", &pinned)
            .await
            .expect("config loads");
        let refused = pinned_destination(&config, &pinned)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("destination.s3.endpoint-url"), "{refused}");
        let other = pinned
            .clone()
            .with(DEPLOYMENT_ENDPOINT_ENV, "http://127.0.0.1:9001");
        assert!(pinned_destination(&config, &other).is_err());
        let same = pinned.with(DEPLOYMENT_ENDPOINT_ENV, "http://127.0.0.1:9000/");
        assert!(pinned_destination(&config, &same).is_ok());
    }

    #[tokio::test]
    async fn the_glue_database_is_pinned_by_the_deployment() {
        let yaml = "cognite:\n  host: https://api.cognitedata.com\n  project: p\n  idp-authentication:\n    token-url: https://login.example.com/token\n    client-id: c\n    secret: s3cr3t-client-value\n    scopes: [x]\ndata_modeling:\n  - space: s\n    data_models:\n      - external_id: m\ndestination:\n  s3:\n    bucket: lake\n    prefix: cdf-data\n";
        let with_catalog = format!("{yaml}  catalog:\n    glue:\n      database: other_db\n");
        let pinned = MapEnv::new()
            .with(DEPLOYMENT_BUCKET_ENV, "lake")
            .with(DEPLOYMENT_PREFIX_ENV, "cdf-data/");
        let plain = crate::context::load_config_text(yaml, "test", &pinned)
            .await
            .expect("config loads");
        let configured = crate::context::load_config_text(&with_catalog, "test", &pinned)
            .await
            .expect("config loads");

        let mut off = plain.clone();
        pin_catalog(&mut off, &pinned).unwrap();
        assert_eq!(off.catalog, None);
        let refused = pin_catalog(&mut configured.clone(), &pinned)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("destination.catalog"), "{refused}");

        let deployed = pinned
            .clone()
            .with(DEPLOYMENT_GLUE_DATABASE_ENV, "cdf_lake");
        let mut on = plain.clone();
        pin_catalog(&mut on, &deployed).unwrap();
        assert_eq!(
            on.catalog.as_ref().map(|c| c.database.as_str()),
            Some("cdf_lake")
        );
        let redirected = pin_catalog(&mut configured.clone(), &deployed)
            .unwrap_err()
            .to_string();
        assert!(
            redirected.contains("destination.catalog.glue.database"),
            "{redirected}"
        );

        let mut local_run = configured.clone();
        pin_catalog(&mut local_run, &MapEnv::new()).unwrap();
        assert_eq!(
            local_run.catalog, configured.catalog,
            "no pin outside a deployment"
        );
    }
}
