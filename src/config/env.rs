//! `${VAR}` substitution in the parsed YAML tree, and where variables come from.
//!
//! Substitution runs on the value tree rather than on the raw text, so that an error can name
//! the key whose value refers to a missing variable, and a value can never inject YAML syntax.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::error::{ConfigError, ConfigIssue, Issues, index, join};
use super::remote::own_values::{OwnValues, python_variable_names};

/// Where `${VAR}` values come from. Injectable so that tests never mutate the process
/// environment (which is `unsafe` in edition 2024 and racy between test threads).
pub trait EnvSource {
    /// The value of `name`, or `None` when it is not set.
    fn get(&self, name: &str) -> Option<String>;

    /// Whether the value of `name` comes from a secret store (the Secrets Manager secret),
    /// so that a remote configuration may never expand it, whatever its name.
    fn is_from_secret_store(&self, _name: &str) -> bool {
        false
    }
}

/// Variables a remote configuration may expand: only these names, and only when they are
/// not secret-looking (see [`is_secret_variable`]) and not read from the secret store.
/// Whoever can edit the extraction pipeline's configuration must not be able to copy a
/// credential or any process value into a field that is sent somewhere (a key prefix, a
/// RAW database name, a URL), so the operator opts a variable in by its name.
pub const REMOTE_VAR_PREFIX: &str = "CDF_S3_REMOTE_";

/// Keys whose value is a credential: the only places a secret variable may be expanded
/// into. Spelled with `-`; the `_` spelling of each key is the same key.
pub(crate) const CREDENTIAL_PATHS: [&str; 3] = [
    "cognite.idp-authentication.secret",
    "destination.s3.secret-access-key",
    "destination.s3.access-key-id",
];

/// Whether `path` (a key path as in errors) is one of [`CREDENTIAL_PATHS`].
pub(crate) fn is_credential_path(path: &str) -> bool {
    let path = path.replace('_', "-");
    CREDENTIAL_PATHS.contains(&path.as_str())
}

/// Whether a variable's name says it holds a credential: every `AWS_*` credential variable
/// (`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ACCESS_KEY_ID`, the container
/// credential variables), and any name with `SECRET`, `PASSWORD`, `PASSWD`, `TOKEN`,
/// `PRIVATE`, `CREDENTIAL`, `API_KEY`, `APIKEY`, `ACCESS_KEY` or `SESSION` in it, except the
/// two connection settings `*TOKEN_URL` and `*TOKEN_SCOPES` (`COGNITE_TOKEN_URL`,
/// `COGNITE_TOKEN_SCOPES`).
pub fn is_secret_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    const WORDS: [&str; 10] = [
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "TOKEN",
        "PRIVATE",
        "CREDENTIAL",
        "API_KEY",
        "APIKEY",
        "ACCESS_KEY",
        "SESSION",
    ];
    let connection_setting = ["TOKEN_URL", "TOKEN_SCOPES", "TOKEN_SCOPE"]
        .iter()
        .any(|suffix| upper.ends_with(suffix));
    let strong = ["SECRET", "PASSWORD", "PASSWD", "PRIVATE"]
        .iter()
        .any(|word| upper.contains(word));
    if connection_setting && !strong {
        return false;
    }
    WORDS.iter().any(|word| upper.contains(word))
}

/// Which rules `${VAR}` follows in a document.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The local file (or the function's `CDF_S3_CONFIG`): any variable, but a secret one
    /// only in a credential field.
    Local,
    /// The configuration stored in the extraction pipeline: `CDF_S3_REMOTE_*` from the
    /// environment, and the Python replicator's variables, which stand for the function's
    /// own values in the keys where its configuration used them.
    Remote(&'a OwnValues),
}

/// The process environment, backed by the `.env` files next to the configuration file and in
/// the current directory. Process variables win over `.env`; the file next to the
/// configuration wins over the one in the current directory. Nothing is written to the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct ProcessEnv {
    dotenv: HashMap<String, String>,
}

impl ProcessEnv {
    /// Only the process environment, no `.env` file (used in Lambda).
    pub(crate) fn without_dotenv() -> Self {
        Self::default()
    }

    /// The process environment plus the `.env` files for a configuration file at `config_path`.
    /// Missing `.env` files are fine; a malformed one is an error.
    pub fn for_config_file(config_path: &Path) -> Result<Self, ConfigError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = config_path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            candidates.push(dir.join(".env"));
        }
        if let Ok(cwd) = std::env::current_dir() {
            candidates.push(cwd.join(".env"));
        }
        Self::from_dotenv_files(&candidates)
    }

    /// The process environment plus the given `.env` files, earlier files winning.
    pub(crate) fn from_dotenv_files(files: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut dotenv = HashMap::new();
        let mut seen: Vec<PathBuf> = Vec::new();
        for file in files {
            let canonical = file.canonicalize().unwrap_or_else(|_| file.clone());
            if seen.contains(&canonical) {
                continue;
            }
            seen.push(canonical);
            for (name, value) in read_dotenv(file)? {
                dotenv.entry(name).or_insert(value);
            }
        }
        Ok(Self { dotenv })
    }
}

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.dotenv.get(name).cloned())
    }
}

/// Reads one `.env` file into pairs; a missing file gives no pairs.
pub fn read_dotenv(file: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let iter = match dotenvy::from_path_iter(file) {
        Ok(iter) => iter,
        Err(err) if err.not_found() => return Ok(Vec::new()),
        Err(err) => {
            return Err(ConfigError::DotEnv {
                path: file.to_path_buf(),
                message: err.to_string(),
            });
        }
    };
    iter.map(|item| {
        item.map_err(|err| ConfigError::DotEnv {
            path: file.to_path_buf(),
            message: err.to_string(),
        })
    })
    .collect()
}

/// A fixed set of variables, for tests and for callers that fetched them elsewhere
/// (for example from AWS Secrets Manager).
#[derive(Debug, Clone, Default)]
pub struct MapEnv(pub(crate) HashMap<String, String>);

impl MapEnv {
    /// An empty set of variables: every `${VAR}` is unset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one variable; chainable.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl EnvSource for MapEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// Layers two sources: `first` wins, `second` fills the gaps.
pub struct Layered<'a>(pub(crate) &'a dyn EnvSource, pub(crate) &'a dyn EnvSource);

impl EnvSource for Layered<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).or_else(|| self.1.get(name))
    }

    fn is_from_secret_store(&self, name: &str) -> bool {
        if self.0.get(name).is_some() {
            self.0.is_from_secret_store(name)
        } else {
            self.1.is_from_secret_store(name)
        }
    }
}

/// Replaces `${VAR}` in every string scalar of `value` (mapping keys are left alone).
///
/// A scalar that is exactly `${VAR}` is re-read as a YAML scalar, so `poll-time: ${POLL}`
/// becomes a number and an empty variable becomes null (an absent optional value). The
/// re-read keeps a value as text unless it is the canonical spelling of a number or boolean,
/// so that secrets and names like `007` or `1e5` are never altered. `$${` writes a literal `${`.
/// Every problem is reported, with the key path.
///
/// `scope` limits which variables may be expanded where: a secret variable (see
/// [`is_secret_variable`]) only into a credential field, and in a remote document only
/// `CDF_S3_REMOTE_*` variables and the Python replicator's names for the function's own
/// values (each in its own key, see [`OwnValues`]), so that no secret or process value can be
/// copied into a field that is printed or sent elsewhere.
pub(crate) fn substitute(
    value: &mut Value,
    env: &dyn EnvSource,
    scope: Scope<'_>,
) -> Result<(), ConfigError> {
    let outcome = substitute_collecting(value, env, scope);
    Issues::from(outcome.issues).into_result(())
}

/// What substitution found, for a caller that goes on to report every other problem too.
#[derive(Debug, Default)]
pub(crate) struct Substitution {
    /// References that could not be expanded; each such value is replaced by null, so that
    /// no later stage reports it a second time as a wrong or missing value.
    pub(crate) issues: Vec<ConfigIssue>,
    /// `(key path, variable)` of each value that is exactly `${VAR}` of a variable that is
    /// set but empty: a required key there is reported as the empty variable it is.
    pub(crate) empty: Vec<(String, String)>,
    /// `(key path, variable)` of each value that is exactly `${VAR}`: where a credential
    /// came from, so that it can be shown as its reference instead of its value.
    pub(crate) references: Vec<(String, String)>,
}

/// Like [`substitute`], returning every problem instead of failing, with the values that
/// could not be expanded replaced by null.
pub(crate) fn substitute_collecting(
    value: &mut Value,
    env: &dyn EnvSource,
    scope: Scope<'_>,
) -> Substitution {
    let mut outcome = Substitution::default();
    walk(value, "", env, scope, &mut outcome);
    outcome
}

fn walk(
    value: &mut Value,
    path: &str,
    env: &dyn EnvSource,
    scope: Scope<'_>,
    outcome: &mut Substitution,
) {
    match value {
        Value::String(text) => {
            if let Some(replacement) = substitute_scalar(text, path, env, scope, outcome) {
                *value = replacement;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &index(path, i), env, scope, outcome);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                walk(item, &join(path, &key_text(key)), env, scope, outcome);
            }
        }
        Value::Tagged(tagged) => walk(&mut tagged.value, path, env, scope, outcome),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The value of `${name}` at `path` (`whole`: the reference is the whole value), or why it
/// may not be expanded there.
fn resolve(
    name: &str,
    path: &str,
    whole: bool,
    env: &dyn EnvSource,
    scope: Scope<'_>,
) -> Result<String, String> {
    match scope {
        Scope::Remote(own) => {
            if let Some(resolved) = own.resolve(name, path, whole) {
                return resolved;
            }
            if !name.starts_with(REMOTE_VAR_PREFIX)
                || is_secret_variable(name)
                || env.is_from_secret_store(name)
            {
                return Err(remote_refusal(name, path));
            }
        }
        Scope::Local if is_secret_variable(name) && !is_credential_path(path) => {
            return Err(format!(
                "`${{{name}}}` is a secret variable and may only be used in a credential field \
                 ({}), never in a field that is printed or sent elsewhere",
                CREDENTIAL_PATHS.join(", ")
            ));
        }
        Scope::Local => {}
    }
    env.get(name)
        .ok_or_else(|| format!("environment variable {name} is not set"))
}

/// Why a remote document may not expand `${name}` at `path`.
fn remote_refusal(name: &str, path: &str) -> String {
    let section = path.split(['.', '[']).next().unwrap_or_default();
    let fix = if matches!(section, "cognite" | "destination") {
        format!(
            "remove {path} from the configuration stored in the extraction pipeline (the \
             function's own value applies), or write the value itself"
        )
    } else {
        "write the value itself, or set it in the local file".to_owned()
    };
    format!(
        "`${{{name}}}` may not be used in the remote configuration: it expands only variables \
         named {REMOTE_VAR_PREFIX}* from the process environment (never a secret, an AWS_* \
         variable or a key of the Secrets Manager secret), and the Python replicator's \
         variables for the function's own values ({}) in the keys where its configuration \
         has them; {fix}",
        python_variable_names()
    )
}

/// A mapping key as users see it in a key path.
pub(crate) fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "~".to_string(),
        other => format!("{other:?}"),
    }
}

/// The substituted value of one string scalar, or `None` when it has no `${`. A value
/// with a reference that cannot be expanded becomes null (the problem is in `outcome`).
fn substitute_scalar(
    text: &str,
    path: &str,
    env: &dyn EnvSource,
    scope: Scope<'_>,
    outcome: &mut Substitution,
) -> Option<Value> {
    if !text.contains("${") {
        return None;
    }
    let pieces = match split_placeholders(text) {
        Ok(pieces) => pieces,
        Err(message) => {
            outcome.issues.push(ConfigIssue::new(path, message));
            return Some(Value::Null);
        }
    };
    let whole = match pieces.as_slice() {
        [Piece::Var(name)] => Some(*name),
        _ => None,
    };
    let mut out = String::with_capacity(text.len());
    let mut missing = false;
    for piece in &pieces {
        match piece {
            Piece::Literal(literal) => out.push_str(literal),
            Piece::Var(name) => match resolve(name, path, whole.is_some(), env, scope) {
                Ok(value) => out.push_str(&value),
                Err(why) => {
                    outcome.issues.push(ConfigIssue::new(path, why));
                    missing = true;
                }
            },
        }
    }
    if missing {
        return Some(Value::Null);
    }
    match whole {
        Some(name) => {
            outcome.references.push((path.to_owned(), name.to_owned()));
            if out.trim().is_empty() {
                outcome.empty.push((path.to_owned(), name.to_owned()));
            }
            Some(reparse_scalar(out))
        }
        None => Some(Value::String(out)),
    }
}

enum Piece<'a> {
    Literal(&'a str),
    Var(&'a str),
}

fn split_placeholders(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        let after = &rest[start + 1..];
        if let Some(escaped_rest) = after.strip_prefix("${") {
            // `$${` is an escaped, literal `${`.
            pieces.push(Piece::Literal(&rest[..start]));
            pieces.push(Piece::Literal("${"));
            rest = escaped_rest;
        } else if let Some(body) = after.strip_prefix('{') {
            pieces.push(Piece::Literal(&rest[..start]));
            // The value may be a secret, so these messages do not repeat it.
            let end = body.find('}').ok_or_else(|| {
                "unterminated `${`; expected ${NAME} (write `$${` for a literal `${`)".to_string()
            })?;
            let name = &body[..end];
            if !is_var_name(name) {
                return Err(
                    "invalid variable reference; expected ${NAME} with NAME made of \
                            letters, digits and `_`, not starting with a digit (write `$${` for \
                            a literal `${`)"
                        .to_string(),
                );
            }
            pieces.push(Piece::Var(name));
            rest = &body[end + 1..];
        } else {
            pieces.push(Piece::Literal(&rest[..=start]));
            rest = after;
        }
    }
    pieces.push(Piece::Literal(rest));
    pieces.retain(|p| !matches!(p, Piece::Literal("")));
    Ok(pieces)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn reparse_scalar(text: String) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(Value::Bool(b)) if b.to_string() == text => Value::Bool(b),
        Ok(Value::Number(n)) if n.to_string() == text => Value::Number(n),
        _ => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> MapEnv {
        MapEnv::new()
            .with("POLL", "900")
            .with("EMPTY", "")
            .with("NAME", "plant")
            .with("ZERO_LEAD", "007")
            .with("EXP", "1e5")
            .with("FLAG", "true")
            .with("LIST", "[a, b]")
    }

    fn run(yaml: &str) -> Result<Value, ConfigError> {
        let mut value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        substitute(&mut value, &env(), Scope::Local).map(|_| value)
    }

    #[test]
    fn exact_placeholder_is_reread_as_scalar() {
        let v = run("a: ${POLL}\nb: ${EMPTY}\nc: ${FLAG}\nd: ${NAME}").unwrap();
        assert_eq!(v["a"], Value::from(900));
        assert_eq!(v["b"], Value::Null);
        assert_eq!(v["c"], Value::Bool(true));
        assert_eq!(v["d"], Value::from("plant"));
    }

    #[test]
    fn reread_never_alters_text() {
        let v = run("a: ${ZERO_LEAD}\nb: ${EXP}\nc: ${LIST}").unwrap();
        assert_eq!(v["a"], Value::from("007"));
        assert_eq!(v["b"], Value::from("1e5"));
        assert_eq!(v["c"], Value::from("[a, b]"));
    }

    #[test]
    fn placeholder_inside_text_is_textual() {
        let v = run("a: s3://${NAME}/x\nb: ${POLL}${POLL}\nc:\n  - pre-${EMPTY}-post").unwrap();
        assert_eq!(v["a"], Value::from("s3://plant/x"));
        assert_eq!(v["b"], Value::from("900900"));
        assert_eq!(v["c"][0], Value::from("pre--post"));
    }

    #[test]
    fn escape_and_lone_dollar() {
        let v = run("a: $${NAME}\nb: cost $5 ${NAME}$").unwrap();
        assert_eq!(v["a"], Value::from("${NAME}"));
        assert_eq!(v["b"], Value::from("cost $5 plant$"));
    }

    #[test]
    fn every_missing_variable_is_reported_with_its_path() {
        let err = run("a:\n  b: ${NOPE}\nlist:\n  - x\n  - ${ALSO_NOPE}").unwrap_err();
        let issues = err.issues();
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].path, "a.b");
        assert_eq!(issues[0].message, "environment variable NOPE is not set");
        assert_eq!(issues[1].path, "list[1]");
        assert_eq!(
            issues[1].message,
            "environment variable ALSO_NOPE is not set"
        );
    }

    #[test]
    fn malformed_references() {
        let err = run("a: ${NAME").unwrap_err();
        assert!(err.issues()[0].message.contains("unterminated"));
        let err = run("a: ${1X}").unwrap_err();
        assert_eq!(err.issues()[0].path, "a");
        assert!(
            err.issues()[0]
                .message
                .starts_with("invalid variable reference;")
        );
        let err = run("secret: ab${cd-ef}gh").unwrap_err();
        assert!(
            !err.to_string().contains("cd-ef"),
            "values are not repeated: {err}"
        );
    }

    #[test]
    fn layered_env_prefers_first() {
        let a = MapEnv::new().with("X", "a");
        let b = MapEnv::new().with("X", "b").with("Y", "b");
        let both = Layered(&a, &b);
        assert_eq!(both.get("X").as_deref(), Some("a"));
        assert_eq!(both.get("Y").as_deref(), Some("b"));
        assert_eq!(both.get("Z"), None);
    }
}
