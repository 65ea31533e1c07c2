//! `logger` and `cognite`: what is needed to talk to CDF.

use std::time::Duration;

use url::Url;

use super::values::{duration, int, optional_text, required_text};
use crate::config::error::{Issues, index, join};
use crate::config::model::{CogniteFile, LoggerFile, Text};
use crate::config::secret::Secret;
use crate::config::settings::{
    ClientCredentials, CogniteSettings, ConfigKind, LogFormat, LogLevel, LoggerSettings, defaults,
};

impl ClientCredentials {
    /// Stands in for credentials that failed validation; never leaves this module.
    fn placeholder() -> Self {
        ClientCredentials {
            token_url: String::new(),
            client_id: String::new(),
            secret: Secret::new(""),
            scopes: Vec::new(),
            audience: None,
            resource: None,
        }
    }
}

pub(super) fn logger(file: Option<&LoggerFile>, issues: &mut Issues) -> LoggerSettings {
    let Some(console) = file.and_then(|l| l.console.as_ref()) else {
        return LoggerSettings::default();
    };
    let level = match &console.level {
        None => LogLevel::default(),
        Some(Text(level)) => match level.trim().to_ascii_uppercase().as_str() {
            "TRACE" => LogLevel::Trace,
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARNING" | "WARN" => LogLevel::Warning,
            "ERROR" | "CRITICAL" => LogLevel::Error,
            _ => {
                issues.push(
                    "logger.console.level",
                    format!(
                        "unknown log level {level:?}; expected DEBUG, INFO, WARNING, ERROR \
                         (or TRACE, WARN, CRITICAL)"
                    ),
                );
                LogLevel::default()
            }
        },
    };
    let format = match &console.format {
        None => None,
        Some(Text(format)) => match format.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                issues.push(
                    "logger.console.format",
                    format!("unknown log format {format:?}; expected `text` or `json`"),
                );
                None
            }
        },
    };
    LoggerSettings { level, format }
}

pub(super) fn cognite(
    file: Option<&CogniteFile>,
    kind: ConfigKind,
    issues: &mut Issues,
) -> CogniteSettings {
    let Some(file) = file else {
        issues.push("cognite", "required section is missing");
        return CogniteSettings {
            host: String::new(),
            project: String::new(),
            credentials: ClientCredentials::placeholder(),
            extraction_pipeline: None,
            timeout: defaults::HTTP_TIMEOUT,
            max_retries: defaults::MAX_RETRIES,
        };
    };
    let host = match required_text(file.host.as_ref(), "cognite.host", issues) {
        Some(host) => base_url(&host, "cognite.host", issues),
        None => String::new(),
    };
    let project = required_text(file.project.as_ref(), "cognite.project", issues);
    if let Some(project) = &project
        && project.contains(['/', ' ', '?', '#'])
    {
        issues.push(
            "cognite.project",
            format!("{project:?} is not a CDF project name; expected the project's URL name"),
        );
    }

    let auth_path = "cognite.idp-authentication";
    let credentials = match &file.idp_authentication {
        None => {
            issues.push(auth_path, "required section is missing");
            None
        }
        Some(auth) => {
            let token_url = required_text(
                auth.token_url.as_ref(),
                &join(auth_path, "token-url"),
                issues,
            )
            .map(|url| token_url(&url, &join(auth_path, "token-url"), issues));
            let client_id = required_text(
                auth.client_id.as_ref(),
                &join(auth_path, "client-id"),
                issues,
            );
            let secret = match &auth.secret {
                None => {
                    issues.push(join(auth_path, "secret"), "required key is missing");
                    None
                }
                Some(secret) if secret.expose().trim().is_empty() => {
                    issues.push(join(auth_path, "secret"), "must not be empty");
                    None
                }
                Some(secret) => Some(secret.clone()),
            };
            let mut scopes = Vec::new();
            for (i, Text(scope)) in auth.scopes.iter().flat_map(|s| s.0.iter()).enumerate() {
                let before = scopes.len();
                scopes.extend(scope.split_whitespace().map(str::to_string));
                if scopes.len() == before {
                    issues.push(
                        index(&join(auth_path, "scopes"), i),
                        "empty scope; expected e.g. https://<cluster>.cognitedata.com/.default",
                    );
                }
            }
            Some(ClientCredentials {
                token_url: token_url.unwrap_or_default(),
                client_id: client_id.unwrap_or_default(),
                secret: secret.unwrap_or_else(|| Secret::new("")),
                scopes,
                audience: optional_text(auth.audience.as_ref()),
                resource: optional_text(auth.resource.as_ref()),
            })
        }
    };

    let pipeline_path = "cognite.extraction-pipeline.external-id";
    let extraction_pipeline = file
        .extraction_pipeline
        .as_ref()
        .and_then(|p| optional_text(p.external_id.as_ref()));
    match &extraction_pipeline {
        None if kind == ConfigKind::Remote => issues.push(
            pipeline_path,
            "required when `type: remote`: the configuration is read from this extraction \
             pipeline",
        ),
        Some(xid) if xid.chars().count() > 255 => {
            issues.push(pipeline_path, "expected at most 255 characters")
        }
        _ => {}
    }

    CogniteSettings {
        host,
        project: project.unwrap_or_default(),
        credentials: credentials.unwrap_or_else(ClientCredentials::placeholder),
        extraction_pipeline,
        timeout: duration(
            file.timeout.as_ref(),
            "cognite.timeout",
            defaults::HTTP_TIMEOUT,
            Duration::from_secs(1),
            Some(Duration::from_secs(3_600)),
            issues,
        ),
        max_retries: int(
            file.max_retries,
            "cognite.max-retries",
            defaults::MAX_RETRIES,
            0,
            50,
            issues,
        ),
    }
}

/// A CDF cluster URL: https (http only on the loopback interface), no query, no credentials.
fn base_url(text: &str, path: &str, issues: &mut Issues) -> String {
    let Some(url) = http_url(text, path, issues) else {
        return String::new();
    };
    if url.query().is_some() || url.fragment().is_some() {
        issues.push(
            path,
            format!("{text:?}: expected a base URL without query or fragment"),
        );
    }
    if url.path().contains("/api/") {
        issues.push(
            path,
            format!(
                "{text:?}: expected the cluster URL only, e.g. https://api.cognitedata.com \
                 (the client adds /api/v1/projects/<project>)"
            ),
        );
    }
    text.trim().trim_end_matches('/').to_string()
}

fn token_url(text: &str, path: &str, issues: &mut Issues) -> String {
    http_url(text, path, issues);
    text.trim().to_string()
}

fn http_url(text: &str, path: &str, issues: &mut Issues) -> Option<Url> {
    let url = match Url::parse(text.trim()) {
        Ok(url) => url,
        Err(err) => {
            issues.push(
                path,
                format!("{text:?} is not a valid URL ({err}); expected e.g. https://host"),
            );
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        // The value is not repeated: it holds credentials.
        issues.push(path, "the URL must not contain a user name or password");
        return None;
    }
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match url.scheme() {
        "https" => Some(url),
        "http" if loopback => Some(url),
        "http" => {
            issues.push(
                path,
                format!(
                    "{text:?} uses plain http, which is allowed only for 127.0.0.1 or \
                     localhost; expected https://"
                ),
            );
            None
        }
        other => {
            issues.push(
                path,
                format!("{text:?} has scheme `{other}`; expected https://"),
            );
            None
        }
    }
}
