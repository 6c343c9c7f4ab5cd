"""What the templates promise: encryption, no public access, DLQ wiring, least privilege,
and the production-path fixes of issue 14 (each test names its point)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from infra_helpers import INFRA, load_templates

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


# ---- landing bucket and queues (foundation: outlives a plain destroy) ------------------------


@pytest.fixture
def foundation(templates: dict[str, Template]) -> Template:
    return templates["foundation"]


@pytest.fixture
def pipeline(templates: dict[str, Template]) -> Template:
    return templates["pipeline"]


def landing_bucket(foundation: Template) -> dict[str, Any]:
    return dict(foundation["Resources"]["LandingBucket"]["Properties"])


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


def test_what_holds_data_lives_in_the_foundation_stack_and_nothing_is_orphaned(
    templates: dict[str, Template],
) -> None:
    # Point 3: a retained resource with a fixed name would block the next deploy. What
    # must survive a plain destroy lives in the one stack that destroy.sh keeps, and is
    # deleted with it when CAFE_DESTROY_DATA=yes.
    kept = {"AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::KMS::Key"}
    foundation = templates["foundation"]["Resources"]
    assert {"LandingBucket", "LandingQueue", "DeadLetterQueue", "CardKeySecret", "DataKey"} <= set(
        foundation
    )
    for stem, template in templates.items():
        for name, body in template["Resources"].items():
            if not isinstance(body, dict):
                continue
            assert body.get("DeletionPolicy", "Delete") != "Retain", (stem, name)
            if body.get("Type") in kept:
                assert stem == "foundation", (stem, name)
    assert foundation["CardKeySecret"]["Type"] == "AWS::SecretsManager::Secret"


def test_staged_parquet_expires(foundation: Template) -> None:
    rules = landing_bucket(foundation)["LifecycleConfiguration"]["Rules"]
    staged = [r for r in rules if r.get("Prefix") == "staged/" and r["Status"] == "Enabled"]
    assert staged and staged[0]["ExpirationInDays"] <= 7


def test_every_object_under_landing_notifies_the_queue(foundation: Template) -> None:
    # Issue 9 point 6: no suffix filter (S3's is case-sensitive and would drop `.CSV`
    # silently); the loader refuses what is not a CSV and records it.
    (notification,) = landing_bucket(foundation)["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["LandingQueue", "Arn"]}
    rules = {r["Name"]: r["Value"] for r in notification["Filter"]["S3Key"]["Rules"]}
    assert rules == {"prefix": "landing/"}


def test_queue_redrives_to_an_encrypted_dlq_after_three_receives(foundation: Template) -> None:
    queues = resources(foundation, "AWS::SQS::Queue")
    redrive = queues["LandingQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 3
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    for queue in queues.values():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties


def test_visibility_timeout_is_six_lambda_timeouts_for_every_allowed_timeout(
    foundation: Template, pipeline: Template
) -> None:
    timeout = pipeline["Parameters"]["LoaderTimeoutSeconds"]
    assert (
        foundation["Parameters"]["LoaderTimeoutSeconds"]["AllowedValues"]
        == (timeout["AllowedValues"])
    )
    assert foundation["Parameters"]["LoaderTimeoutSeconds"]["Default"] == timeout["Default"]
    visibility = foundation["Resources"]["LandingQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility == {
        "Fn::FindInMap": ["QueueVisibility", {"Ref": "LoaderTimeoutSeconds"}, "Seconds"]
    }
    mapping = foundation["Mappings"]["QueueVisibility"]
    for allowed in timeout["AllowedValues"]:
        assert mapping[str(allowed)]["Seconds"] >= 6 * int(allowed)
    function = one(pipeline, "AWS::Lambda::Function")
    assert function["Timeout"] == {"Ref": "LoaderTimeoutSeconds"}


def test_only_the_landing_bucket_may_send_to_the_queue(foundation: Template) -> None:
    policy = one(foundation, "AWS::SQS::QueuePolicy")["PolicyDocument"]
    (allow,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    source = allow["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    bucket_name = landing_bucket(foundation)["BucketName"]["Fn::Sub"]
    assert source.endswith(":::" + bucket_name)
    assert "aws:SourceAccount" in allow["Condition"]["StringEquals"]


# ---- loader ------------------------------------------------------------------------------


def test_loader_runs_on_a_current_runtime_without_reserved_concurrency(
    pipeline: Template,
) -> None:
    function = one(pipeline, "AWS::Lambda::Function")
    # Point 11: Amazon Linux 2023 runtimes (python3.11 is Amazon Linux 2, end of life 2026).
    assert function["Runtime"] in ("python3.12", "python3.13")
    assert function["Handler"] == "loader.handler.lambda_handler"
    # Point 4: reserved concurrency fails on low-quota accounts; the mapping caps instead.
    assert "ReservedConcurrentExecutions" not in function
    mapping = one(pipeline, "AWS::Lambda::EventSourceMapping")
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "LoaderMaxConcurrency"}
    concurrency = pipeline["Parameters"]["LoaderMaxConcurrency"]
    assert concurrency["MinValue"] >= 2  # the smallest MaximumConcurrency Lambda accepts
    assert 2 <= concurrency["Default"] <= 10
    parameters = pipeline["Parameters"]
    assert parameters["LoaderMemoryMb"]["Default"] >= 1024
    assert parameters["LoaderTimeoutSeconds"]["Default"] >= 300


def test_loader_environment(pipeline: Template) -> None:
    environment = one(pipeline, "AWS::Lambda::Function")["Environment"]["Variables"]
    assert environment["CAFE_WAREHOUSE"] == "redshift"
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "CafeElt"
    for name in (
        "CAFE_LANDING_BUCKET",
        "CAFE_CARD_KEY_SECRET_ARN",
        "CAFE_REDSHIFT_WORKGROUP",
        "CAFE_REDSHIFT_DATABASE",
        "CAFE_REDSHIFT_COPY_ROLE_ARN",
        "POWERTOOLS_SERVICE_NAME",
    ):
        assert environment[name], name
    assert environment["CAFE_NAME_RETENTION_DAYS"] == {"Ref": "NameRetentionDays"}
    assert pipeline["Parameters"]["NameRetentionDays"]["Default"] == 30
    # The key's version label lives in the secret beside the key, so rotation needs no deploy.
    assert "CAFE_CARD_KEY_VERSION" not in environment


def test_the_trigger_is_created_off_and_the_schedule_follows_it(pipeline: Template) -> None:
    # Point 5: deploy.sh turns it on after the bootstrap (tests/infra/test_scripts.py).
    switch = pipeline["Parameters"]["TriggersEnabled"]
    assert switch["Default"] == "false"
    assert pipeline["Conditions"]["TriggersOn"] == {
        "Fn::Equals": [{"Ref": "TriggersEnabled"}, "true"]
    }
    mapping = one(pipeline, "AWS::Lambda::EventSourceMapping")
    assert mapping["Enabled"] == {"Fn::If": ["TriggersOn", True, False]}
    schedule = one(pipeline, "AWS::Scheduler::Schedule")
    assert schedule["State"] == {"Fn::If": ["TriggersOn", "ENABLED", "DISABLED"]}


def test_event_source_reports_partial_batch_failures(pipeline: Template) -> None:
    mapping = one(pipeline, "AWS::Lambda::EventSourceMapping")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["EventSourceArn"] == {"Ref": "LandingQueueArn"}
    batch = pipeline["Parameters"]["BatchSize"]
    assert batch["MaxValue"] <= 10 and batch["Default"] <= 10


def test_retention_runs_daily_through_the_loader_with_its_own_narrow_role(
    pipeline: Template,
) -> None:
    schedule = one(pipeline, "AWS::Scheduler::Schedule")
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["LoaderFunction", "Arn"]}
    assert schedule["Target"]["Input"] == '{"task": "retention"}'
    assert schedule["Target"]["RoleArn"] == {"Fn::GetAtt": ["RetentionSchedulerRole", "Arn"]}
    default = pipeline["Parameters"]["RetentionSchedule"]["Default"]
    assert default.startswith("cron(") and default.split()[2:4] == ["*", "*"]  # every day
    statements = [s for role, s in role_statements(pipeline) if role == "RetentionSchedulerRole"]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": {"Fn::GetAtt": ["LoaderFunction", "Arn"]},
        }
    ]


def test_card_key_is_generated_once_from_a_constant_template(foundation: Template) -> None:
    secret = foundation["Resources"]["CardKeySecret"]["Properties"]
    generated = secret["GenerateSecretString"]
    assert generated["PasswordLength"] == 64
    assert generated["ExcludeUppercase"] and generated["ExcludePunctuation"]
    alphabet = set("abcdefghijklmnopqrstuvwxyz") - set(generated["ExcludeCharacters"])
    assert alphabet == set("abcdef")
    assert generated["GenerateStringKey"] == "key"
    assert "SecretString" not in secret
    # Point 13: a literal, so that no parameter change regenerates (overwrites) the key.
    assert generated["SecretStringTemplate"] == '{"version": "aws-v1"}'


def test_no_stack_takes_a_card_key_setting(templates: dict[str, Template]) -> None:
    for stem, template in templates.items():
        names = [n for n in template.get("Parameters", {}) if "CardKey" in n]
        assert names in ([], ["CardKeySecretArn"]), (stem, names)


def test_loader_reads_the_card_key_secret_by_its_two_live_stages_only(pipeline: Template) -> None:
    (read,) = [s for _, s in role_statements(pipeline) if s.get("Sid") == "ReadCardKey"]
    assert read["Action"] == "secretsmanager:GetSecretValue"
    assert read["Resource"] == {"Ref": "CardKeySecretArn"}
    # AWSPREVIOUS during a rotation's window; a retired (deprecated, unlabelled) version never.
    stages = read["Condition"]["StringEquals"]["secretsmanager:VersionStage"]
    assert sorted(stages) == ["AWSCURRENT", "AWSPREVIOUS"]


# ---- alarms ------------------------------------------------------------------------------


def all_alarms(templates: dict[str, Template]) -> dict[str, dict[str, Any]]:
    found = {}
    for stem, template in templates.items():
        for name, body in template["Resources"].items():
            if name.startswith("Fn::ForEach::"):
                (body,) = body[2].values()
            if isinstance(body, dict) and body.get("Type") == "AWS::CloudWatch::Alarm":
                found[f"{stem}.{name}"] = body["Properties"]
    return found


def test_every_alarm_notifies_the_encrypted_topic_when_it_fires_and_when_it_clears(
    templates: dict[str, Template],
) -> None:
    topic = one(templates["pipeline"], "AWS::SNS::Topic")
    assert topic["KmsMasterKeyId"] == {"Ref": "DataKeyArn"}
    alarms = all_alarms(templates)
    assert len(alarms) >= 10
    for where, alarm in alarms.items():
        assert alarm["AlarmActions"] in ([{"Ref": "AlarmTopic"}], [{"Ref": "AlarmTopicArn"}])
        assert alarm.get("OKActions") == alarm["AlarmActions"], where


def alarm_on(templates: dict[str, Template], namespace: str, metric: str) -> dict[str, Any]:
    (alarm,) = [
        a
        for a in all_alarms(templates).values()
        if (a["Namespace"], a["MetricName"]) == (namespace, metric)
    ]
    return alarm


def test_alarms_cover_errors_throttles_and_a_backed_up_queue(
    templates: dict[str, Template],
) -> None:
    for metric in ("Errors", "Throttles"):
        alarm = alarm_on(templates, "AWS/Lambda", metric)
        assert alarm["Threshold"] == 1 and alarm["TreatMissingData"] == "notBreaching"
    age = alarm_on(templates, "AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert age["Dimensions"] == [{"Name": "QueueName", "Value": {"Ref": "LandingQueueName"}}]
    assert age["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"}
    dead = alarm_on(templates, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": {"Ref": "DeadLetterQueueName"}}]


def test_duration_alarm_fires_at_eighty_percent_of_every_allowed_timeout(
    pipeline: Template,
) -> None:
    alarm = alarm_on({"pipeline": pipeline}, "AWS/Lambda", "Duration")
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == {
        "Fn::FindInMap": ["NearTimeout", {"Ref": "LoaderTimeoutSeconds"}, "Milliseconds"]
    }
    mapping = pipeline["Mappings"]["NearTimeout"]
    for allowed in pipeline["Parameters"]["LoaderTimeoutSeconds"]["AllowedValues"]:
        assert mapping[str(allowed)]["Milliseconds"] == int(allowed) * 1000 * 8 // 10


def test_a_build_that_fails_or_never_starts_alarms(templates: dict[str, Template]) -> None:
    failed = alarm_on(templates, "AWS/CodeBuild", "FailedBuilds")
    assert failed["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    started = alarm_on(templates, "AWS/CodeBuild", "Builds")
    # Nothing is emitted when nothing starts: missing data must count as breaching.
    assert started["TreatMissingData"] == "breaching"
    assert started["ComparisonOperator"] == "LessThanThreshold" and started["Threshold"] == 1
    assert started["Period"] * started["EvaluationPeriods"] == 26 * 3600
    assert started["DatapointsToAlarm"] == started["EvaluationPeriods"]


def test_one_silence_alarm_per_branch_treats_missing_data_as_breaching(
    pipeline: Template,
) -> None:
    loop = pipeline["Resources"]["Fn::ForEach::BranchSilence"]
    assert loop[1] == {"Ref": "Branches"}
    ((logical_id, alarm),) = loop[2].items()
    # Point 17: &{} drops a branch's '-' and '_', which a logical id may not hold.
    assert logical_id == "SilentBranchAlarm&{Branch}"
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
    # Redshift Serverless reads the loader role's RedshiftDbRoles tag with its credentials.
    "tag:GetResources",
    "tag:GetTagKeys",
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
        if role != "LoaderRole":
            continue
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(as_list(statement["Resource"]))
    subs = {
        a: [r.get("Fn::Sub", r) if isinstance(r, dict) else r for r in v]
        for a, v in granted.items()
    }
    bucket = "arn:${AWS::Partition}:s3:::${LandingBucketName}"
    # The exact version an event names (stale versions are told apart by it).
    assert subs["s3:GetObject"] == subs["s3:GetObjectVersion"] == [f"{bucket}/landing/*"]
    assert subs["s3:PutObject"] == subs["s3:DeleteObject"] == [f"{bucket}/staged/*"]
    assert subs["s3:ListBucket"] == [bucket]
    for action in (
        "redshift-data:ExecuteStatement",
        "redshift-data:BatchExecuteStatement",
        "redshift-serverless:GetCredentials",
    ):
        assert granted[action] == [{"Ref": "WorkgroupArn"}], action
    assert granted["secretsmanager:GetSecretValue"] == [{"Ref": "CardKeySecretArn"}]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert granted[action] == [{"Ref": "LandingQueueArn"}]
    assert not any(
        a.startswith(("s3:Put", "s3:Delete")) and "landing/" in str(r) for a, r in granted.items()
    )


def test_loader_can_read_the_tag_that_names_its_database_role(pipeline: Template) -> None:
    # Point 1: without tag:GetResources/GetTagKeys, sign-in grants no database role.
    role = pipeline["Resources"]["LoaderRole"]["Properties"]
    assert {"Key": "RedshiftDbRoles", "Value": "cafe_loader"} in role["Tags"]
    actions = {
        action
        for name, statement in role_statements(pipeline)
        if name == "LoaderRole" and statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }
    assert {"tag:GetResources", "tag:GetTagKeys"} <= actions


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


def test_copy_reaches_s3_through_the_vpc_and_nothing_else_leaves(
    templates: dict[str, Template],
) -> None:
    # Point 2: enhanced VPC routing sends COPY through the VPC; the workgroup's security
    # group must let HTTPS out to S3's prefix list, and only that.
    warehouse = templates["warehouse"]
    assert one(warehouse, "AWS::RedshiftServerless::Workgroup")["EnhancedVpcRouting"] is True
    group = warehouse["Resources"]["WarehouseSecurityGroup"]["Properties"]
    assert group["SecurityGroupEgress"] == [
        {
            "Description": group["SecurityGroupEgress"][0]["Description"],
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "DestinationPrefixListId": {"Ref": "S3PrefixListId"},
        }
    ]
    egress_rules = resources(warehouse, "AWS::EC2::SecurityGroupEgress").values()
    assert not any(
        r["Properties"]["GroupId"] == {"Ref": "WarehouseSecurityGroup"} for r in egress_rules
    )
    # ... and the network stack routes S3 from the private subnets to a gateway endpoint.
    endpoint = one(templates["network"], "AWS::EC2::VPCEndpoint")
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert endpoint["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"}
    assert {"Ref": "PrivateRouteTable"} in endpoint["RouteTableIds"]


def test_the_warehouse_starts_at_the_smallest_base_capacity(
    templates: dict[str, Template],
) -> None:
    # Point 10: billed per RPU-second of queries; 4 RPUs is the smallest base offered.
    parameters = templates["warehouse"]["Parameters"]
    base = parameters["BaseCapacityRpu"]
    assert base["Default"] == 4 == min(base["AllowedValues"])
    assert parameters["MaxCapacityRpu"]["MinValue"] <= base["Default"]
    workgroup = one(templates["warehouse"], "AWS::RedshiftServerless::Workgroup")
    assert workgroup["BaseCapacity"] == {"Ref": "BaseCapacityRpu"}
    assert workgroup["MaxCapacity"] == {"Ref": "MaxCapacityRpu"}


# ---- dbt runner --------------------------------------------------------------------------


@pytest.fixture
def runner(templates: dict[str, Template]) -> Template:
    return templates["dbt-runner"]


def test_dbt_runs_on_a_schedule_with_credentials_from_secrets_manager(runner: Template) -> None:
    project = one(runner, "AWS::CodeBuild::Project")
    variables = {v["Name"]: v for v in project["Environment"]["EnvironmentVariables"]}
    for name in ("CAFE_REDSHIFT_USER", "CAFE_REDSHIFT_PASSWORD"):
        assert variables[name]["Type"] == "SECRETS_MANAGER"
    assert project["Source"]["BuildSpec"] == "infra/dbt-runner/scheduled-build.yml"
    daily = runner["Resources"]["DailyBuildSchedule"]["Properties"]
    assert daily["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert daily["Target"]["Arn"].endswith("codebuild:startBuild")


def test_a_weekly_full_refresh_runs_the_same_project_with_one_override(runner: Template) -> None:
    weekly = runner["Resources"]["WeeklyFullRefreshSchedule"]["Properties"]
    assert weekly["ScheduleExpression"] == {"Ref": "FullRefreshScheduleExpression"}
    assert "SUN" in runner["Parameters"]["FullRefreshScheduleExpression"]["Default"]
    assert weekly["Target"]["Arn"].endswith("codebuild:startBuild")
    body = json.loads(weekly["Target"]["Input"]["Fn::Sub"].replace("${DbtBuild}", "p"))
    assert body == {
        "ProjectName": "p",
        "EnvironmentVariablesOverride": [
            {"Name": "CAFE_DBT_FULL_REFRESH", "Value": "true", "Type": "PLAINTEXT"}
        ],
    }
    (start,) = [s for role, s in role_statements(runner) if role == "SchedulerRole"]
    assert start["Action"] == "codebuild:StartBuild"
    assert start["Resource"] == {"Fn::GetAtt": ["DbtBuild", "Arn"]}


def test_the_build_publishes_its_artifacts_under_dbt_prod_only(runner: Template) -> None:
    # Point 16: the artifacts go to s3://<deployment bucket>/dbt/prod/{latest,runs/...}/.
    project = one(runner, "AWS::CodeBuild::Project")
    variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    assert variables["CAFE_DBT_ARTIFACTS_URI"] == {"Fn::Sub": "s3://${DeploymentBucket}/dbt/prod"}
    writes = [
        s
        for role, s in role_statements(runner)
        if role == "BuildRole" and "s3:PutObject" in as_list(s["Action"])
    ]
    assert [s["Resource"] for s in writes] == [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${DeploymentBucket}/dbt/prod/*"}
    ]
    spec = yaml.safe_load((INFRA / "dbt-runner" / "scheduled-build.yml").read_text())
    assert spec["env"]["variables"]["CAFE_DBT_TARGET"] == "prod"
    assert spec["phases"]["build"]["commands"] == ["bash infra/dbt-runner/scheduled-build.sh build"]
    # post_build runs after a failed build too, so a failure's run_results.json is kept.
    assert spec["phases"]["post_build"]["commands"] == [
        "bash infra/dbt-runner/scheduled-build.sh publish"
    ]


# ---- Grafana -----------------------------------------------------------------------------


def test_grafana_is_private_and_reached_through_session_manager_only(
    templates: dict[str, Template],
) -> None:
    # Point 12: no public address, nothing inbound; Grafana and the docs listen on loopback.
    grafana = templates["grafana"]
    group = grafana["Resources"]["GrafanaSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group
    assert not resources(grafana, "AWS::EC2::SecurityGroupIngress")
    data = one(grafana, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    (interface,) = data["NetworkInterfaces"]
    assert interface["AssociatePublicIpAddress"] is False
    assert interface["SubnetId"] == {"Ref": "SubnetId"}
    user_data = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert "GF_SERVER_HTTP_ADDR=127.0.0.1" in user_data
    assert "--bind 127.0.0.1" in user_data
    outputs = grafana["Outputs"]
    assert "AWS-StartPortForwardingSession" in outputs["GrafanaPortForward"]["Value"]["Fn::Sub"]
    assert not any("PublicIp" in str(o) for o in outputs.values())


def test_grafana_signals_creation_only_when_it_answers(templates: dict[str, Template]) -> None:
    grafana = templates["grafana"]
    instance = grafana["Resources"]["GrafanaInstance"]
    assert instance["CreationPolicy"]["ResourceSignal"]["Count"] == 1
    user_data = one(grafana, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"]
    script = user_data["Fn::Base64"]["Fn::Sub"]
    health = script.rindex("curl -fsS http://127.0.0.1:3000/api/health")
    assert health < script.rindex("signal SUCCESS")
    assert "trap 'signal FAILURE' ERR" in script
    (signal,) = [s for _, s in role_statements(grafana) if s.get("Sid") == "SignalStackCreation"]
    assert signal["Action"] == "cloudformation:SignalResource"
    assert signal["Resource"] == {"Ref": "AWS::StackId"}


def test_grafana_host_serves_the_docs_of_the_last_good_build(
    templates: dict[str, Template],
) -> None:
    grafana = templates["grafana"]
    (read,) = [s for _, s in role_statements(grafana) if s.get("Sid") == "ReadDbtDocs"]
    assert read["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${DeploymentBucket}/dbt/prod/latest/*"
    }
    script = one(grafana, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"]
    assert "dbt/prod/latest/static_index.html" in script["Fn::Base64"]["Fn::Sub"]
