#!/usr/bin/env bash
# Remove cafe-elt from AWS (make destroy), in the reverse order of deploy.sh.
#
# Kept unless CAFE_DESTROY_DATA=yes: the landing bucket (the branch exports, from which the
# warehouse can be rebuilt), the card-hash key secret (without it new hashes no longer
# match old ones) and the KMS key that encrypts that secret. With CAFE_DESTROY_DATA=yes the
# bucket is emptied and deleted, the secret deleted at once and the key scheduled for
# deletion (30 days). The warehouse itself is deleted with its stack.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

require_aws
ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
LANDING_BUCKET="$PROJECT-landing-$ACCOUNT-$REGION"

remove() {  # remove STACK
    stack_exists "$1" || return 0
    echo "==> deleting stack $(stack_name "$1")"
    aws cloudformation delete-stack --stack-name "$(stack_name "$1")"
    aws cloudformation wait stack-delete-complete --stack-name "$(stack_name "$1")"
}

CARD_SECRET=""
stack_exists pipeline && CARD_SECRET=$(stack_output pipeline CardKeySecretArn)
DATA_KEY=""
stack_exists foundation && DATA_KEY=$(stack_output foundation DataKeyArn)

remove grafana
remove dbt-runner
remove pipeline
remove warehouse
remove network
if stack_exists foundation; then
    empty_bucket "$(stack_output foundation DeploymentBucketName)"
fi
remove foundation

if [ "${CAFE_DESTROY_DATA:-no}" = yes ]; then
    echo "==> deleting the landing bucket, the card-hash key and the data key"
    empty_bucket "$LANDING_BUCKET"
    aws s3api delete-bucket --bucket "$LANDING_BUCKET" 2>/dev/null || true
    [ -n "$CARD_SECRET" ] && aws secretsmanager delete-secret --secret-id "$CARD_SECRET" \
        --force-delete-without-recovery >/dev/null
    [ -n "$DATA_KEY" ] && aws kms schedule-key-deletion --key-id "$DATA_KEY" \
        --pending-window-in-days 30 >/dev/null
else
    echo
    echo "Kept (CAFE_DESTROY_DATA=yes removes them):"
    echo "  s3://$LANDING_BUCKET            the branch exports (S3 storage is billed)"
    echo "  ${CARD_SECRET:-the secret $PROJECT/card-hash-key}   card-hash key (\$0.40/month)"
    echo "  ${DATA_KEY:-the KMS key alias/$PROJECT-data}   encrypts that secret (\$1/month)"
fi
echo "Destroyed $PROJECT in $REGION."
