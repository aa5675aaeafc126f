#!/usr/bin/env bash
# cloudwatch-dashboard.sh: fills dashboards/cloudwatch/longwave.json with a stack's names and
# creates or updates the CloudWatch dashboard.
#
#   deploy/cloudwatch-dashboard.sh STACK [DASHBOARD_NAME]   put the dashboard (default name: STACK)
#   deploy/cloudwatch-dashboard.sh --print STACK            print the filled body, put nothing
#
# The body's placeholders are the stack's outputs (deploy/longwave.yaml) plus the region:
#   ${Region} ${QueueName} ${DeadLetterQueueName} ${ClusterName} ${ServiceName} ${LogGroup}
#   ${TargetBacklogPerTask}
# Each is read from the environment variable of the same name when set, else from the stack's
# outputs (aws cloudformation describe-stacks); the region from AWS_REGION, AWS_DEFAULT_REGION or
# the CLI's configuration. Needs the aws CLI and credentials unless every value is in the env.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "cloudwatch-dashboard: $*" >&2; exit 1; }

print_only=false
if [ "${1:-}" = "--print" ]; then
    print_only=true
    shift
fi
stack="${1:-}"
[ -n "$stack" ] || die "usage: $0 [--print] STACK [DASHBOARD_NAME]"
name="${2:-$stack}"

output() {
    aws cloudformation describe-stacks --stack-name "$stack" \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

body=$(cat dashboards/cloudwatch/longwave.json)
for key in Region QueueName DeadLetterQueueName ClusterName ServiceName LogGroup TargetBacklogPerTask; do
    value="${!key:-}"
    if [ -z "$value" ]; then
        if [ "$key" = Region ]; then
            value="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}"
        else
            value=$(output "$key") || die "cannot read the output $key of stack $stack"
        fi
    fi
    [ -n "$value" ] && [ "$value" != None ] || die "no value for \${$key} (stack $stack)"
    body="${body//"\${$key}"/$value}"
done
# shellcheck disable=SC2016 # the quotes are literal: looking for a ${ left in the body
case "$body" in
    *'${'*) die "a placeholder is left in the body: $(grep -o '\${[A-Za-z]*}' <<<"$body" | sort -u | tr '\n' ' ')" ;;
esac

if $print_only; then
    printf '%s\n' "$body"
else
    aws cloudwatch put-dashboard --dashboard-name "$name" --dashboard-body "$body"
    echo "cloudwatch-dashboard: put $name" >&2
fi
