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
import sys
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
        assert set(schedules) == {
            "SyncFunctionSchedule", "SnapshotFunctionSchedule", "SnapshotFanOutSchedule"}
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


def test_iam_deletes_only_raw_tables_and_work_files_and_sync_cannot_touch_publish():
    roles = render()["Resources"]
    sync = object_grants(roles["SyncRole"])
    snapshot = object_grants(roles["SnapshotRole"])
    lake = "arn:${AWS::Partition}:s3:::${Bucket}/${Prefix}"
    for action, resource in sync:
        assert resource == lake + "raw/*", (action, resource)
    for action, resource in sync + snapshot:
        if action == "s3:DeleteObject":
            assert resource in (lake + "raw/*", lake + "_work/*"), resource
    assert ("s3:PutObject", lake + "publish/*") in snapshot
    assert ("s3:DeleteObject", lake + "publish/*") not in snapshot
    # A full rebuild that resumes across invocations and the record of verifications live
    # in the snapshot's work area: it reads, writes and removes there.
    for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]:
        assert (action, lake + "_work/*") in snapshot, action
    for role in ["SyncRole", "SnapshotRole"]:
        for statement in statements(roles[role]):
            if statement["Action"] == "s3:ListBucket":
                prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                prefixes = prefixes if isinstance(prefixes, list) else [prefixes]
                subs = [p["Fn::Sub"] for p in prefixes]
                assert all(s in ("${Prefix}raw/*", "${Prefix}publish/*", "${Prefix}_work/*") for s in subs), subs
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
    functions = resources_of_type(render(), "AWS::Lambda::Function")
    assert functions["SyncFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReservesConcurrency", 1, {"Ref": "AWS::NoValue"}]}
    # The units of a fanned-out snapshot run at once, as many as the map runs in parallel.
    assert functions["SnapshotFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "ReservesConcurrency",
            {"Fn::If": ["FansOutSnapshot", {"Ref": "SnapshotFanOutConcurrency"}, 1]},
            {"Ref": "AWS::NoValue"},
        ]}


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


def test_verify_divergences_alarm_holds_between_verifications():
    """Verifications run once per `extractor.verify-interval`: between two of them there is
    no data point, and the alarm must keep its state (a divergence stays reported until a
    later verification finds the file clean)."""
    resources = render()["Resources"]
    alarm = resources["VerifyDivergencesAlarm"]["Properties"]
    errors = resources["SnapshotErrorsAlarm"]["Properties"]
    assert alarm["Namespace"] == "CdfS3Replicator" and alarm["MetricName"] == "VerifyDivergences"
    assert alarm["Dimensions"] == [{"Name": "Function", "Value": {"Ref": "SnapshotFunction"}}]
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "ignore"
    assert alarm["AlarmActions"] == errors["AlarmActions"]


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


# ----------------------------------------------------------------------------- fan-out

FAN_OUT = ["SnapshotStateMachine", "SnapshotStateMachineRole", "SnapshotFanOutSchedule",
           "SnapshotFanOutScheduleRole", "SnapshotFanOutFailedAlarm"]
SNAPSHOT_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:cdf-s3-replicator-snapshot"


def evaluate(condition, conditions, parameters):
    """The value of a condition expression for the given parameter values."""
    if isinstance(condition, dict):
        (name, argument), = condition.items()
        if name == "Condition":
            return evaluate(conditions[argument], conditions, parameters)
        if name == "Fn::Equals":
            left, right = (parameters.get(a["Ref"], a) if isinstance(a, dict) else a for a in argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not evaluate(argument[0], conditions, parameters)
        if name == "Fn::And":
            return all(evaluate(a, conditions, parameters) for a in argument)
        if name == "Fn::Or":
            return any(evaluate(a, conditions, parameters) for a in argument)
    raise AssertionError(f"unexpected condition {condition}")


def deployed(fan_out):
    """The rendered template as CloudFormation creates it for SnapshotFanOut=`fan_out`:
    the resources and outputs whose condition holds, and `Fn::If` on the fan-out resolved."""
    rendered = render()
    parameters = {name: p.get("Default") for name, p in rendered["Parameters"].items()}
    parameters["SnapshotFanOut"] = "true" if fan_out else "false"
    conditions = rendered["Conditions"]
    holds = {name: evaluate(c, conditions, parameters) for name, c in conditions.items()}

    def resolve(value):
        if isinstance(value, dict):
            if set(value) == {"Fn::If"} and value["Fn::If"][0] == "FansOutSnapshot":
                _, on, off = value["Fn::If"]
                return resolve(on if holds["FansOutSnapshot"] else off)
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    for section in ["Resources", "Outputs"]:
        rendered[section] = {
            name: resolve(value) for name, value in rendered[section].items()
            if holds.get(value.get("Condition"), True)}
    return rendered


def test_fan_out_is_off_by_default_and_then_deploys_nothing():
    assert TEMPLATE["Parameters"]["SnapshotFanOut"]["Default"] == "false"
    off = deployed(fan_out=False)
    for name in FAN_OUT:
        assert name not in off["Resources"], name
    assert not resources_of_type(off, "AWS::StepFunctions::StateMachine")
    assert "SnapshotStateMachineArn" not in off["Outputs"]
    schedule = off["Resources"]["SnapshotFunctionSchedule"]["Properties"]
    assert schedule["State"] == {"Ref": "ScheduleState"}
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["SnapshotFunction", "Arn"]}


def test_fan_out_takes_over_the_snapshot_schedule():
    on = deployed(fan_out=True)
    for name in FAN_OUT:
        assert name in on["Resources"], name
    resources = on["Resources"]
    # The function's own schedule stays, disabled; the state machine's runs on the same
    # expression, with the same state and no retries.
    direct = resources["SnapshotFunctionSchedule"]["Properties"]
    assert direct["State"] == "DISABLED"
    fan_out = resources["SnapshotFanOutSchedule"]["Properties"]
    assert fan_out["ScheduleExpression"] == direct["ScheduleExpression"] == {"Ref": "SnapshotSchedule"}
    assert fan_out["State"] == {"Ref": "ScheduleState"}
    assert fan_out["Target"]["Arn"] == {"Ref": "SnapshotStateMachine"}
    assert fan_out["Target"]["RoleArn"] == {"Fn::GetAtt": ["SnapshotFanOutScheduleRole", "Arn"]}
    assert fan_out["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    assert json.loads(fan_out["Target"]["Input"]) == {}
    assert resources["SnapshotFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReservesConcurrency", {"Ref": "SnapshotFanOutConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert on["Outputs"]["SnapshotStateMachineArn"]["Value"] == {"Ref": "SnapshotStateMachine"}


def definition(timeout=611, concurrency=7):
    """The state machine definition as Step Functions receives it, with its `${...}`
    resolved: the snapshot function's ARN, and the timeout and concurrency (not the
    defaults, so a hard-coded number cannot pass for the parameter)."""
    properties = render()["Resources"]["SnapshotStateMachine"]["Properties"]
    text = properties["DefinitionString"]["Fn::Sub"]
    assert isinstance(text, str), "a Fn::Sub of a string: every variable is a name in the template"
    values = {
        "AWS::Partition": "aws",
        "SnapshotFunction.Arn": SNAPSHOT_ARN,
        "SnapshotTimeoutSeconds": str(timeout),
        "SnapshotFanOutConcurrency": str(concurrency),
    }
    variables = set(re.findall(r"\$\{([^}]+)\}", text))
    assert variables <= set(values), variables - set(values)
    return json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text))


def all_states(states):
    """Every state, those of the map's item processor included."""
    for name, state in states.items():
        yield name, state
        if state["Type"] == "Map":
            yield from all_states(state["ItemProcessor"]["States"])


def test_every_task_invokes_only_the_snapshot_function():
    tasks = {n: s for n, s in all_states(definition()["States"]) if s["Type"] == "Task"}
    assert set(tasks) == {"Plan", "RunShard", "RunUnit", "Finalize", "FinalizeAfterFailedUnits"}
    for name, task in tasks.items():
        assert task["Resource"] == "arn:aws:states:::lambda:invoke", name
        assert task["Parameters"]["FunctionName"] == SNAPSHOT_ARN, name
        assert task["TimeoutSeconds"] == 611, f"{name}: the function's timeout"
    payloads = {name: task["Parameters"]["Payload"] for name, task in tasks.items()}
    assert payloads["Plan"] == {"plan": True}
    assert payloads["RunUnit"] == {"unit.$": "$.unit"}
    assert payloads["RunShard"] == {"unit.$": "$.unit"}
    assert payloads["Finalize"] == {"finalize": True, "outcomes.$": "$.outcomes"}
    assert payloads["FinalizeAfterFailedUnits"] == {"finalize": True}
    for name, payload in payloads.items():
        # What the function accepts (src/lambda/event.rs; events/snapshot-*.json).
        assert set(k.removesuffix(".$") for k in payload) <= {"plan", "unit", "finalize", "outcomes"}, name


def test_units_run_in_a_distributed_map_with_retries_and_a_recorded_failure():
    states = definition()["States"]
    units = states["Units"]
    assert units["Type"] == "Map"
    assert units["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert units["ItemsPath"] == "$.plan.units"
    assert units["ItemSelector"] == {"unit.$": "$$.Map.Item.Value.id"}
    assert units["MaxConcurrency"] == 7, "SnapshotFanOutConcurrency"
    assert 0 < units["ToleratedFailurePercentage"] < 100
    assert units["Catch"][0]["Next"] == "FinalizeAfterFailedUnits"
    assert states["FinalizeAfterFailedUnits"]["Next"] == "UnitsFailed"
    assert states["UnitsFailed"]["Type"] == "Fail"
    run = units["ItemProcessor"]["States"]["RunUnit"]
    retried = {e for r in run["Retry"] for e in r["ErrorEquals"]}
    caught = {e for c in run["Catch"] for e in c["ErrorEquals"]}
    assert "Retryable.RunIncomplete" in retried and "Lambda.TooManyRequestsException" in retried
    assert not any(e.startswith("Permanent.") for e in retried), retried
    assert all(e.startswith("Permanent.") for e in caught), caught
    for retry in run["Retry"]:
        assert retry["MaxAttempts"] <= 2 and retry["IntervalSeconds"] >= 1, retry
    record = units["ItemProcessor"]["States"][run["Catch"][0]["Next"]]
    assert record["Type"] == "Pass"
    assert record["Parameters"]["success"] is False
    assert run["OutputPath"] == "$.Payload.outcome"


def test_shards_run_before_the_units_and_never_stop_the_run():
    states = definition()["States"]
    assert states["Plan"]["Next"] == "Shards"
    assert states["Plan"]["ResultSelector"] == {"units.$": "$.Payload.units", "shards.$": "$.Payload.shards"}
    shards = states["Shards"]
    assert shards["Type"] == "Map" and shards["ItemsPath"] == "$.plan.shards"
    assert shards["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert shards["ItemSelector"] == {"unit.$": "$$.Map.Item.Value.id"}
    assert shards["MaxConcurrency"] == 7, "SnapshotFanOutConcurrency"
    # A failed shard only slows its parts down (they read the raw table): the units run.
    assert shards["ToleratedFailurePercentage"] == 100
    assert shards["Next"] == "Units" and shards["Catch"][0]["Next"] == "Units"
    assert shards["ResultPath"] is None, "the units' input is the plan, unchanged"
    run = shards["ItemProcessor"]["States"]["RunShard"]
    assert not any(e.startswith("Permanent.") for r in run["Retry"] for e in r["ErrorEquals"])


def test_state_machine_definition_passes_cfn_lint(tmp_path):
    """cfn-lint validates a definition against the States Language schema only when it is
    a plain string; the template's is a Fn::Sub, so it is linted resolved, on its own."""
    cfn_lint = Path(sys.executable).parent / "cfn-lint"

    def lint(text):
        template = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
                    "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                            "Principal": {"Service": "states.amazonaws.com"}}]}}},
                "StateMachine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]}, "DefinitionString": text}},
            },
        }
        path = tmp_path / "state-machine.json"
        path.write_text(json.dumps(template))
        return subprocess.run([str(cfn_lint), str(path)], capture_output=True, text=True)

    valid = lint(json.dumps(definition()))
    assert valid.returncode == 0, valid.stdout + valid.stderr
    broken = definition()
    broken["States"]["Units"]["ItemProcessor"]["States"]["RecordFailure"]["Type"] = "Passs"
    refused = lint(json.dumps(broken))
    assert refused.returncode != 0 and "E3601" in refused.stdout, "cfn-lint checks the definition"


def test_fan_out_roles_are_scoped_to_the_snapshot_function_and_this_state_machine():
    resources = render("cdf-prod")["Resources"]
    machine = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-snapshot"
    executions = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-snapshot/*"
    assert substitute(resources["SnapshotStateMachine"]["Properties"]["StateMachineName"],
                      "cdf-prod") == "cdf-prod-snapshot"
    role = resources["SnapshotStateMachineRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}
    grants = []
    for statement in statements(resources["SnapshotStateMachineRole"]):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        grants.append((sorted(actions), statement["Resource"]))
    assert grants == [
        (["lambda:InvokeFunction"], {"Fn::GetAtt": ["SnapshotFunction", "Arn"]}),
        (["states:StartExecution"], {"Fn::Sub": machine}),
        (["states:DescribeExecution", "states:StopExecution"], {"Fn::Sub": executions}),
    ]
    assert resources["SnapshotStateMachine"]["Properties"]["RoleArn"] == {
        "Fn::GetAtt": ["SnapshotStateMachineRole", "Arn"]}
    schedule_role = resources["SnapshotFanOutScheduleRole"]["Properties"]
    assert schedule_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "scheduler.amazonaws.com"}
    assert [(s["Action"], s["Resource"]) for s in statements(resources["SnapshotFanOutScheduleRole"])] == [
        ("states:StartExecution", {"Ref": "SnapshotStateMachine"})]


def test_fan_out_failures_alarm_on_the_state_machine():
    alarm = deployed(fan_out=True)["Resources"]["SnapshotFanOutFailedAlarm"]["Properties"]
    watched = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
    assert {m["MetricName"] for m in watched} == {"ExecutionsFailed", "ExecutionsTimedOut"}
    for metric in watched:
        assert metric["Namespace"] == "AWS/States"
        assert metric["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "SnapshotStateMachine"}}]
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def _dashboard_renderer():
    sys.path.insert(0, str(REPO / "tests" / "tools"))
    import render_dashboard  # noqa: PLC0415  (a script beside this file, not a package)

    return render_dashboard


def test_dashboard_picture_in_the_docs_is_the_templates_dashboard():
    """docs/images/dashboard.svg is drawn from the template: a dashboard change needs a new one."""
    renderer = _dashboard_renderer()
    committed = (REPO / "docs" / "images" / "dashboard.svg").read_text(encoding="utf-8")
    assert committed == renderer.render(), (
        "docs/images/dashboard.svg differs from the template's dashboard: "
        "run tests/tools/render_dashboard.py and commit the picture")
    assert "images/dashboard.svg" in (REPO / "docs" / "operations.md").read_text(encoding="utf-8")


def test_dashboard_picture_draws_every_widget_title_line_and_timeout_of_the_template():
    renderer = _dashboard_renderer()
    template = renderer.load_template()
    body = renderer.dashboard(template)
    svg = renderer.render(template)
    for widget in body["widgets"]:
        props = widget["properties"]
        if widget["type"] == "metric":
            assert renderer.escape(renderer._fit(props["title"], widget["width"] * renderer.COLUMN
                                                 - renderer.GAP - 20, 12)) in svg, props["title"]
            for entry in props["metrics"]:
                options = entry[-1]
                if options.get("visible", True):
                    label = options["label"]
                    assert renderer.escape(label[:20]) in svg, label
        if widget["type"] == "alarm":
            for alarm in props["alarms"]:
                assert alarm in svg, alarm
    assert svg.count(">Timeout</text>") == 2
    # The picture follows the template: a retitled widget is drawn with its new title.
    changed = copy.deepcopy(template)
    dashboard_body = changed["Resources"]["ReplicationDashboard"]["Properties"]["DashboardBody"]
    dashboard_body["Fn::Sub"] = dashboard_body["Fn::Sub"].replace(
        '"title": "Alarms"', '"title": "Alarm states"')
    assert ">Alarm states</text>" in renderer.render(changed)
    assert ">Alarm states</text>" not in svg


def _pins(path):
    pins = {}
    for line in (REPO / path).read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)", line.strip())
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def test_deploy_prerequisites_name_the_versions_the_project_builds_with():
    """The prerequisites of README and deploy.md are the tools `sam build` needs, at the
    versions the project pins; a bumped pin must bump both lists."""
    build = _pins("tests/tools/requirements.txt")
    sam = _pins("tests/tools/requirements-sam.txt")
    rust = re.search(r'^rust-version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)
    assert rust, "Cargo.toml has a workspace rust-version"
    deploy = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    prerequisites = deploy.split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    deploy_section = readme.split("## Deploying to AWS Lambda", 1)[1].split("\n## ", 1)[0]
    for text in (prerequisites, deploy_section):
        assert f'"cargo-lambda=={build["cargo-lambda"]}"' in text
        assert f'"ziglang=={build["ziglang"]}"' in text
        assert f"SAM CLI {sam['aws-sam-cli']}" in text or f"| {sam['aws-sam-cli']} (" in text
        assert f"Rust {rust.group(1)}" in text or f"| {rust.group(1)} (" in text
        assert "rustup target add aarch64-unknown-linux-gnu" in text
        assert "x86_64-unknown-linux-gnu" in text
        assert "AWS CLI" in text
    assert "docs/deploy.md#prerequisites" in deploy_section
