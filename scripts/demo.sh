#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and shows kcache at work on a
# realistic Kubeflow Pipelines v1 step pod.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh
bash scripts/build.sh release cachectl >/dev/null
cachectl="$root/build/cmd/cachectl/cachectl"
pod="$root/tests/data/pods/kfp-v1-step.yaml"

echo
echo "== The execution key of a pipeline step (tests/data/pods/kfp-v1-step.yaml)"
echo "   Computed from the pod's ARGO_TEMPLATE exactly as Kubeflow Pipelines does, so entries"
echo "   that Kubeflow's own cache server wrote keep matching:"
"$cachectl" key --pod "$pod"
echo
echo "== What is hashed (the kept template fields, serialized as Go's encoding/json does):"
"$cachectl" key --pod "$pod" --canonical | tail -n 1 | cut -c1-300
echo "   ..."
echo
echo "== Another run of the same step (new archive location, same container): same key"
sed 's/7xk2p\/2023\/06\/01/9zq4r\/2024\/01\/02/' "$pod" >"$root/build/other-run.yaml"
"$cachectl" key --pod "$root/build/other-run.yaml"
echo
echo "== A template that is not valid JSON has no key; kcache lets such a pod through untouched:"
printf '{"container": {"image": "x",}}' >"$root/build/broken-template.json"
"$cachectl" key --template "$root/build/broken-template.json" || echo "   (exit code $?)"
