#!/usr/bin/env bash
# The scheduled dbt build, as CodeBuild runs it (infra/dbt-runner/scheduled-build.yml), from
# the root of the dbt source zip:
#
#   scheduled-build.sh build     dbt source freshness (a failure is reported, never fatal),
#                                dbt build --target prod --selector scheduled_build (--full-refresh
#                                when CAFE_DBT_FULL_REFRESH=true), dbt docs generate --static
#                                from the build's own manifest (--no-compile);
#                                each artifact is copied aside as soon as it is written,
#                                because the next dbt command overwrites run_results.json;
#                                dbt's file log keeps warnings and errors only (see below);
#                                dbt runs through frozen-dbt.py (its own command line, with
#                                what its import built kept out of the garbage collector)
#   scheduled-build.sh publish   every artifact to $CAFE_DBT_ARTIFACTS_URI/runs/<UTC time>-<build>/,
#                                and to $CAFE_DBT_ARTIFACTS_URI/latest/ only when the build
#                                succeeded: slim CI defers to latest/manifest.json and the
#                                docs site is latest/static_index.html
#
# Settings: DBT_PYTHON [python3] (the Python dbt is installed in), CAFE_DBT_TARGET [prod],
# CAFE_DBT_FULL_REFRESH [false],
# CAFE_DBT_ARTIFACTS_DIR [/tmp/dbt-artifacts], CAFE_DBT_ARTIFACTS_URI (publish),
# CODEBUILD_BUILD_SUCCEEDING and CODEBUILD_BUILD_NUMBER (set by CodeBuild).
set -euo pipefail

DBT_PYTHON=${DBT_PYTHON:-python3}
FROZEN_DBT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/frozen-dbt.py"
TARGET=${CAFE_DBT_TARGET:-prod}
ARTIFACTS=${CAFE_DBT_ARTIFACTS_DIR:-/tmp/dbt-artifacts}
PUBLISHED=(sources.json manifest.json run_results.json catalog.json static_index.html)

dbt() {  # dbt ARGS...: what `dbt ARGS` does, about 0.7 s sooner (frozen-dbt.py says why)
    "$DBT_PYTHON" "$FROZEN_DBT" "$@"
}

keep() {  # keep FILE...: copy what dbt wrote into the artifacts folder
    local name
    for name in "$@"; do
        if [ -f "target/$name" ]; then cp "target/$name" "$ARTIFACTS/$name"; fi
    done
}

build() {
    mkdir -p "$ARTIFACTS"
    cd dbt_project
    dbt --version
    local freshness=0 status=0
    # --log-level-file warn, in each command: CodeBuild keeps what dbt prints (info, each
    # node's result and every error); the file log stays in the container, which is thrown
    # away, and at debug level it formatted and wrote every statement of every node, about
    # 0.4 s of each daily build of 6 s. Warnings and errors still reach it.
    dbt source freshness --target "$TARGET" --log-level-file warn || freshness=$?
    keep sources.json
    if [ "$freshness" -ne 0 ]; then
        echo "scheduled-build: source freshness failed (exit $freshness): a source is late;" \
            "building anyway, sources.json says which" >&2
    fi
    # Selector scheduled_build (dbt_project/selectors.yml): everything but the unit tests
    # (the models' logic on fixed rows, which dbt advises leaving out of production builds)
    # and the seeds' own tests (fixed CSV files). No day's data can change their outcome: CI
    # and every developer's `dbt build` run them; each build is spared 17 nodes.
    local flags=(--selector scheduled_build --log-level-file warn)
    if [ "${CAFE_DBT_FULL_REFRESH:-false}" = true ]; then flags+=(--full-refresh); fi
    dbt build --target "$TARGET" "${flags[@]}" || status=$?
    keep manifest.json run_results.json
    # The docs describe whatever the build left; their failure must not hide the build's.
    # --no-compile: the build just compiled every node into target/manifest.json; compiling
    # them again would repeat each model's introspective queries against the warehouse.
    if dbt docs generate --target "$TARGET" --static --no-compile --log-level-file warn; then
        keep catalog.json static_index.html
    else
        echo "scheduled-build: dbt docs generate failed; the previous docs site stays" >&2
    fi
    return "$status"
}

publish() {
    local destination=${CAFE_DBT_ARTIFACTS_URI:?CAFE_DBT_ARTIFACTS_URI is not set}
    local run name
    run="$destination/runs/$(date -u +%Y-%m-%dT%H%M%SZ)-${CODEBUILD_BUILD_NUMBER:-manual}"
    for name in "${PUBLISHED[@]}"; do
        [ -f "$ARTIFACTS/$name" ] || continue
        aws s3 cp --only-show-errors "$ARTIFACTS/$name" "$run/$name"
    done
    echo "scheduled-build: artifacts in $run/"
    if [ "${CODEBUILD_BUILD_SUCCEEDING:-0}" != 1 ]; then
        echo "scheduled-build: the build failed; $destination/latest/ keeps the last good build" >&2
        return 0
    fi
    for name in "${PUBLISHED[@]}"; do
        [ -f "$ARTIFACTS/$name" ] || continue
        aws s3 cp --only-show-errors "$ARTIFACTS/$name" "$destination/latest/$name"
    done
    echo "scheduled-build: $destination/latest/ updated"
}

case "${1:-}" in
    build) build ;;
    publish) publish ;;
    *) echo "usage: $0 build|publish" >&2; exit 2 ;;
esac
