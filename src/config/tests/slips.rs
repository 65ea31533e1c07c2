//! The slips users make most often, each with the message that names the real problem. One
//! table: the file (or variables), the key path the message is about, and the words it
//! must say.

use super::{VALID, variant};
use crate::config::{ConfigError, MapEnv, RawConfig};

struct Slip {
    /// What the user did.
    what: &'static str,
    yaml: String,
    env: MapEnv,
    /// The key path of the message; empty for an error that is not about one key (YAML
    /// syntax).
    path: &'static str,
    /// Words the message must contain.
    says: &'static [&'static str],
    /// Words no message may contain.
    never: &'static [&'static str],
}

fn slip(
    what: &'static str,
    yaml: String,
    path: &'static str,
    says: &'static [&'static str],
) -> Slip {
    Slip {
        what,
        yaml,
        env: MapEnv::new(),
        path,
        says,
        never: &[],
    }
}

fn with_secret_variable(yaml: &str) -> String {
    yaml.replace("secret: s3cr3t-value", "secret: ${COGNITE_CLIENT_SECRET}")
}

fn slips() -> Vec<Slip> {
    let secret_env = MapEnv::new().with("COGNITE_CLIENT_SECRET", "a-long-client-secret");
    let s3 = |bucket: &str| {
        variant(
            "  local:\n    path: ./lake\n",
            &format!("  s3:\n    bucket: \"{bucket}\"\n"),
        )
    };
    vec![
        Slip {
            env: secret_env.clone(),
            never: &["secret variable", "a-long-client-secret"],
            ..slip(
                "a misspelled section that holds a secret variable",
                with_secret_variable(&VALID.replace("idp-authentication", "idp-authentification")),
                "cognite.idp-authentification",
                &["unknown key `idp-authentification`; did you mean `idp-authentication`?"],
            )
        },
        Slip {
            env: MapEnv::new().with("CDF_PROJECT", ""),
            ..slip(
                "a variable that is set but empty",
                variant("project: my-project", "project: ${CDF_PROJECT}"),
                "cognite.project",
                &["environment variable CDF_PROJECT is set but empty; this key needs a value"],
            )
        },
        slip(
            "a variable that is not set",
            variant("project: my-project", "project: ${CDF_PROJECT}"),
            "cognite.project",
            &["environment variable CDF_PROJECT is not set"],
        ),
        Slip {
            env: secret_env.clone(),
            never: &["a-long-client-secret"],
            ..slip(
                "a secret variable in a field that is printed",
                with_secret_variable(&variant(
                    "project: my-project",
                    "project: ${COGNITE_CLIENT_SECRET}",
                )),
                "cognite.project",
                &["is a secret variable and may only be used in a credential field"],
            )
        },
        slip(
            "a bucket given as an ARN",
            s3("arn:aws:s3:::my-bucket"),
            "destination.s3.bucket",
            &["not an ARN; write `bucket: my-bucket`", "`prefix`"],
        ),
        slip(
            "a bucket with a path",
            s3("my-bucket/cdf/data"),
            "destination.s3.bucket",
            &["write `bucket: my-bucket` and `prefix: cdf/data`"],
        ),
        slip(
            "a bucket given as an s3:// URL",
            s3("s3://my-bucket/x"),
            "destination.s3.bucket",
            &["without `s3://`; write `my-bucket` and put any path into `prefix`"],
        ),
        slip(
            "a bucket name in capitals",
            s3("My-Bucket"),
            "destination.s3.bucket",
            &["lowercase letters, digits"],
        ),
        slip(
            "a duration with an unknown unit",
            variant("poll-time: 900", "poll-time: 15min"),
            "extractor.poll-time",
            &["unknown unit `min`", "\"15m\""],
        ),
        slip(
            "a negative duration",
            variant("poll-time: 900", "poll-time: -60"),
            "extractor.poll-time",
            &["-60 is negative"],
        ),
        slip(
            "a negative number",
            variant("parallelism: 2", "parallelism: -3"),
            "extractor.parallelism",
            &["-3 is out of range; expected a whole number from 1 to 8"],
        ),
        slip(
            "the project left out",
            variant("  project: my-project\n", ""),
            "cognite.project",
            &["required key is missing"],
        ),
        slip(
            "a tab in the indentation",
            variant("  project: my-project", "\tproject: my-project"),
            "",
            &["malformed YAML", "tab character"],
        ),
        slip(
            "a view given as space:View",
            variant("views: [Pump, Valve]", "views: [\"plant:Pump\", Valve]"),
            "data_modeling[0].data_models[0].views[0]",
            &["list the view by its externalId only (`Pump`)"],
        ),
        slip(
            "a list written as one text",
            variant("views: [Pump, Valve]", "views: Pump, Valve"),
            "data_modeling[0].data_models[0].views",
            &["expected a list", "write a list as `[A, B]`"],
        ),
        slip(
            "data_modeling inside extractor",
            variant(
                "  parallelism: 2\n",
                "  parallelism: 2\n  data_modeling: []\n",
            ),
            "extractor.data_modeling",
            &[
                "unknown key `data_modeling`",
                "belongs under `the top level of the file`",
            ],
        ),
        slip(
            "the bucket under cognite",
            variant(
                "  project: my-project\n",
                "  project: my-project\n  bucket: b\n",
            ),
            "cognite.bucket",
            &["unknown key `bucket`", "belongs under `destination.s3`"],
        ),
        slip(
            "views directly under the space",
            variant(
                "  - space: plant\n",
                "  - space: plant\n    views: [Pump]\n",
            ),
            "data_modeling[0].views",
            &["views are listed per data model, under data_models[].views"],
        ),
        Slip {
            never: &["data_modeling: required"],
            ..slip(
                "a misspelled top-level section",
                VALID.replace("data_modeling:", "data-modelling:"),
                "data-modelling",
                &["did you mean `data_modeling`?"],
            )
        },
        slip(
            "the API path in the host",
            variant(
                "host: https://api.cognitedata.com",
                "host: https://api.cognitedata.com/api/v1/projects/my-project",
            ),
            "cognite.host",
            &["expected the cluster URL only"],
        ),
        slip(
            "an unknown log level",
            format!("{VALID}logger:\n  console:\n    level: verbose\n"),
            "logger.console.level",
            &[
                "unknown log level \"verbose\"",
                "DEBUG, INFO, WARNING, ERROR",
            ],
        ),
        slip(
            "a time budget inside the deadline margin",
            variant("parallelism: 2", "parallelism: 2\n  time-budget: 15s"),
            "extractor.time-budget",
            &["15s leaves no time after the deadline-margin of 20s"],
        ),
    ]
}

fn error_of(slip: &Slip) -> ConfigError {
    match RawConfig::from_yaml(&slip.yaml, "test.yaml", &slip.env) {
        Ok(_) => panic!("{}: loaded, expected an error", slip.what),
        Err(error) => error,
    }
}

#[test]
fn common_slips_get_messages_that_name_the_real_problem() {
    let slips = slips();
    assert!(slips.len() >= 20, "the table covers the common slips");
    for slip in &slips {
        let error = error_of(slip);
        let shown = error.to_string();
        let message = if slip.path.is_empty() {
            shown.clone()
        } else {
            let issue = error
                .issues()
                .iter()
                .find(|issue| issue.path == slip.path)
                .unwrap_or_else(|| panic!("{}: no message at {}: {shown}", slip.what, slip.path));
            issue.message.clone()
        };
        for words in slip.says {
            assert!(
                message.contains(words),
                "{}: {message:?} does not say {words:?}",
                slip.what
            );
        }
        for words in slip.never {
            assert!(
                !shown.contains(words),
                "{}: {shown:?} says {words:?}",
                slip.what
            );
        }
        // One slip, one message: no echo of it in other words elsewhere.
        assert!(
            error.issues().len() <= 1,
            "{}: more than one message: {shown}",
            slip.what
        );
    }
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let yaml = with_secret_variable(
        &VALID
            .replace("idp-authentication", "idp-authentification")
            .replace("poll-time: 900", "poll-tim: 900\n  verify-sample: many")
            .replace("project: my-project", "project: ${CDF_PROJECT}")
            .replace("version: \"1\"", "version: \"1/2\"")
            .replace("path: ./lake", "path: ./lake\n  catalog: {}"),
    );
    let env = MapEnv::new().with("COGNITE_CLIENT_SECRET", "a-long-client-secret");
    let error = RawConfig::from_yaml(&yaml, "test.yaml", &env).unwrap_err();
    let paths: Vec<&str> = error.issues().iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "cognite.idp-authentification",
            "extractor.poll-tim",
            "cognite.project",
            "extractor.verify-sample",
            "data_modeling[0].data_models[0].version",
            "destination.catalog",
        ],
        "{error}"
    );
}
