"""What the templates promise: encryption, no public access, DLQ wiring, least privilege."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from infra_helpers import load_templates

Template = dict[str, Any]


@pytest.fixture(scope="module")
def templates() -> dict[str, Template]:
    return load_templates()


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: body
        for name, body in template["Resources"].items()
        if isinstance(body, dict) and body.get("Type") == kind
    }


def one(template: Template, kind: str) -> dict[str, Any]:
    (body,) = resources(template, kind).values()
    return dict(body["Properties"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, role in resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield name, statement


def all_statements(templates: dict[str, Template]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{stem}.{role}", statement)
        for stem, template in templates.items()
        for role, statement in role_statements(template)
    ]


# ---- landing bucket ---------------------------------------------------------------------


@pytest.fixture
def pipeline(templates: dict[str, Template]) -> Template:
    return templates["pipeline"]


def test_every_bucket_is_encrypted_private_versioned_and_tls_only(
    templates: dict[str, Template],
) -> None:
    buckets = [
        (template, name, body)
        for template in templates.values()
        for name, body in resources(template, "AWS::S3::Bucket").items()
    ]
    assert len(buckets) == 2  # landing and deployment
    for template, name, body in buckets:
        properties = body["Properties"]
        rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("aws:kms", "AES256")
        block = properties["PublicAccessBlockConfiguration"]
        assert all(
            block[key] is True
            for key in (
                "BlockPublicAcls",
                "BlockPublicPolicy",
                "IgnorePublicAcls",
                "RestrictPublicBuckets",
            )
        ), name
        assert properties["VersioningConfiguration"]["Status"] == "Enabled"
        policies = [
            p["Properties"]
            for p in resources(template, "AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": name}
        ]
        (policy,) = policies
        denials = [
            s
            for s in policy["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denials and denials[0]["Principal"] == "*", name
        assert len(as_list(denials[0]["Resource"])) == 2  # the bucket and its objects


def test_staged_parquet_expires(pipeline: Template) -> None:
    rules = one(pipeline, "AWS::S3::Bucket")["LifecycleConfiguration"]["Rules"]
    staged = [r for r in rules if r.get("Prefix") == "staged/" and r["Status"] == "Enabled"]
    assert staged and staged[0]["ExpirationInDays"] <= 7


def test_csv_under_landing_notifies_the_queue(pipeline: Template) -> None:
    (notification,) = one(pipeline, "AWS::S3::Bucket")["NotificationConfiguration"][
        "QueueConfigurations"
    ]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["LandingQueue", "Arn"]}
    rules = {r["Name"]: r["Value"] for r in notification["Filter"]["S3Key"]["Rules"]}
    assert rules == {"prefix": "landing/", "suffix": ".csv"}


# ---- queues -------------------------------------------------------------------------------


def test_queue_redrives_to_an_encrypted_dlq_after_three_receives(pipeline: Template) -> None:
    queues = resources(pipeline, "AWS::SQS::Queue")
    redrive = queues["LandingQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 3
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    for queue in queues.values():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties


def test_visibility_timeout_is_six_lambda_timeouts_for_every_allowed_timeout(
    pipeline: Template,
) -> None:
    timeout = pipeline["Parameters"]["LoaderTimeoutSeconds"]
    visibility = pipeline["Resources"]["LandingQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility == {
        "Fn::FindInMap": ["QueueVisibility", {"Ref": "LoaderTimeoutSeconds"}, "Seconds"]
    }
    mapping = pipeline["Mappings"]["QueueVisibility"]
    assert str(timeout["Default"]) in mapping
    for allowed in timeout["AllowedValues"]:
        assert mapping[str(allowed)]["Seconds"] >= 6 * int(allowed)
    function = one(pipeline, "AWS::Lambda::Function")
    assert function["Timeout"] == {"Ref": "LoaderTimeoutSeconds"}


def test_only_the_landing_bucket_may_send_to_the_queue(pipeline: Template) -> None:
    policy = one(pipeline, "AWS::SQS::QueuePolicy")["PolicyDocument"]
    (allow,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    source = allow["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    bucket_name = one(pipeline, "AWS::S3::Bucket")["BucketName"]["Fn::Sub"]
    assert source.endswith(":::" + bucket_name)
    assert "aws:SourceAccount" in allow["Condition"]["StringEquals"]


# ---- loader ------------------------------------------------------------------------------


def test_loader_function_configuration(pipeline: Template) -> None:
    function = one(pipeline, "AWS::Lambda::Function")
    assert function["Runtime"] == "python3.11"
    assert function["Handler"] == "loader.handler.lambda_handler"
    parameters = pipeline["Parameters"]
    assert parameters["LoaderMemoryMb"]["Default"] >= 1024
    assert parameters["LoaderTimeoutSeconds"]["Default"] >= 300
    assert function["ReservedConcurrentExecutions"] == {"Ref": "LoaderReservedConcurrency"}
    assert 1 < parameters["LoaderReservedConcurrency"]["Default"] <= 10
    environment = function["Environment"]["Variables"]
    assert environment["CAFE_WAREHOUSE"] == "redshift"
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "CafeElt"
    for name in (
        "CAFE_LANDING_BUCKET",
        "CAFE_CARD_KEY_SECRET_ARN",
        "CAFE_CARD_KEY_VERSION",
        "CAFE_REDSHIFT_WORKGROUP",
        "CAFE_REDSHIFT_DATABASE",
        "CAFE_REDSHIFT_COPY_ROLE_ARN",
        "POWERTOOLS_SERVICE_NAME",
    ):
        assert environment[name], name


def test_event_source_reports_partial_batch_failures(pipeline: Template) -> None:
    mapping = one(pipeline, "AWS::Lambda::EventSourceMapping")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["LandingQueue", "Arn"]}
    batch = pipeline["Parameters"]["BatchSize"]
    assert batch["MaxValue"] <= 10 and batch["Default"] <= 10


def test_card_key_is_generated_as_64_hex_digits(pipeline: Template) -> None:
    secret = pipeline["Resources"]["CardKeySecret"]["Properties"]
    generated = secret["GenerateSecretString"]
    assert generated["PasswordLength"] == 64
    assert generated["ExcludeUppercase"] and generated["ExcludePunctuation"]
    alphabet = set("abcdefghijklmnopqrstuvwxyz") - set(generated["ExcludeCharacters"])
    assert alphabet == set("abcdef")
    assert generated["GenerateStringKey"] == "key"
    assert "SecretString" not in secret
    # Only the key's version label comes in as a parameter, never the key.
    assert [name for name in pipeline["Parameters"] if "Card" in name] == ["CardKeyVersion"]


def test_alarms_go_to_an_encrypted_topic(pipeline: Template) -> None:
    topic = one(pipeline, "AWS::SNS::Topic")
    assert topic["KmsMasterKeyId"] == {"Ref": "DataKeyArn"}
    alarms = resources(pipeline, "AWS::CloudWatch::Alarm")
    metrics = {
        (a["Properties"]["Namespace"], a["Properties"]["MetricName"]) for a in alarms.values()
    }
    assert ("AWS/Lambda", "Errors") in metrics
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in metrics
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_one_silence_alarm_per_branch_treats_missing_data_as_breaching(
    pipeline: Template,
) -> None:
    loop = pipeline["Resources"]["Fn::ForEach::BranchSilence"]
    assert loop[1] == {"Ref": "Branches"}
    (alarm,) = loop[2].values()
    properties = alarm["Properties"]
    assert properties["TreatMissingData"] == "breaching"
    assert properties["Period"] * properties["EvaluationPeriods"] == 26 * 3600
    assert properties["DatapointsToAlarm"] == properties["EvaluationPeriods"]
    dimensions = {d["Name"]: d["Value"] for d in properties["Dimensions"]}
    assert dimensions["branch"] == {"Ref": "Branch"}
    assert properties["ComparisonOperator"] == "LessThanThreshold"


# ---- least privilege --------------------------------------------------------------------

# Actions that support no resource type, each with why it is granted on "*".
UNSCOPABLE = {
    # Statement ids are not resources; the statements carry the owner condition.
    "redshift-data:DescribeStatement",
    "redshift-data:GetStatementResult",
    "redshift-data:CancelStatement",
    # CodeBuild in a VPC describes the network it attaches to.
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    # Grafana's CloudWatch datasource.
    "cloudwatch:GetMetricData",
    "cloudwatch:ListMetrics",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:DescribeAlarmsForMetric",
    "cloudwatch:DescribeAlarmHistory",
}
DATA_SERVICES = ("s3:", "sqs:", "secretsmanager:", "redshift-data:", "redshift-serverless:", "kms:")


def test_no_wildcard_actions_or_broad_managed_policies(templates: dict[str, Template]) -> None:
    statements = all_statements(templates)
    assert len(statements) > 20
    for where, statement in statements:
        for action in as_list(statement["Action"]):
            assert not action.endswith("*"), (where, action)
    for template in templates.values():
        for role in resources(template, "AWS::IAM::Role").values():
            for arn in role["Properties"].get("ManagedPolicyArns", []):
                text = str(arn)
                assert "FullAccess" not in text and "AdministratorAccess" not in text


def test_star_resources_only_for_actions_without_resource_types(
    templates: dict[str, Template],
) -> None:
    starred = [
        (where, statement)
        for where, statement in all_statements(templates)
        if "*" in as_list(statement["Resource"])
    ]
    assert starred
    for where, statement in starred:
        actions = set(as_list(statement["Action"]))
        assert actions <= UNSCOPABLE, (where, actions - UNSCOPABLE)
        if any(a.startswith("redshift-data:") for a in actions):
            condition = statement["Condition"]["StringEquals"]
            assert condition["redshift-data:statement-owner-iam-userid"] == "${aws:userid}"


def test_loader_role_grants_exactly_what_a_load_does(pipeline: Template) -> None:
    granted: dict[str, list[Any]] = {}
    for role, statement in role_statements(pipeline):
        assert role == "LoaderRole"
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(as_list(statement["Resource"]))
    subs = {
        a: [r.get("Fn::Sub", r) if isinstance(r, dict) else r for r in v]
        for a, v in granted.items()
    }
    assert subs["s3:GetObject"] == ["${LandingBucket.Arn}/landing/*"]
    assert subs["s3:PutObject"] == subs["s3:DeleteObject"] == ["${LandingBucket.Arn}/staged/*"]
    for action in (
        "redshift-data:ExecuteStatement",
        "redshift-data:BatchExecuteStatement",
        "redshift-serverless:GetCredentials",
    ):
        assert granted[action] == [{"Ref": "WorkgroupArn"}], action
    assert granted["secretsmanager:GetSecretValue"] == [{"Ref": "CardKeySecret"}]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert granted[action] == [{"Fn::GetAtt": ["LandingQueue", "Arn"]}]
    assert not any(
        a.startswith(("s3:Put", "s3:Delete")) and "landing/" in str(r) for a, r in granted.items()
    )


def test_copy_role_reads_only_staged(templates: dict[str, Template]) -> None:
    statements = [s for role, s in role_statements(templates["warehouse"]) if role == "CopyRole"]
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert actions == {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}
    (read,) = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert read["Resource"]["Fn::Sub"].endswith("/staged/*")
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == "staged/*"


def test_data_service_statements_name_their_resources(templates: dict[str, Template]) -> None:
    for where, statement in all_statements(templates):
        actions = as_list(statement["Action"])
        if any(a.startswith(DATA_SERVICES) for a in actions) and "*" in as_list(
            statement["Resource"]
        ):
            assert set(actions) <= UNSCOPABLE, where


# ---- warehouse ---------------------------------------------------------------------------


def test_redshift_is_private_and_its_passwords_generated(templates: dict[str, Template]) -> None:
    warehouse = templates["warehouse"]
    workgroup = one(warehouse, "AWS::RedshiftServerless::Workgroup")
    assert workgroup["PubliclyAccessible"] is False
    assert workgroup["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
    namespace = one(warehouse, "AWS::RedshiftServerless::Namespace")
    password = namespace.get("AdminUserPassword") or {}
    assert namespace.get("ManageAdminPassword") is True or (
        "{{resolve:secretsmanager:" in password["Fn::Sub"]
    )
    for secret in resources(warehouse, "AWS::SecretsManager::Secret").values():
        assert "GenerateSecretString" in secret["Properties"]
        assert "SecretString" not in secret["Properties"]
    for stem, template in templates.items():
        for name, parameter in template.get("Parameters", {}).items():
            assert "password" not in name.lower(), (stem, name)
            assert not parameter.get("NoEcho"), (stem, name)  # nothing secret comes in


def test_dbt_runs_on_a_schedule_with_credentials_from_secrets_manager(
    templates: dict[str, Template],
) -> None:
    runner = templates["dbt-runner"]
    project = one(runner, "AWS::CodeBuild::Project")
    variables = {v["Name"]: v for v in project["Environment"]["EnvironmentVariables"]}
    for name in ("CAFE_REDSHIFT_USER", "CAFE_REDSHIFT_PASSWORD"):
        assert variables[name]["Type"] == "SECRETS_MANAGER"
    assert project["Source"]["BuildSpec"] == "infra/dbt-runner/scheduled-build.yml"
    schedule = one(runner, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert schedule["Target"]["Arn"].endswith("codebuild:startBuild")
