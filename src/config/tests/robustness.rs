//! Whatever bytes a configuration file holds, loading it ends in a configuration or in an
//! error that says something: never a panic. The sweeps below cut real documents at every
//! character and splice YAML's special characters into every line.

use super::{VALID, fixture_text, readme_env};
use crate::config::{ConfigError, EnvSource, MapEnv, RawConfig};

/// Loads `text`, requiring a readable error when it fails. Returns whether it loaded.
fn loads_or_explains(text: &str, env: &dyn EnvSource) -> bool {
    match RawConfig::from_yaml(text, "sweep.yaml", env) {
        Ok(_) => true,
        Err(err) => {
            let message = err.to_string();
            assert!(
                message.trim().len() > 10,
                "an unhelpful error {message:?} for:\n{text}"
            );
            if let ConfigError::Invalid(issues) = &err {
                assert!(!issues.is_empty(), "an empty issue list for:\n{text}");
            }
            false
        }
    }
}

fn documents() -> Vec<(String, MapEnv)> {
    vec![
        (VALID.to_owned(), MapEnv::new()),
        (fixture_text("readme-config.yaml"), readme_env()),
        (
            format!(
                "{}\n{}\n{}",
                fixture_text("minimal-base.yaml"),
                fixture_text("readme-data-modeling-options.yaml"),
                fixture_text("readme-performance-tuning.yaml")
            ),
            readme_env(),
        ),
        (fixture_text("remote-local.yaml"), readme_env()),
    ]
}

#[test]
fn every_truncation_of_real_documents_loads_or_explains() {
    for (document, env) in documents() {
        let mut loaded = 0;
        let mut refused = 0;
        for (cut, _) in document.char_indices() {
            if loads_or_explains(&document[..cut], &env) {
                loaded += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            loads_or_explains(&document, &env),
            "the whole document loads"
        );
        // Most cuts lose a required key or break the syntax; the sweep must exercise both.
        assert!(refused > loaded, "{refused} refused, {loaded} loaded");
    }
}

#[test]
fn special_characters_spliced_into_every_line_load_or_explain() {
    const SPLICES: [&str; 14] = [
        ":",
        "- ",
        "[",
        "{",
        "\"",
        "'",
        "\t",
        "${",
        "${UNSET_VARIABLE}",
        "&a",
        "*a",
        "!!binary ",
        "\u{0}",
        "\u{feff}",
    ];
    for (document, env) in documents() {
        let lines: Vec<&str> = document.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let indent = line.len() - line.trim_start().len();
            for splice in SPLICES {
                for at in [indent, line.len()] {
                    let mut mutated = lines.clone();
                    let changed = format!("{}{splice}{}", &line[..at], &line[at..]);
                    mutated[i] = &changed;
                    loads_or_explains(&mutated.join("\n"), &env);
                }
            }
        }
    }
}

#[test]
fn alias_expansion_bombs_are_refused() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..12 {
        let prev = level - 1;
        let name = char::from(b'a' + level as u8);
        let prev = char::from(b'a' + prev as u8);
        bomb.push_str(&format!(
            "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    assert!(!loads_or_explains(&bomb, &MapEnv::new()));
}
