//! Whoever can edit the extraction pipeline's stored configuration must not be able to
//! redirect data or credentials. Each attack is played through the CLI and through the sync
//! Lambda handler with the SAM template's own `type: remote` bootstrap; each is refused with
//! the key it tried, no secret appears in any output, and an attacker's listener on
//! 127.0.0.1 receives no connection.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use cdf_emulator::EmulatorConfig;
use cdf_emulator::sample_model::{MODEL, SCHEMA_SPACE};
use cdf_s3_replicator::config::{Destination, MapEnv};
use cdf_s3_replicator::context::ClientCache;
use cdf_s3_replicator::lambda::config_source::{CONFIG_ENV, ConfigSource};
use cdf_s3_replicator::lambda::logging::LogControl;
use cdf_s3_replicator::lambda::metrics::MemorySink;
use cdf_s3_replicator::lambda::{Function, FunctionKind, FunctionSetup, Invocation};
use serde_json::json;
use serde_yaml_ng::Value as Yaml;

use crate::support::Lab;

const AWS_SECRET: &str = "aws-secret-ZmFrZS1zZWNyZXQtYWNjZXNzLWtleQ";
const AWS_TOKEN: &str = "aws-token-IQoJb3JpZ2luX2VjEFAKESESSIONTOKEN";
const DEPLOYMENT_BUCKET: &str = "deployment-bucket";

/// A TCP listener standing for the attacker's server; counts the connections it accepts.
struct Attacker {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Attacker {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("attacker listener");
        let port = listener.local_addr().expect("listener address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((_stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self {
            port,
            connections,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Asserts that nothing connected, after letting any connection still in flight land.
    async fn assert_untouched(self) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            self.connections.load(Ordering::SeqCst),
            0,
            "the attacker's listener received connections"
        );
        self.task.abort();
    }
}

/// One attack: the remote document (after the data-model selection) and the key paths its
/// refusal must name.
struct Attack {
    name: &'static str,
    remote: String,
    paths: Vec<&'static str>,
}

fn attacks(attacker: &Attacker) -> Vec<Attack> {
    let url = attacker.url();
    vec![
        Attack {
            name: "endpoint-url to another host",
            remote: format!("destination:\n  s3:\n    endpoint-url: {url}\n    allow-http: true\n"),
            paths: vec!["destination.s3.endpoint-url", "destination.s3.allow-http"],
        },
        Attack {
            name: "another bucket",
            remote: "destination:\n  s3:\n    bucket: attacker-bucket\n    region: eu-north-1\n"
                .into(),
            paths: vec!["destination.s3.bucket", "destination.s3.region"],
        },
        Attack {
            name: "static keys of another account",
            remote: format!(
                "destination:\n  s3:\n    endpoint-url: {url}\n    allow-http: true\n    \
                 access-key-id: AKIAATTACKERKEY\n    secret-access-key: attacker-key-0123\n"
            ),
            paths: vec![
                "destination.s3.endpoint-url",
                "destination.s3.allow-http",
                "destination.s3.access-key-id",
                "destination.s3.secret-access-key",
            ],
        },
        Attack {
            name: "secrets in the prefix",
            remote: "destination:\n  s3:\n    prefix: \
                     'x/${COGNITE_CLIENT_SECRET}/${AWS_SECRET_ACCESS_KEY}/${AWS_SESSION_TOKEN}/'\n"
                .into(),
            paths: vec![
                "destination.s3.prefix",
                "destination.s3.prefix",
                "destination.s3.prefix",
            ],
        },
        Attack {
            name: "the client secret as RAW database name",
            remote:
                "extractor:\n  state-store:\n    raw:\n      database: '${COGNITE_CLIENT_SECRET}'\n"
                    .into(),
            paths: vec!["extractor.state-store.raw.database"],
        },
        Attack {
            name: "the CDF connection to another host",
            remote: format!("cognite:\n  host: {url}\n"),
            paths: vec!["cognite.host"],
        },
    ]
}

fn selection() -> String {
    format!(
        "data_modeling:\n  - space: {SCHEMA_SPACE}\n    data_models:\n      - external_id: {MODEL}\n"
    )
}

/// An emulator whose client secret is unique to this test, so a leak is unmistakable.
async fn lab_with_unique_secret() -> (Lab, String) {
    let secret = format!("cs-{:032x}", rand::random::<u128>());
    let config = EmulatorConfig {
        client_id: "remote-client".into(),
        client_secret: secret.clone(),
        ..EmulatorConfig::default()
    };
    (Lab::start_with(config, 3, None).await, secret)
}

fn assert_no_secret(text: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
    }
}

/// Every expected path occurs in the error text, each as often as expected.
fn assert_names_paths(text: &str, paths: &[&str], what: &str) {
    for path in paths {
        let expected = paths.iter().filter(|p| *p == path).count();
        let found = text.matches(&format!("{path}: ")).count();
        assert!(
            found >= expected,
            "{what}: expected {path} named {expected} times:\n{text}"
        );
    }
}

// --- The Lambda handler with the template's bootstrap --------------------------------------

/// The `type: remote` bootstrap the SAM template puts into `CDF_S3_CONFIG` of the sync
/// function when `ConfigYaml` is empty, and the names of its other variables.
pub(crate) fn template_bootstrap() -> (String, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    let template: Yaml = serde_yaml_ng::from_str(&text).expect("template.yaml is YAML");
    let variables =
        &template["Resources"]["SyncFunction"]["Properties"]["Environment"]["Variables"];
    let Yaml::Tagged(config) = &variables[CONFIG_ENV] else {
        panic!("CDF_S3_CONFIG is not an !If: {:?}", variables[CONFIG_ENV]);
    };
    let bootstrap = config.value[2]
        .as_str()
        .expect("the third branch of the !If is the bootstrap text")
        .to_owned();
    let names = variables
        .as_mapping()
        .expect("variables")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    (bootstrap, names)
}

/// The sync function's environment as the template sets it, with the secret's variables
/// and the role's session credentials as Lambda provides them.
fn lambda_env(lab: &Lab, client_secret: &str, config: &str) -> MapEnv {
    MapEnv::new()
        .with(CONFIG_ENV, config)
        .with("COGNITE_BASE_URL", lab.emulator.base_url())
        .with("COGNITE_PROJECT", lab.emulator.project())
        .with("COGNITE_TOKEN_URL", lab.emulator.token_url())
        .with("COGNITE_CLIENT_ID", "remote-client")
        .with("COGNITE_CLIENT_SECRET", client_secret)
        .with(
            "COGNITE_TOKEN_SCOPES",
            format!("{}/.default", lab.emulator.base_url()),
        )
        .with("COGNITE_EXTRACTION_PIPELINE", "replicator")
        .with("AWS_S3_BUCKET", DEPLOYMENT_BUCKET)
        .with("S3_PREFIX", "cdf-data/")
        .with("CDF_S3_STATE_TABLE", "cdf-s3-replicator")
        .with("AWS_REGION", "us-east-1")
        .with("AWS_ACCESS_KEY_ID", "ASIAFAKEROLEKEY")
        .with("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .with("AWS_SESSION_TOKEN", AWS_TOKEN)
}

fn sync_function(env: MapEnv) -> Function {
    let config_source = ConfigSource::from_env(&env);
    Function::new(FunctionSetup {
        kind: FunctionKind::Sync,
        name: "test-remote-config".into(),
        env: Box::new(env),
        config_source,
        secrets: None,
        metrics: Arc::new(MemorySink::default()),
        logs: LogControl::detached(),
    })
}

fn invocation() -> Invocation {
    Invocation {
        request_id: format!("req-{:012x}", rand::random::<u64>() >> 16),
        deadline: SystemTime::now() + Duration::from_secs(300),
    }
}

/// Two stacks of the template never share state rows by default: the bootstrap takes the
/// state table from `CDF_S3_STATE_TABLE`, which the template sets to the stack name (or
/// its `StateTable` parameter). A stored document that names a table itself wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_bootstrap_gives_each_stack_its_own_state_table() {
    let (lab, client_secret) = lab_with_unique_secret().await;
    let (bootstrap, names) = template_bootstrap();
    assert!(
        names.iter().any(|n| n == "CDF_S3_STATE_TABLE"),
        "the template passes CDF_S3_STATE_TABLE: {names:?}"
    );
    let control = lab.emulator.control();
    let state_table = |remote: String, stack: &'static str| {
        let env = lambda_env(&lab, &client_secret, &bootstrap).with("CDF_S3_STATE_TABLE", stack);
        let bootstrap = bootstrap.clone();
        control
            .set_extpipe_config("replicator", &remote)
            .expect("remote config");
        async move {
            let config = ConfigSource::Inline(bootstrap)
                .load(&env, &ClientCache::default())
                .await
                .expect("the template's bootstrap loads");
            format!("{:?}", config.extractor)
        }
    };
    for stack in ["cdf-dev", "cdf-prod"] {
        let extractor = state_table(selection(), stack).await;
        assert!(
            extractor.contains(&format!("table: {stack:?}")),
            "{stack}: {extractor}"
        );
    }
    let named = format!(
        "{}extractor:\n  state-store:\n    raw:\n      table: shared\n",
        selection()
    );
    let extractor = state_table(named, "cdf-dev").await;
    assert!(extractor.contains("table: \"shared\""), "{extractor}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_with_the_template_bootstrap_refuses_every_attack() {
    let (lab, client_secret) = lab_with_unique_secret().await;
    let attacker = Attacker::start().await;
    let (bootstrap, names) = template_bootstrap();
    for name in ["AWS_S3_BUCKET", "S3_PREFIX"] {
        assert!(
            names.iter().any(|n| n == name),
            "the template passes {name}"
        );
    }
    let env = lambda_env(&lab, &client_secret, &bootstrap);
    let secrets = [client_secret.as_str(), AWS_SECRET, AWS_TOKEN];

    // The template's bootstrap with a harmless remote document: the destination is the
    // deployment's bucket and prefix, through AWS S3, whatever the remote document says.
    let control = lab.emulator.control();
    control
        .set_extpipe_config(
            "replicator",
            &format!(
                "{}destination:\n  s3:\n    request-timeout: 40\n",
                selection()
            ),
        )
        .expect("remote config");
    let config = ConfigSource::Inline(bootstrap.clone())
        .load(&env, &ClientCache::default())
        .await
        .expect("the template's bootstrap with a harmless remote document loads");
    let Destination::S3(s3) = &config.destination else {
        panic!("expected S3");
    };
    assert_eq!(
        (s3.bucket.as_str(), s3.prefix.as_str()),
        (DEPLOYMENT_BUCKET, "cdf-data/")
    );
    assert_eq!(s3.endpoint_url, None);
    assert!(s3.credentials.is_none());
    assert_eq!(s3.request_timeout, Duration::from_secs(40));

    let function = sync_function(env);
    for attack in attacks(&attacker) {
        control
            .set_extpipe_config("replicator", &format!("{}{}", selection(), attack.remote))
            .expect("remote config");
        let err = function
            .invoke(json!({}), &invocation())
            .await
            .expect_err(attack.name);
        assert_eq!(
            err.error_type(),
            "Permanent.InvalidConfiguration",
            "{}: {err}",
            attack.name
        );
        let text = format!("{err} {err:?}");
        assert_names_paths(&text, &attack.paths, attack.name);
        assert_no_secret(&text, &secrets, attack.name);
    }
    attacker.assert_untouched().await;
}

/// `ConfigYaml` (a whole configuration in the function environment) is pinned as well: the
/// function writes only to the stack's bucket and prefix, with its role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_destination_is_pinned_to_the_deployment() {
    let (lab, client_secret) = lab_with_unique_secret().await;
    let attacker = Attacker::start().await;
    let yaml = lab
        .config_yaml("", None)
        .replace("client-id: emulator-client", "client-id: remote-client")
        .replace(
            "secret: emulator-secret",
            "secret: ${COGNITE_CLIENT_SECRET}",
        );
    let (head, _) = yaml.split_once("destination:").expect("destination");
    let yaml = format!(
        "{head}destination:\n  s3:\n    bucket: attacker-bucket\n    prefix: loot/\n    \
         endpoint-url: {}\n    allow-http: true\n",
        attacker.url()
    );
    let function = sync_function(lambda_env(&lab, &client_secret, &yaml));
    let err = function
        .invoke(json!({}), &invocation())
        .await
        .expect_err("a destination other than the deployment's");
    assert_eq!(err.error_type(), "Permanent.InvalidConfiguration", "{err}");
    let text = err.to_string();
    assert_names_paths(
        &text,
        &[
            "destination.s3.bucket",
            "destination.s3.prefix",
            "destination.s3.endpoint-url",
        ],
        "pinned destination",
    );
    assert!(text.contains("pinned to the deployment's bucket"), "{text}");
    assert_no_secret(&text, &[&client_secret, AWS_SECRET, AWS_TOKEN], "pin");
    attacker.assert_untouched().await;
}

// --- The CLI ----------------------------------------------------------------------------------

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the CLI with the process credentials of an AWS session in its environment.
async fn cli(args: &[&str], config: &Path, client_secret: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "debug")
        .env("COGNITE_CLIENT_SECRET", client_secret)
        .env("AWS_ACCESS_KEY_ID", "ASIAFAKEROLEKEY")
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_SESSION_TOKEN", AWS_TOKEN)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output().expect("CLI runs"))
        .await
        .expect("CLI task");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The local `type: remote` file of a CLI deployment: the connection, with the secret from
/// the environment, and an S3 destination.
fn cli_bootstrap(lab: &Lab) -> String {
    format!(
        "type: remote\ncognite:\n  host: {}\n  project: {}\n  idp-authentication:\n    \
         token-url: {}\n    client-id: remote-client\n    secret: ${{COGNITE_CLIENT_SECRET}}\n  \
         extraction-pipeline:\n    external-id: replicator\ndestination:\n  s3:\n    bucket: \
         {DEPLOYMENT_BUCKET}\n    prefix: cdf-data/\n    region: us-east-1\n",
        lab.emulator.base_url(),
        lab.emulator.project(),
        lab.emulator.token_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_refuses_every_attack() {
    let (lab, client_secret) = lab_with_unique_secret().await;
    let attacker = Attacker::start().await;
    let config = lab.dir.path().join("remote.yaml");
    std::fs::write(&config, cli_bootstrap(&lab)).expect("config file");
    let secrets = [client_secret.as_str(), AWS_SECRET, AWS_TOKEN];
    let control = lab.emulator.control();
    for attack in attacks(&attacker) {
        control
            .set_extpipe_config("replicator", &format!("{}{}", selection(), attack.remote))
            .expect("remote config");
        for command in ["check-config", "sync"] {
            let out = cli(&[command], &config, &client_secret).await;
            let what = format!("{command} with {}", attack.name);
            assert_eq!(out.code, Some(1), "{what}:\n{}", out.stderr);
            assert_names_paths(&out.stderr, &attack.paths, &what);
            assert_no_secret(&format!("{}{}", out.stdout, out.stderr), &secrets, &what);
        }
    }
    attacker.assert_untouched().await;
}

/// A local file that interpolates a secret into a field that is printed and sent is refused,
/// and `check-config` never prints a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_check_config_never_prints_a_secret() {
    let (lab, client_secret) = lab_with_unique_secret().await;
    let secrets = [client_secret.as_str(), AWS_SECRET, AWS_TOKEN];
    let good = lab
        .config_yaml("", None)
        .replace("client-id: emulator-client", "client-id: remote-client")
        .replace(
            "secret: emulator-secret",
            "secret: ${COGNITE_CLIENT_SECRET}",
        );
    let path = lab.dir.path().join("local.yaml");

    std::fs::write(&path, &good).expect("config file");
    let out = cli(&["check-config"], &path, &client_secret).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // The secret is shown as the reference that supplied it.
    assert!(
        out.stdout.contains("secret: ${COGNITE_CLIENT_SECRET}"),
        "{}",
        out.stdout
    );
    assert_no_secret(
        &format!("{}{}", out.stdout, out.stderr),
        &secrets,
        "check-config",
    );

    for (from, to, path_named) in [
        (
            "      database: state\n",
            "      database: ${COGNITE_CLIENT_SECRET}\n",
            "extractor.state-store.raw.database",
        ),
        (
            "      table: streams\n",
            "      table: t-${AWS_SESSION_TOKEN}\n",
            "extractor.state-store.raw.table",
        ),
    ] {
        std::fs::write(&path, good.replacen(from, to, 1)).expect("config file");
        let out = cli(&["check-config"], &path, &client_secret).await;
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert_names_paths(&out.stderr, &[path_named], "local secret");
        assert!(
            out.stderr.contains("is a secret variable"),
            "{}",
            out.stderr
        );
        assert_no_secret(
            &format!("{}{}", out.stdout, out.stderr),
            &secrets,
            "check-config",
        );
    }

    // A missing file: the path and the cause once each.
    let missing = lab.dir.path().join("missing.yaml");
    let out = cli(&["check-config"], &missing, &client_secret).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let shown = missing.display().to_string();
    assert_eq!(out.stderr.matches(&shown).count(), 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("No such file").count(),
        1,
        "{}",
        out.stderr
    );
}
