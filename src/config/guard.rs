//! Checks that run before and after parsing, so that neither a hostile document nor a
//! mistake can make loading slow or copy a secret into a field that is printed or sent.
//!
//! - [`check_bounds`]: a document larger than [`MAX_DOCUMENT_BYTES`] or nested deeper than
//!   [`MAX_NESTING`] is refused from a single linear scan of the text, before the YAML parser
//!   sees it (the parser takes seconds to minutes on tens of thousands of levels).
//! - [`secret_values_outside_credentials`]: after substitution, no string outside the
//!   credential fields may contain the value of a known secret.

use serde_yaml_ng::Value;

use super::env::{is_credential_path, key_text};
use super::error::{ConfigError, Issues, index, join};

/// Largest configuration document accepted (local file, inline variable or remote
/// revision). A real configuration is a few kilobytes.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Deepest nesting accepted, counting every indentation level, sequence indicator (`- `,
/// `? `) and flow bracket (`[`, `{`). A real configuration nests fewer than 15 levels.
pub(crate) const MAX_NESTING: usize = 64;

/// Refuses a document that is too large or too deeply nested, without parsing it.
pub(crate) fn check_bounds(text: &str, origin: &str) -> Result<(), ConfigError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(too_large(origin, &text.len().to_string()));
    }
    if let Some(line) = first_line_too_deep(text) {
        return Err(ConfigError::TooLarge {
            origin: origin.to_string(),
            message: format!(
                "the document nests more than {MAX_NESTING} levels deep (at line {line}); a \
                 configuration needs fewer than 15"
            ),
        });
    }
    Ok(())
}

/// The refusal of a document of `bytes` bytes (a number, or "more than N" for a file that
/// was not read to its end).
pub(crate) fn too_large(origin: &str, bytes: &str) -> ConfigError {
    ConfigError::TooLarge {
        origin: origin.to_string(),
        message: format!(
            "the document has {bytes} bytes; at most {MAX_DOCUMENT_BYTES} bytes (1 MiB) are \
             accepted"
        ),
    }
}

/// The 1-based line where the nesting first exceeds [`MAX_NESTING`], if it does.
///
/// An over-estimate by design: block scalars and unusual plain scalars may count a level
/// too many, never too few, and nothing real comes near the limit.
fn first_line_too_deep(text: &str) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if quote.is_none() && flow == 0 {
            if content.trim().is_empty() || content.starts_with('#') {
                continue;
            }
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            if indents.len() > MAX_NESTING {
                return Some(number + 1);
            }
        }
        let block = indents.len();
        let mut indicators = 0usize;
        // At a token start, a quote opens a quoted scalar and a bracket a flow collection.
        let mut token_start = true;
        let mut previous = ' ';
        let mut chars = content.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Some('\'') => {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            quote = None;
                        }
                    }
                }
                Some(_) => match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => quote = None,
                    _ => {}
                },
                None => match c {
                    '#' if previous == ' ' || previous == '\t' => break,
                    '\'' | '"' if token_start => quote = Some(c),
                    '[' | '{' if token_start || flow > 0 => flow += 1,
                    ']' | '}' if flow > 0 => flow -= 1,
                    '-' | '?'
                        if token_start
                            && flow == 0
                            && matches!(chars.peek(), None | Some(' ') | Some('\t')) =>
                    {
                        indicators += 1;
                    }
                    _ => {}
                },
            }
            if block + indicators + flow > MAX_NESTING {
                return Some(number + 1);
            }
            token_start = match c {
                ' ' | '\t' => token_start || matches!(previous, ':' | ',' | '-' | '?'),
                '[' | '{' | ',' => flow > 0,
                _ => false,
            } && quote.is_none();
            previous = c;
        }
    }
    None
}

/// Secrets shorter than this are not searched for: a short test value such as `s` would
/// match ordinary text. Real client secrets and keys are far longer.
const MIN_SEARCHED_SECRET_CHARS: usize = 8;

/// Reports every string outside the credential fields that contains one of `secrets`
/// (`(what, value)` pairs). The message names the key and what the secret is, never its
/// value.
pub(crate) fn secret_values_outside_credentials(
    document: &Value,
    secrets: &[(&str, &str)],
    issues: &mut Issues,
) {
    let secrets: Vec<(&str, &str)> = secrets
        .iter()
        .copied()
        .filter(|(_, value)| value.chars().count() >= MIN_SEARCHED_SECRET_CHARS)
        .collect();
    if !secrets.is_empty() {
        scan(document, "", &secrets, issues);
    }
}

fn scan(value: &Value, path: &str, secrets: &[(&str, &str)], issues: &mut Issues) {
    match value {
        Value::String(text) => {
            if is_credential_path(path) {
                return;
            }
            if let Some((what, _)) = secrets.iter().find(|(_, secret)| text.contains(secret)) {
                issues.push(
                    path,
                    format!(
                        "holds the value of {what}; a secret may only be used in a credential \
                         field (cognite.idp-authentication.secret, \
                         destination.s3.secret-access-key), never in a field that is printed \
                         or sent elsewhere"
                    ),
                );
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                scan(item, &index(path, i), secrets, issues);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map {
                scan(item, &join(path, &key_text(key)), secrets, issues);
            }
        }
        Value::Tagged(tagged) => scan(&tagged.value, path, secrets, issues),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_flow(levels: usize) -> String {
        format!("a: {}1{}\n", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn ordinary_documents_pass() {
        let text = "cognite:\n  host: x # a [comment {\n  scopes: [a, {b: [c]}]\ndata_modeling:\n  \
                    - space: s\n    data_models:\n      - external_id: M\n        views: [A, B]\n\
                    description: 'it''s [not a list'\nother: \"also [not \\\" {\"\nplain: a[b\n";
        assert_eq!(first_line_too_deep(text), None);
        assert_eq!(first_line_too_deep(&nested_flow(MAX_NESTING - 1)), None);
    }

    #[test]
    fn deep_flow_block_and_indicator_nesting_is_found() {
        assert_eq!(first_line_too_deep(&nested_flow(MAX_NESTING + 1)), Some(1));
        assert_eq!(first_line_too_deep(&nested_flow(100_000)), Some(1));
        let indicators = format!("{}x\n", "- ".repeat(MAX_NESTING + 1));
        assert_eq!(first_line_too_deep(&indicators), Some(1));
        let block: String = (0..=MAX_NESTING)
            .map(|level| format!("{}k{level}:\n", " ".repeat(level)))
            .collect();
        assert_eq!(first_line_too_deep(&block), Some(MAX_NESTING + 1));
        let flow_lines = format!("a:\n{}", "  [\n".repeat(MAX_NESTING + 1));
        assert!(first_line_too_deep(&flow_lines).is_some());
    }

    #[test]
    fn secret_values_are_found_outside_credential_fields_only() {
        let document: Value = serde_yaml_ng::from_str(
            "cognite:\n  idp-authentication:\n    secret: hunter2-hunter2\nextractor:\n  \
             state-store:\n    raw:\n      database: db-hunter2-hunter2\n",
        )
        .unwrap();
        let mut issues = Issues::default();
        secret_values_outside_credentials(
            &document,
            &[("the CDF client secret", "hunter2-hunter2")],
            &mut issues,
        );
        let issues = issues.into_vec();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].path, "extractor.state-store.raw.database");
        assert!(!issues[0].message.contains("hunter2"), "{issues:?}");
    }
}
