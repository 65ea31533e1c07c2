"""Checks of template.yaml as CloudFormation receives it: rendered offline by the SAM translator
(the same transform `sam deploy` asks CloudFormation to run), plus the parameter patterns, the
IAM policies, samconfig.toml and the crates the SAM build path links into the functions.

Run by tests/run-all.sh with tests/.venv-sam (aws-sam-cli, which brings aws-sam-translator and
cfn-lint): tests/.venv-sam/bin/python -m pytest tests/tools/test_template.py
"""

import copy
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = yaml_parse((REPO / "template.yaml").read_text())
FUNCTIONS = {"SyncFunction": "cdf-s3-sync", "SnapshotFunction": "cdf-s3-snapshot"}


class NoManagedPolicies:
    """The template names no managed policies, so the translator never needs IAM's list."""

    def load(self):
        return {}


def render(stack_name="cdf-s3-replicator"):
    """The CloudFormation template the SAM transform produces for this stack."""
    template = copy.deepcopy(TEMPLATE)
    for name in FUNCTIONS:
        # What `sam package` puts there after uploading the built zip.
        template["Resources"][name]["Properties"]["CodeUri"] = "s3://artifacts/code.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    pseudo = {
        "AWS::Region": "eu-west-1",
        "AWS::Partition": "aws",
        "AWS::AccountId": "123456789012",
        "AWS::StackName": stack_name,
    }
    return transform(template, pseudo, NoManagedPolicies())


def substitute(value, stack_name):
    """Resolves `Fn::Sub` over `AWS::StackName`, the only variable the names use."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        return value["Fn::Sub"].replace("${AWS::StackName}", stack_name)
    return value


def resources_of_type(rendered, kind):
    return {k: v for k, v in rendered["Resources"].items() if v["Type"] == kind}


def test_schedule_names_are_unique_per_stack():
    names = {}
    for stack in ["cdf-dev", "cdf-prod"]:
        schedules = resources_of_type(render(stack), "AWS::Scheduler::Schedule")
        assert set(schedules) == {"SyncFunctionSchedule", "SnapshotFunctionSchedule"}
        for logical, schedule in schedules.items():
            name = substitute(schedule["Properties"].get("Name"), stack)
            assert isinstance(name, str) and stack in name, (logical, name)
            # EventBridge Scheduler: 1-64 characters of [0-9a-zA-Z-_.].
            assert re.fullmatch(r"[0-9a-zA-Z\-_.]{1,64}", name), name
            names[(stack, logical)] = name
    assert len(set(names.values())) == len(names), names
    print("rendered schedule names:", names)


@pytest.mark.parametrize("level", TEMPLATE["Parameters"]["LogLevel"]["AllowedValues"])
def test_metrics_lines_pass_lambdas_log_filter_at_every_log_level(level):
    """EMF lines carry no level: Lambda treats them as INFO, so its filter must keep INFO."""
    order = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
    for name, function in resources_of_type(render(), "AWS::Lambda::Function").items():
        logging = function["Properties"]["LoggingConfig"]
        lambda_level = logging.get("ApplicationLogLevel", "INFO")
        assert lambda_level in order, (name, lambda_level)
        assert order.index(lambda_level) <= order.index("INFO"), (name, level, lambda_level)
        env = function["Properties"]["Environment"]["Variables"]
        assert env["CDF_S3_LOG_LEVEL"] == {"Ref": "LogLevel"}, name


def test_the_snapshot_function_caps_malloc_arenas():
    """The snapshot's worker threads would otherwise each keep an arena of freed buffers."""
    variables = render()["Resources"]["SnapshotFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MALLOC_ARENA_MAX"] == "2"


def test_samconfig_builds_and_deploys_the_same_architecture():
    config = tomllib.loads((REPO / "samconfig.toml").read_text())["default"]
    overrides = config["global"]["parameters"]["parameter_overrides"]
    assert any(o.startswith("Architecture=") for o in overrides), overrides
    for command in ["build", "deploy"]:
        assert "parameter_overrides" not in config.get(command, {}).get("parameters", {}), command
    for name in FUNCTIONS:
        assert TEMPLATE["Resources"][name]["Properties"]["Architectures"] == [{"Ref": "Architecture"}]


def statements(role):
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if isinstance(statement, dict) and "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            yield statement


def object_grants(role):
    """(action, resource ARN pattern) for every S3 object action of the role."""
    grants = []
    for statement in statements(role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resource = statement["Resource"]
        if isinstance(resource, dict) and "Fn::Sub" in resource:
            resource = resource["Fn::Sub"]
        for action in actions:
            if action.startswith("s3:") and action != "s3:ListBucket":
                grants.append((action, resource))
    return grants


def test_iam_deletes_only_raw_tables_and_sync_cannot_touch_publish():
    roles = render()["Resources"]
    sync = object_grants(roles["SyncRole"])
    snapshot = object_grants(roles["SnapshotRole"])
    lake = "arn:${AWS::Partition}:s3:::${Bucket}/${Prefix}"
    for action, resource in sync:
        assert resource == lake + "raw/*", (action, resource)
    for action, resource in sync + snapshot:
        if action == "s3:DeleteObject":
            assert resource == lake + "raw/*", resource
    assert ("s3:PutObject", lake + "publish/*") in snapshot
    assert ("s3:DeleteObject", lake + "publish/*") not in snapshot
    for role in ["SyncRole", "SnapshotRole"]:
        for statement in statements(roles[role]):
            if statement["Action"] == "s3:ListBucket":
                prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                prefixes = prefixes if isinstance(prefixes, list) else [prefixes]
                subs = [p["Fn::Sub"] for p in prefixes]
                assert all(s in ("${Prefix}raw/*", "${Prefix}publish/*") for s in subs), subs
                if role == "SyncRole":
                    assert subs == ["${Prefix}raw/*"]


def test_lake_kms_key_is_optional_and_scoped_to_s3():
    parameter = TEMPLATE["Parameters"]["LakeKmsKeyArn"]
    assert parameter["Default"] == ""
    for role in ["SyncRole", "SnapshotRole"]:
        found = [
            s for s in statements(render()["Resources"][role])
            if s.get("Resource") == {"Ref": "LakeKmsKeyArn"}
        ]
        assert len(found) == 1, role
        assert set(found[0]["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
        via = found[0]["Condition"]["StringEquals"]["kms:ViaService"]
        assert via == {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}


def pattern(name):
    return re.compile(TEMPLATE["Parameters"][name]["AllowedPattern"])


# The functions' own rules (src/config/identifiers.rs check_bucket, with the AWS rules).
@pytest.mark.parametrize(
    "bucket, valid",
    [
        ("my-lake-bucket", True),
        ("a.b.c", True),
        ("abc", True),
        ("a" * 63, True),
        ("ab", False),
        ("a" * 64, False),
        ("My-Bucket", False),
        ("-bucket", False),
        ("bucket-", False),
        ("my..bucket", False),
        ("192.168.1.1", False),
        ("xn--bucket", False),
        ("sthree-bucket", False),
        ("amzn-s3-demo-bucket", False),
        ("bucket-s3alias", False),
        ("bucket--ol-s3", False),
        ("bucket.mrap", False),
        ("bucket--x-s3", False),
        ("bucket--table-s3", False),
        ("s3://bucket", False),
        ("bucket_name", False),
    ],
)
def test_bucket_pattern_matches_the_code(bucket, valid):
    assert bool(pattern("Bucket").fullmatch(bucket)) == valid


@pytest.mark.parametrize(
    "prefix, valid",
    [
        ("", True),
        ("cdf-data/", True),
        ("team/cdf/", True),
        ("cdf-data", False),
        ("/cdf-data/", False),
        ("a//b/", False),
        ("./", False),
        ("../x/", False),
        ("a/../b/", False),
        ("a/./", False),
        ("s3://bucket/x/", False),
        ("a*/", False),
        ("a?/", False),
        ("${aws:username}/", False),
    ],
)
def test_prefix_pattern_matches_the_code(prefix, valid):
    assert bool(pattern("Prefix").fullmatch(prefix)) == valid


@pytest.mark.parametrize(
    "arn, valid",
    [
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:cdf-s3-replicator/runtime-AbCdEf", True),
        ("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:cdf-AbC123", True),
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:cdf-s3-replicator/runtime", False),
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:runtime-AbC", False),
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:*", False),
        ("cdf-s3-replicator/runtime", False),
    ],
)
def test_secret_arn_pattern_requires_the_full_arn(arn, valid):
    assert bool(pattern("SecretArn").fullmatch(arn)) == valid


def test_samconfig_placeholders_satisfy_the_patterns():
    config = tomllib.loads((REPO / "samconfig.toml").read_text())["default"]
    for override in config["global"]["parameters"]["parameter_overrides"]:
        name, value = override.split("=", 1)
        allowed = TEMPLATE["Parameters"][name].get("AllowedPattern")
        if allowed:
            assert re.fullmatch(allowed, value), override


def test_reserved_concurrency_is_optional():
    assert TEMPLATE["Parameters"]["ReservedConcurrency"]["Default"] == "true"
    for name, function in resources_of_type(render(), "AWS::Lambda::Function").items():
        reserved = function["Properties"]["ReservedConcurrentExecutions"]
        assert reserved == {"Fn::If": ["ReservesConcurrency", 1, {"Ref": "AWS::NoValue"}]}, name


def test_rows_quarantined_alarm_watches_the_sync_metric():
    resources = render()["Resources"]
    alarm = resources["SyncRowsQuarantinedAlarm"]["Properties"]
    behind = resources["SyncStreamsBehindAlarm"]["Properties"]
    assert alarm["MetricName"] == "RowsQuarantined"
    assert alarm["Namespace"] == behind["Namespace"] == "CdfS3Replicator"
    assert alarm["Dimensions"] == behind["Dimensions"]
    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["EvaluationPeriods"] == 1


@pytest.mark.parametrize("function, binary", FUNCTIONS.items())
def test_sam_build_path_links_no_emulator(function, binary):
    """`sam build` runs `cargo lambda build --release --bin BINARY` in CodeUri: cargo then
    resolves the features of the packages it selects there (the workspace's default members).
    `cargo tree` over the same selection, normal edges only, must not reach the emulator."""
    metadata = TEMPLATE["Resources"][function]["Metadata"]
    assert metadata["BuildMethod"] == "rust-cargolambda"
    assert metadata["BuildProperties"]["Binary"] == binary
    code_dir = REPO / TEMPLATE["Resources"][function]["Properties"]["CodeUri"]
    tree = subprocess.run(
        ["cargo", "tree", "--locked", "--edges", "normal,build", "--prefix", "none",
         "--target", "x86_64-unknown-linux-gnu", "--invert", "cdf-emulator"],
        cwd=code_dir, capture_output=True, text=True, check=True,
    ).stdout
    dependents = [line for line in tree.splitlines() if line and not line.startswith("cdf-emulator ")]
    assert not any(line.startswith(binary + " ") for line in dependents), tree
    assert not any(line.startswith("cdf-s3-replicator ") for line in dependents), tree


def test_dashboard_is_optional_per_stack_and_its_body_resolves_to_json():
    """The metric names and the layout are checked against the code in
    src/lambda/metrics/template_check.rs; here: what CloudFormation gets after the transform."""
    assert TEMPLATE["Parameters"]["CreateDashboard"]["Default"] == "true"
    rendered = render("cdf-prod")
    dashboard = rendered["Resources"]["ReplicationDashboard"]
    assert dashboard["Type"] == "AWS::CloudWatch::Dashboard"
    assert dashboard["Condition"] == "CreatesDashboard"
    assert rendered["Outputs"]["DashboardUrl"]["Condition"] == "CreatesDashboard"
    assert rendered["Conditions"]["CreatesDashboard"] == {
        "Fn::Equals": [{"Ref": "CreateDashboard"}, "true"]
    }
    assert substitute(dashboard["Properties"]["DashboardName"], "cdf-prod") == "cdf-prod-replication"

    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str), "a Fn::Sub of a string: every variable is a name in the template"
    known = set(rendered["Parameters"]) | set(rendered["Resources"])
    values = {"SyncTimeoutSeconds": "300", "SnapshotTimeoutSeconds": "600"}
    for variable in set(re.findall(r"\$\{([^}]+)\}", body)):
        base = variable.split(".")[0]
        assert variable.startswith("AWS::") or base in known, variable
        values.setdefault(variable, "x")
    resolved = re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], body)
    widgets = json.loads(resolved)["widgets"]
    timeouts = [
        line["value"]
        for widget in widgets
        for line in widget["properties"].get("annotations", {}).get("horizontal", [])
    ]
    assert sorted(timeouts) == [300_000, 600_000]
    # The grid is 24 columns wide; widgets must not overlap.
    cells = set()
    for widget in widgets:
        assert widget["x"] + widget["width"] <= 24, widget
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in cells, widget
                cells.add((x, y))


def test_glue_catalog_is_opt_in_and_scoped_to_its_database():
    assert TEMPLATE["Parameters"]["GlueDatabase"]["Default"] == ""
    resources = render()["Resources"]
    assert resources["GlueCatalogDatabase"]["Condition"] == "CreatesGlueDatabase"
    for name in FUNCTIONS:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables["GLUE_DATABASE"] == {"Ref": "GlueDatabase"}, name
    for statement in statements(resources["SyncRole"]):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a.startswith("glue:") for a in actions), statement
    glue = []
    for policy in resources["SnapshotRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if isinstance(statement, dict) and "Fn::If" in statement:
                condition, statement_if_on, off = statement["Fn::If"]
                if statement_if_on.get("Sid") in ("GlueCatalogTables", "CatalogManifests"):
                    assert condition == "HasGlueCatalog"
                    assert off == {"Ref": "AWS::NoValue"}
                    glue.append(statement_if_on)
    by_sid = {s["Sid"]: s for s in glue}
    tables = by_sid["GlueCatalogTables"]
    assert sorted(tables["Action"]) == sorted(
        ["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"])
    arn = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:"
    assert [r["Fn::Sub"] for r in tables["Resource"]] == [
        arn + "catalog", arn + "database/${GlueDatabase}", arn + "table/${GlueDatabase}/*"]
    manifests = by_sid["CatalogManifests"]
    assert sorted(manifests["Action"]) == ["s3:GetObject", "s3:PutObject"]
    assert manifests["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/${Prefix}catalog/*"}


def test_glue_database_pattern_matches_the_code():
    valid = pattern("GlueDatabase")
    for name in ["", "cdf_lake", "a1"]:
        assert valid.match(name), name
    for name in ["Cdf", "cdf-lake", "a.b", "x" * 256]:
        assert not valid.match(name), name


def resolve_state_table(value, stack_name, state_table=""):
    """The value of CDF_S3_STATE_TABLE for a stack: `Fn::If [HasStateTable, StateTable, stack]`."""
    condition, on, off = value["Fn::If"]
    assert condition == "HasStateTable"
    chosen = on if state_table else off
    if chosen == {"Ref": "StateTable"}:
        return state_table
    assert chosen == {"Ref": "AWS::StackName"}, chosen
    return stack_name


def test_each_stack_keeps_its_state_rows_in_its_own_table():
    """Two stacks that share a state table would take each other's rows: the bootstrap reads
    the table from CDF_S3_STATE_TABLE, which defaults to the stack name."""
    parameter = TEMPLATE["Parameters"]["StateTable"]
    assert parameter["Default"] == ""
    valid = pattern("StateTable")
    assert valid.match("") and valid.match("x" * 64) and not valid.match("x" * 65)
    tables = {}
    for stack in ["cdf-dev", "cdf-prod"]:
        resources = render(stack)["Resources"]
        for name in FUNCTIONS:
            variables = resources[name]["Properties"]["Environment"]["Variables"]
            table = resolve_state_table(variables["CDF_S3_STATE_TABLE"], stack)
            assert resolve_state_table(variables["CDF_S3_STATE_TABLE"], stack, "mine") == "mine"
            tables[(stack, name)] = table
            condition, _, bootstrap = variables["CDF_S3_CONFIG"]["Fn::If"]
            assert condition == "HasConfigYaml"
            document = yaml_parse(bootstrap)
            assert document["extractor"]["state-store"]["raw"]["table"] == "${CDF_S3_STATE_TABLE}"
        assert tables[(stack, "SyncFunction")] == tables[(stack, "SnapshotFunction")] == stack
    assert tables[("cdf-dev", "SyncFunction")] != tables[("cdf-prod", "SyncFunction")]
    output = TEMPLATE["Outputs"]["StateTable"]["Value"]
    assert output == {"Fn::If": ["HasStateTable", {"Ref": "StateTable"}, {"Ref": "AWS::StackName"}]}
