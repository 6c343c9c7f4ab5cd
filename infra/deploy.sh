#!/usr/bin/env bash
# Deploy cafe-elt to AWS (make deploy). Needs the aws CLI, credentials and the project venv.
#
#   stacks, in order: foundation -> network (unless CAFE_VPC_ID) -> warehouse -> pipeline
#                     -> (bootstrap the database) -> dbt-runner -> grafana
#
# Settings (environment variables, defaults in brackets):
#   CAFE_PROJECT [cafe-elt]  AWS_REGION [eu-west-2]  CAFE_ALARM_EMAIL []
#   CAFE_BRANCHES [chesterfield,longridge]  CAFE_LOADER_MEMORY_MB [1024]
#   CAFE_LOADER_TIMEOUT_SECONDS [300]  CAFE_LOADER_CONCURRENCY [4]  CAFE_BATCH_SIZE [5]
#   CAFE_CARD_KEY_VERSION [aws-v1]  CAFE_REDSHIFT_BASE_RPU [8]  CAFE_REDSHIFT_MAX_RPU [32]
#   CAFE_DBT_SCHEDULE [cron(30 10 * * ? *)]  CAFE_DBT_TIMEZONE [Europe/London]
#   CAFE_VPC_ID, CAFE_PRIVATE_SUBNET_IDS (3, comma-separated), CAFE_PUBLIC_SUBNET_ID:
#       an existing VPC instead of the network stack
#   CAFE_DEPLOY_GRAFANA [true]  CAFE_GRAFANA_ALLOWED_CIDR [127.0.0.1/32]
#   CAFE_SKIP_PACKAGE [false]: deploy build/ as it is
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

require_aws
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || die "no project venv ($PYTHON): run make setup first"

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

deploy foundation foundation.yaml
BUCKET=$(stack_output foundation DeploymentBucketName)
DATA_KEY=$(stack_output foundation DataKeyArn)

if [ "${CAFE_SKIP_PACKAGE:-false}" != true ]; then
    infra/package.sh all
fi
LAMBDA_SHA=$(cut -d' ' -f1 build/lambda.zip.sha256)
DBT_SHA=$(cut -d' ' -f1 build/dbt-source.zip.sha256)
ARTIFACT_KEY="lambda/loader-$LAMBDA_SHA.zip"
DBT_SOURCE_KEY="dbt/dbt-source-$DBT_SHA.zip"
upload_once build/lambda.zip "$ARTIFACT_KEY"
upload_once build/dbt-source.zip "$DBT_SOURCE_KEY"
aws s3 sync --only-show-errors --delete --exclude "README.md" infra/grafana "s3://$BUCKET/grafana"

if [ -n "${CAFE_VPC_ID:-}" ]; then
    VPC_ID=$CAFE_VPC_ID
    PRIVATE_SUBNETS=${CAFE_PRIVATE_SUBNET_IDS:?CAFE_PRIVATE_SUBNET_IDS is needed with CAFE_VPC_ID}
    PUBLIC_SUBNET=${CAFE_PUBLIC_SUBNET_ID:?CAFE_PUBLIC_SUBNET_ID is needed with CAFE_VPC_ID}
else
    deploy network network.yaml DataKeyArn="$DATA_KEY"
    VPC_ID=$(stack_output network VpcId)
    PRIVATE_SUBNETS=$(stack_output network PrivateSubnetIds)
    PUBLIC_SUBNET=$(stack_output network PublicSubnetId)
fi

ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
LANDING_BUCKET="$PROJECT-landing-$ACCOUNT-$REGION"
deploy warehouse warehouse.yaml \
    DataKeyArn="$DATA_KEY" VpcId="$VPC_ID" PrivateSubnetIds="$PRIVATE_SUBNETS" \
    LandingBucketName="$LANDING_BUCKET" \
    BaseCapacityRpu="${CAFE_REDSHIFT_BASE_RPU:-8}" MaxCapacityRpu="${CAFE_REDSHIFT_MAX_RPU:-32}"
WORKGROUP=$(stack_output warehouse WorkgroupName)
WORKGROUP_ARN=$(stack_output warehouse WorkgroupArn)
DATABASE=$(stack_output warehouse DatabaseName)
COPY_ROLE=$(stack_output warehouse CopyRoleArn)
DBT_SECRET=$(stack_output warehouse DbtUserSecretArn)
REPORTING_SECRET=$(stack_output warehouse ReportingUserSecretArn)

deploy pipeline pipeline.yaml \
    DataKeyArn="$DATA_KEY" ArtifactBucket="$BUCKET" ArtifactKey="$ARTIFACT_KEY" \
    WorkgroupName="$WORKGROUP" WorkgroupArn="$WORKGROUP_ARN" DatabaseName="$DATABASE" \
    CopyRoleArn="$COPY_ROLE" \
    LoaderMemoryMb="${CAFE_LOADER_MEMORY_MB:-1024}" \
    LoaderTimeoutSeconds="${CAFE_LOADER_TIMEOUT_SECONDS:-300}" \
    LoaderReservedConcurrency="${CAFE_LOADER_CONCURRENCY:-4}" \
    BatchSize="${CAFE_BATCH_SIZE:-5}" \
    CardKeyVersion="${CAFE_CARD_KEY_VERSION:-aws-v1}" \
    Branches="${CAFE_BRANCHES:-chesterfield,longridge}" \
    AlarmEmail="${CAFE_ALARM_EMAIL:-}"

echo "==> database bootstrap (raw tables, cafe_loader role, cafe_dbt and cafe_reporting users)"
"$PYTHON" infra/bootstrap_warehouse.py --region "$REGION" \
    --workgroup "$WORKGROUP" --database "$DATABASE" \
    --admin-secret-arn "$(stack_output warehouse AdminSecretArn)" \
    --copy-role-arn "$COPY_ROLE" --dbt-secret-arn "$DBT_SECRET" \
    --reporting-secret-arn "$REPORTING_SECRET"

deploy dbt-runner dbt-runner.yaml \
    DataKeyArn="$DATA_KEY" DeploymentBucket="$BUCKET" DbtSourceKey="$DBT_SOURCE_KEY" \
    VpcId="$VPC_ID" PrivateSubnetIds="$PRIVATE_SUBNETS" \
    WarehouseClientSecurityGroupId="$(stack_output warehouse WarehouseClientSecurityGroupId)" \
    WorkgroupEndpoint="$(stack_output warehouse WorkgroupEndpoint)" DatabaseName="$DATABASE" \
    DbtUserSecretArn="$DBT_SECRET" AlarmTopicArn="$(stack_output pipeline AlarmTopicArn)" \
    ScheduleExpression="${CAFE_DBT_SCHEDULE:-cron(30 10 * * ? *)}" \
    ScheduleTimezone="${CAFE_DBT_TIMEZONE:-Europe/London}"

if [ "${CAFE_DEPLOY_GRAFANA:-true}" = true ]; then
    deploy grafana grafana.yaml \
        DataKeyArn="$DATA_KEY" DeploymentBucket="$BUCKET" VpcId="$VPC_ID" \
        PublicSubnetId="$PUBLIC_SUBNET" AllowedCidr="${CAFE_GRAFANA_ALLOWED_CIDR:-127.0.0.1/32}" \
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
