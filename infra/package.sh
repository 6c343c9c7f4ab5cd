#!/usr/bin/env bash
# Build the Lambda artefact and the dbt source zip reproducibly (see infra/package.py).
# Usage: infra/package.sh [lambda|dbt|all] [--out DIR]     (make package calls it)
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" infra/package.py "$@"
