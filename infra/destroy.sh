#!/usr/bin/env bash
# Remove cafe-elt from AWS (make destroy), in the reverse order of deploy.sh.
#
# Plain destroy deletes grafana, dbt-runner, pipeline, warehouse and network, after a
# final snapshot of the warehouse (kept CAFE_FINAL_SNAPSHOT_DAYS [30] days), and keeps the
# foundation stack: the landing bucket (the branch exports), the event queues, the
# card-hash key and the KMS key that encrypts it, the deployment bucket. `make deploy`
# later picks them up as they are, so hashes made after a redeploy still match old ones.
#
# CAFE_DESTROY_DATA=yes deletes everything, whether or not a plain destroy ran before:
# the stacks that are left, the foundation stack (its buckets emptied first, the card-hash
# key deleted without a recovery window, the KMS key scheduled for deletion after AWS's
# 7-30-day waiting period, here 30), and every final snapshot of this project.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

require_aws
DESTROY_DATA=${CAFE_DESTROY_DATA:-no}

# Secrets deleted by CloudFormation may wait out a recovery window under their names, which
# would block the next deploy's secrets of the same names: delete them for good first.
delete_stack_secrets() {  # delete_stack_secrets STACK
    local secret
    for secret in $(aws cloudformation describe-stack-resources --stack-name "$(stack_name "$1")" \
        --query "StackResources[?ResourceType=='AWS::SecretsManager::Secret'].PhysicalResourceId" \
        --output text); do
        aws secretsmanager delete-secret --secret-id "$secret" \
            --force-delete-without-recovery >/dev/null
    done
}

remove() {  # remove STACK
    stack_exists "$1" || return 0
    echo "==> deleting stack $(stack_name "$1")"
    delete_stack_secrets "$1"
    aws cloudformation delete-stack --stack-name "$(stack_name "$1")"
    aws cloudformation wait stack-delete-complete --stack-name "$(stack_name "$1")"
}

final_snapshot() {  # a dated snapshot of the namespace, waited for until it is usable
    local namespace snapshot status=""
    namespace=$(stack_output warehouse NamespaceName)
    snapshot="$PROJECT-final-$(date -u +%Y%m%d-%H%M%S)"
    echo "==> final snapshot $snapshot of namespace $namespace"
    aws redshift-serverless create-snapshot --namespace-name "$namespace" \
        --snapshot-name "$snapshot" --retention-period "${CAFE_FINAL_SNAPSHOT_DAYS:-30}" >/dev/null
    for _ in $(seq 120); do
        status=$(aws redshift-serverless get-snapshot --snapshot-name "$snapshot" \
            --query snapshot.status --output text)
        [ "$status" = AVAILABLE ] && break
        sleep 10
    done
    [ "$status" = AVAILABLE ] || die "snapshot $snapshot is $status, not AVAILABLE: warehouse kept"
    FINAL_SNAPSHOT=$snapshot
}

FINAL_SNAPSHOT=""
remove grafana
remove dbt-runner
remove pipeline
if stack_exists warehouse && [ "$DESTROY_DATA" != yes ]; then final_snapshot; fi
remove warehouse
remove network

if [ "$DESTROY_DATA" = yes ]; then
    for snapshot in $(aws redshift-serverless list-snapshots \
        --query "snapshots[?starts_with(snapshotName, '$PROJECT-final-')].snapshotName" \
        --output text); do
        echo "==> deleting snapshot $snapshot"
        aws redshift-serverless delete-snapshot --snapshot-name "$snapshot" >/dev/null
    done
    if stack_exists foundation; then
        echo "==> deleting the data: landing and deployment buckets, card-hash key, KMS key"
        aws cloudformation update-termination-protection --no-enable-termination-protection \
            --stack-name "$(stack_name foundation)" >/dev/null
        empty_bucket "$(stack_output foundation LandingBucketName)"
        empty_bucket "$(stack_output foundation DeploymentBucketName)"
        DATA_KEY=$(stack_output foundation DataKeyArn)
        remove foundation
        echo "Deleted. The KMS key $DATA_KEY is pending deletion for 30 days"
        echo "(aws kms cancel-key-deletion --key-id $DATA_KEY undoes it until then)."
    else
        echo "Nothing of $PROJECT's data is left in $REGION (no foundation stack)."
    fi
    echo "Left on purpose: the account-wide Redshift Serverless log groups"
    echo "(${REDSHIFT_LOG_GROUPS[*]}), which expire under their retention."
else
    echo
    echo "Kept, with the foundation stack $(stack_name foundation) (CAFE_DESTROY_DATA=yes deletes them):"
    if stack_exists foundation; then
        echo "  s3://$(stack_output foundation LandingBucketName)   the branch exports (S3 storage)"
        echo "  s3://$(stack_output foundation DeploymentBucketName)   artefacts and dbt artifacts"
        echo "  $(stack_output foundation CardKeySecretArn)   card-hash key (\$0.40/month)"
        echo "  $(stack_output foundation DataKeyArn)   KMS key that encrypts it (\$1/month)"
        echo "  the landing event queue and its dead-letter queue (events wait up to 4 days)"
    fi
    if [ -n "$FINAL_SNAPSHOT" ]; then
        echo "  Redshift snapshot $FINAL_SNAPSHOT (${CAFE_FINAL_SNAPSHOT_DAYS:-30} days; storage billed)"
    fi
fi
echo "Destroyed $PROJECT in $REGION."
