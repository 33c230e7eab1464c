#!/usr/bin/env bash
# Runs the cluster tests (tests/cluster/test_*.py): kcache against a real kube-apiserver, etcd,
# kube-controller-manager and Argo's workflow-controller, all built from their Go modules.
#
#   tests/cluster/run.sh [pytest arguments]      e.g. -k restricted, -x
#
# Needs the release build of cache-server (bash scripts/build.sh release cache-server cachectl),
# Go (go on PATH or /usr/local/go/bin/go), PostgreSQL 15, openssl, npm (helm) and python3-pytest
# (scripts/install-deps.sh). Builds the Go programs first when they are not cached yet
# (tests/cluster/build-programs.sh; the first build takes long, later runs build nothing). Any
# part that cannot be built or started fails the run; nothing is skipped.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=$SECONDS
bash "$here/build-programs.sh" >/dev/null
echo "cluster tests: programs ready after $((SECONDS - started)) s"
cd "$here"
# Debian's interpreter, which has python3-pytest and python3-yaml from scripts/packages.txt.
exec /usr/bin/python3 -m pytest -p no:cacheprovider -v -rfE --durations=0 "$@"
