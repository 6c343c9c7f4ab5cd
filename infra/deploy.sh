#!/usr/bin/env bash
# Deploy cafe-elt to AWS, or update a deployment (make deploy). Needs the aws CLI,
# credentials and the project venv. The order, and why:
#
#   1. foundation  KMS key, deployment bucket, landing bucket and its queues, card-hash key:
#                  what holds data; termination protection on (only CAFE_DESTROY_DATA=yes
#                  make destroy deletes it). Then the artefacts are built and uploaded.
#   2. network     VPC (skipped with CAFE_VPC_ID)
#   3. warehouse   Redshift Serverless; retention set on its log groups
#   4. pause       on an update, the loader's trigger is switched off first: a migration
#                  must not meet a loader COPYing with the old columns
#   5. bootstrap   raw tables, pending migrations, roles and users (bootstrap_warehouse.py)
#   6. pipeline    the loader, with its SQS trigger and retention schedule off
#   7. enable      the same stack with TriggersEnabled=true: events that arrived meanwhile
#                  waited in the queue and are loaded now
#   8. dbt-runner and grafana, then every stack's outputs
#
# Settings (environment variables, defaults in brackets):
#   CAFE_PROJECT [cafe-elt]  AWS_REGION [eu-west-2]  CAFE_ALARM_EMAIL []
#   CAFE_BRANCHES [chesterfield,longridge]  CAFE_LOADER_MEMORY_MB [1024]
#   CAFE_LOADER_TIMEOUT_SECONDS [300]  CAFE_LOADER_CONCURRENCY [4]  CAFE_BATCH_SIZE [5]
#   CAFE_REDSHIFT_BASE_RPU [4]  CAFE_REDSHIFT_MAX_RPU [32]  CAFE_LOG_RETENTION_DAYS [90]
#   CAFE_DBT_SCHEDULE [cron(30 10 * * ? *)]  CAFE_DBT_FULL_REFRESH_SCHEDULE [cron(0 4 ? * SUN *)]
#   CAFE_RETENTION_SCHEDULE [cron(15 3 * * ? *)]  CAFE_NAME_RETENTION_DAYS [30]
#   CAFE_SCHEDULE_TIMEZONE [Europe/London]
#   CAFE_VPC_ID, CAFE_PRIVATE_SUBNET_IDS (3, comma-separated): an existing VPC instead of
#       the network stack
#   CAFE_DEPLOY_GRAFANA [true]  CAFE_SKIP_PACKAGE [false]: deploy the build folder as it is
#   CAFE_BUILD_DIR [build]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

require_aws
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || die "no project venv ($PYTHON): run make setup first"
BUILD=${CAFE_BUILD_DIR:-build}
TIMEOUT=${CAFE_LOADER_TIMEOUT_SECONDS:-300}
LOG_DAYS=${CAFE_LOG_RETENTION_DAYS:-90}
TIMEZONE=${CAFE_SCHEDULE_TIMEZONE:-Europe/London}

deploy() {  # deploy STACK TEMPLATE [Key=Value ...]
    local stack=$1 template=$2
    shift 2
    echo "==> stack $(stack_name "$stack")"
    aws cloudformation deploy \
        --stack-name "$(stack_name "$stack")" \
        --template-file "infra/templates/$template" \
        --capabilities CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
        --no-fail-on-empty-changeset \
        --tags project="$PROJECT" \
        --parameter-overrides ProjectName="$PROJECT" "$@"
}

upload_once() {  # upload_once FILE KEY: content-addressed keys never change, so skip if present
    if ! aws s3api head-object --bucket "$BUCKET" --key "$2" >/dev/null 2>&1; then
        aws s3 cp --only-show-errors "$1" "s3://$BUCKET/$2"
    fi
}

# 1. foundation and artefacts
deploy foundation foundation.yaml LoaderTimeoutSeconds="$TIMEOUT"
aws cloudformation update-termination-protection --enable-termination-protection \
    --stack-name "$(stack_name foundation)" >/dev/null
BUCKET=$(stack_output foundation DeploymentBucketName)
DATA_KEY=$(stack_output foundation DataKeyArn)
LANDING_BUCKET=$(stack_output foundation LandingBucketName)

if [ "${CAFE_SKIP_PACKAGE:-false}" != true ]; then
    infra/package.sh all --out "$BUILD"
fi
LAMBDA_SHA=$(cut -d' ' -f1 "$BUILD/lambda.zip.sha256")
DBT_SHA=$(cut -d' ' -f1 "$BUILD/dbt-source.zip.sha256")
ARTIFACT_KEY="lambda/loader-$LAMBDA_SHA.zip"
DBT_SOURCE_KEY="dbt/dbt-source-$DBT_SHA.zip"
upload_once "$BUILD/lambda.zip" "$ARTIFACT_KEY"
upload_once "$BUILD/dbt-source.zip" "$DBT_SOURCE_KEY"
aws s3 sync --only-show-errors --delete --exclude "README.md" infra/grafana "s3://$BUCKET/grafana"

# 2. network
if [ -n "${CAFE_VPC_ID:-}" ]; then
    VPC_ID=$CAFE_VPC_ID
    PRIVATE_SUBNETS=${CAFE_PRIVATE_SUBNET_IDS:?CAFE_PRIVATE_SUBNET_IDS is needed with CAFE_VPC_ID}
else
    deploy network network.yaml DataKeyArn="$DATA_KEY"
    VPC_ID=$(stack_output network VpcId)
    PRIVATE_SUBNETS=$(stack_output network PrivateSubnetIds)
fi

# 3. warehouse
S3_PREFIX_LIST=$(aws ec2 describe-managed-prefix-lists \
    --filters "Name=prefix-list-name,Values=com.amazonaws.$REGION.s3" \
    --query 'PrefixLists[0].PrefixListId' --output text)
[[ $S3_PREFIX_LIST == pl-* ]] || die "no S3 prefix list in $REGION (got '$S3_PREFIX_LIST')"
deploy warehouse warehouse.yaml \
    DataKeyArn="$DATA_KEY" VpcId="$VPC_ID" PrivateSubnetIds="$PRIVATE_SUBNETS" \
    LandingBucketName="$LANDING_BUCKET" S3PrefixListId="$S3_PREFIX_LIST" \
    BaseCapacityRpu="${CAFE_REDSHIFT_BASE_RPU:-4}" MaxCapacityRpu="${CAFE_REDSHIFT_MAX_RPU:-32}"
WORKGROUP=$(stack_output warehouse WorkgroupName)
WORKGROUP_ARN=$(stack_output warehouse WorkgroupArn)
DATABASE=$(stack_output warehouse DatabaseName)
COPY_ROLE=$(stack_output warehouse CopyRoleArn)
DBT_SECRET=$(stack_output warehouse DbtUserSecretArn)
REPORTING_SECRET=$(stack_output warehouse ReportingUserSecretArn)
# Redshift creates its log groups on first export with no expiry; created here first they
# keep the retention (CloudFormation cannot own them: their names are account-wide).
for group in "${REDSHIFT_LOG_GROUPS[@]}"; do
    aws logs create-log-group --log-group-name "$group" >/dev/null 2>&1 || true
    aws logs put-retention-policy --log-group-name "$group" --retention-in-days "$LOG_DAYS"
done

# 4. pause the loader of an earlier deploy
read -r TRIGGER_UUID TRIGGER_STATE <<<"$(loader_trigger)" || true
if [ -n "${TRIGGER_UUID:-}" ] && [ "${TRIGGER_STATE:-}" != Disabled ]; then
    echo "==> pausing the loader's trigger ($TRIGGER_UUID) for the migration"
    aws lambda update-event-source-mapping --uuid "$TRIGGER_UUID" --no-enabled >/dev/null
    for _ in $(seq 60); do
        [ "$(aws lambda get-event-source-mapping --uuid "$TRIGGER_UUID" --query State \
            --output text)" = Disabled ] && break
        sleep 5
    done
fi

# 5. bootstrap and migrations
echo "==> database bootstrap (raw tables, migrations, cafe_loader role, cafe_dbt and cafe_reporting users)"
"$PYTHON" infra/bootstrap_warehouse.py --region "$REGION" \
    --workgroup "$WORKGROUP" --database "$DATABASE" \
    --admin-secret-arn "$(stack_output warehouse AdminSecretArn)" \
    --copy-role-arn "$COPY_ROLE" --dbt-secret-arn "$DBT_SECRET" \
    --reporting-secret-arn "$REPORTING_SECRET"

# 6. pipeline with its trigger off, 7. then on
PIPELINE=(
    DataKeyArn="$DATA_KEY" ArtifactBucket="$BUCKET" ArtifactKey="$ARTIFACT_KEY"
    LandingBucketName="$LANDING_BUCKET"
    LandingQueueArn="$(stack_output foundation LandingQueueArn)"
    LandingQueueName="$(stack_output foundation LandingQueueName)"
    DeadLetterQueueName="$(stack_output foundation DeadLetterQueueName)"
    CardKeySecretArn="$(stack_output foundation CardKeySecretArn)"
    WorkgroupName="$WORKGROUP" WorkgroupArn="$WORKGROUP_ARN" DatabaseName="$DATABASE"
    CopyRoleArn="$COPY_ROLE"
    LoaderMemoryMb="${CAFE_LOADER_MEMORY_MB:-1024}" LoaderTimeoutSeconds="$TIMEOUT"
    LoaderMaxConcurrency="${CAFE_LOADER_CONCURRENCY:-4}" BatchSize="${CAFE_BATCH_SIZE:-5}"
    RetentionSchedule="${CAFE_RETENTION_SCHEDULE:-cron(15 3 * * ? *)}" ScheduleTimezone="$TIMEZONE"
    NameRetentionDays="${CAFE_NAME_RETENTION_DAYS:-30}"
    Branches="${CAFE_BRANCHES:-chesterfield,longridge}" AlarmEmail="${CAFE_ALARM_EMAIL:-}"
    LogRetentionDays="$LOG_DAYS"
)
deploy pipeline pipeline.yaml "${PIPELINE[@]}" TriggersEnabled=false
echo "==> enabling the loader's trigger and the retention schedule"
deploy pipeline pipeline.yaml "${PIPELINE[@]}" TriggersEnabled=true

# 8. the rest
deploy dbt-runner dbt-runner.yaml \
    DataKeyArn="$DATA_KEY" DeploymentBucket="$BUCKET" DbtSourceKey="$DBT_SOURCE_KEY" \
    VpcId="$VPC_ID" PrivateSubnetIds="$PRIVATE_SUBNETS" \
    WarehouseClientSecurityGroupId="$(stack_output warehouse WarehouseClientSecurityGroupId)" \
    WorkgroupEndpoint="$(stack_output warehouse WorkgroupEndpoint)" DatabaseName="$DATABASE" \
    DbtUserSecretArn="$DBT_SECRET" AlarmTopicArn="$(stack_output pipeline AlarmTopicArn)" \
    ScheduleExpression="${CAFE_DBT_SCHEDULE:-cron(30 10 * * ? *)}" \
    FullRefreshScheduleExpression="${CAFE_DBT_FULL_REFRESH_SCHEDULE:-cron(0 4 ? * SUN *)}" \
    ScheduleTimezone="$TIMEZONE" LogRetentionDays="$LOG_DAYS"

if [ "${CAFE_DEPLOY_GRAFANA:-true}" = true ]; then
    deploy grafana grafana.yaml \
        DataKeyArn="$DATA_KEY" DeploymentBucket="$BUCKET" VpcId="$VPC_ID" \
        SubnetId="${PRIVATE_SUBNETS%%,*}" \
        WorkgroupName="$WORKGROUP" WorkgroupArn="$WORKGROUP_ARN" DatabaseName="$DATABASE" \
        ReportingUserSecretArn="$REPORTING_SECRET"
fi

echo
echo "Deployed $PROJECT to $REGION. Stack outputs:"
for stack in foundation network warehouse pipeline dbt-runner grafana; do
    stack_exists "$stack" || continue
    aws cloudformation describe-stacks --stack-name "$(stack_name "$stack")" \
        --query 'Stacks[0].Outputs[].[OutputKey, OutputValue]' --output text \
        | sed "s/^/  $stack: /"
done
echo
echo "Drop a branch export into s3://$LANDING_BUCKET/landing/ to load it."
