# Shared by infra/deploy.sh and infra/destroy.sh (sourced, not run).

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# The aws CLI and working credentials, or a clear message and a non-zero exit.
require_aws() {
    command -v aws >/dev/null 2>&1 \
        || die "the aws CLI is not installed: see https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
    local identity
    identity=$(aws sts get-caller-identity --output text --query Arn 2>&1) \
        || die "no usable AWS credentials (aws sts get-caller-identity failed: ${identity##*$'\n'}). Configure a profile (aws configure sso / AWS_PROFILE) and retry."
    echo "AWS identity: $identity"
}

PROJECT=${CAFE_PROJECT:-cafe-elt}
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-eu-west-2}}
export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION
# Where Redshift Serverless exports its connection, user and user-activity logs (one log
# group per type for the whole account and region; Redshift creates them never-expiring).
REDSHIFT_LOG_GROUPS=(/aws/redshift/serverless/connectionlog /aws/redshift/serverless/userlog
    /aws/redshift/serverless/useractivitylog)

stack_name() { echo "$PROJECT-$1"; }

# stack_output STACK KEY: one output value of a deployed stack.
stack_output() {
    aws cloudformation describe-stacks --stack-name "$(stack_name "$1")" \
        --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}

stack_exists() {
    aws cloudformation describe-stacks --stack-name "$(stack_name "$1")" >/dev/null 2>&1
}

# The loader's SQS event source mapping as "UUID STATE", or nothing.
loader_trigger() {
    aws lambda list-event-source-mappings --function-name "$PROJECT-loader" \
        --query 'EventSourceMappings[0].[UUID, State]' --output text 2>/dev/null \
        | grep -v '^None' || true
}

# Delete every object version and delete marker of a bucket (versioned buckets).
empty_bucket() {
    local bucket=$1 batch
    aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1 || return 0
    while :; do
        batch=$(aws s3api list-object-versions --bucket "$bucket" --max-items 500 --output json \
            --query '{Objects: [Versions, DeleteMarkers][][].{Key: Key, VersionId: VersionId}}')
        if [ "$(echo "$batch" | tr -d ' \n')" = '{"Objects":[]}' ]; then break; fi
        aws s3api delete-objects --bucket "$bucket" --delete "$batch" >/dev/null
    done
}
