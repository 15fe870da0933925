#!/usr/bin/env bash
# Packages the service offline with osls and lints the generated CloudFormation.
# osls honours AWS_ENDPOINT_URL*: clear them so a sandbox endpoint never leaks into packaging.
set -euo pipefail
cd "$(dirname "$0")/.."
for v in $(compgen -e); do [[ "$v" == AWS_ENDPOINT_URL* ]] && unset "$v"; done
export SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off
# Alarms are generated per cluster named in the `clusters` parameter; package with one example
# cluster (QK_CLUSTERS) so the alarms are in the template cfn-lint checks.
npx osls package --stage "${STAGE:-dev}" --region "${REGION:-eu-west-1}" --param "clusters=${QK_CLUSTERS:-prod}"
command -v cfn-lint >/dev/null || { echo "cfn-lint is not installed (expected preinstalled; see README Requirements)" >&2; exit 1; }
# W3005: the framework itself adds DependsOn on the role it also references with GetAtt.
cfn-lint --ignore-checks W3005 -- .serverless/cloudformation-template-update-stack.json
for z in .serverless/*.zip; do
  printf 'packaged %s (%s bytes)\n' "$z" "$(stat -c %s "$z")"
done
echo "cfn-lint: template OK"
