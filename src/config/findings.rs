//! Every problem of a configuration file from every stage of loading, each said once.
//!
//! Loading has stages (unknown keys, `${VAR}` substitution, value types, semantic checks),
//! and a user fixing a file wants all their findings in one run. A problem found by an early
//! stage often shows up again later in other words: a misspelled `idp-authentification` is
//! also a missing `idp-authentication`, an unset variable also a missing value. Such echoes
//! are dropped, and a required value that is missing because its variable is set but empty
//! is reported as exactly that.

use super::error::{ConfigError, ConfigIssue};

/// The problems found so far, and which later findings they already explain.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    issues: Vec<ConfigIssue>,
    /// Paths whose value was refused and taken out: nothing at or below them is reported
    /// again.
    explained: Vec<String>,
    /// Keys a misspelled key most likely meant: their absence is not reported again.
    meant: Vec<String>,
    /// `(section, key in backticks)` of each refused key.
    named: Vec<(String, String)>,
    /// `(key path, variable)` of values that are a set but empty variable.
    empty: Vec<(String, String)>,
}

impl Findings {
    /// Records a problem that explains everything at and below its path, and a complaint
    /// of its section that names its key (`destination`: "expected one of `s3` or `local`"
    /// after a refused `destination.local`).
    pub(crate) fn refused(&mut self, issue: ConfigIssue) {
        let path = normalized(&issue.path);
        if let Some((parent, key)) = path.rsplit_once('.') {
            self.named.push((parent.to_owned(), format!("`{key}`")));
        }
        self.explained.push(path);
        self.issues.push(issue);
    }

    /// Notes that a key was meant where a misspelled one was written.
    pub(crate) fn meant(&mut self, path: &str) {
        self.meant.push(normalized(path));
    }

    /// Notes that the value at `path` is the empty variable `variable`.
    pub(crate) fn empty_variable(&mut self, path: &str, variable: &str) {
        self.empty.push((normalized(path), variable.to_owned()));
    }

    /// Records the problems of a later stage, leaving out those an earlier one explains.
    pub(crate) fn later(&mut self, issues: impl IntoIterator<Item = ConfigIssue>) {
        for mut issue in issues {
            let path = normalized(&issue.path);
            let below = |explained: &String| {
                path == *explained
                    || path.starts_with(&format!("{explained}."))
                    || path.starts_with(&format!("{explained}["))
            };
            let names_refused = |(section, key): &(String, String)| {
                *section == path && issue.message.replace('_', "-").contains(key.as_str())
            };
            if self.explained.iter().any(below)
                || self.meant.contains(&path)
                || self.named.iter().any(names_refused)
            {
                continue;
            }
            if let Some((_, variable)) = self.empty.iter().find(|(p, _)| *p == path) {
                issue.message = empty_variable_message(variable, &issue.message);
            }
            self.issues.push(issue);
        }
    }

    /// `Ok` when no problem was found, else every problem.
    pub(crate) fn into_result(self) -> Result<(), ConfigError> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(self.issues))
        }
    }
}

/// A key path with `_` read as `-`: both spellings name the same key, and the stages do not
/// all use the spelling of the file.
fn normalized(path: &str) -> String {
    path.replace('_', "-")
}

fn empty_variable_message(variable: &str, original: &str) -> String {
    if original == "required key is missing" || original.starts_with("must not be empty") {
        format!("environment variable {variable} is set but empty; this key needs a value")
    } else {
        format!("environment variable {variable} is set but empty: {original}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_of_earlier_problems_are_dropped() {
        let mut findings = Findings::default();
        findings.refused(ConfigIssue::new("cognite.idp_authentification", "unknown"));
        findings.meant("cognite.idp_authentication");
        findings.refused(ConfigIssue::new("data_modeling[0].views", "wrong"));
        findings.later([
            ConfigIssue::new("cognite.idp-authentication", "required section is missing"),
            ConfigIssue::new("data_modeling[0].views[1]", "bad view"),
            ConfigIssue::new("data_modeling[0].viewsx", "kept"),
            ConfigIssue::new("cognite.project", "kept too"),
        ]);
        let Err(ConfigError::Invalid(issues)) = findings.into_result() else {
            panic!("expected issues");
        };
        let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(messages, ["unknown", "wrong", "kept", "kept too"]);
    }

    #[test]
    fn a_missing_value_from_an_empty_variable_says_so() {
        let mut findings = Findings::default();
        findings.empty_variable("cognite.project", "CDF_PROJECT");
        findings.later([ConfigIssue::new(
            "cognite.project",
            "required key is missing",
        )]);
        let Err(ConfigError::Invalid(issues)) = findings.into_result() else {
            panic!("expected issues");
        };
        assert_eq!(
            issues[0].message,
            "environment variable CDF_PROJECT is set but empty; this key needs a value"
        );
    }
}
