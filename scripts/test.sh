#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, builds with -Werror, runs every
# test, runs kcache against a real control plane (tests/cluster), runs the unit tests again under
# ASan+UBSan, checks formatting, fuzzes for 60 s, checks the chart.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started=$(date +%s)
step() { printf '\n==> %s (%ds)\n' "$*" "$(($(date +%s) - started))"; }

step "install dependencies"
bash scripts/install-deps.sh

step "format check (clang-format, .clang-format)"
mapfile -t sources < <(git ls-files -- '*.cpp' '*.h')
if ! clang-format --dry-run --Werror "${sources[@]}"; then
  echo "format check failed: run clang-format -i on the files above" >&2
  exit 1
fi

step "release build (-Wall -Wextra -Werror)"
bash scripts/build.sh release

step "tests"
ctest --test-dir build --output-on-failure --no-tests=error -j "$(nproc)"

step "the demo, end to end (scripts/demo.sh checks its own miss, record, hit, explain, stats)"
bash scripts/demo.sh

step "cluster tests: a real kube-apiserver, etcd and Argo controllers built from their Go modules (tests/cluster)"
bash tests/cluster/run.sh

step "sanitizer build (ASan+UBSan)"
bash scripts/build.sh asan

step "tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS="suppressions=$root/tests/support/lsan.supp:print_suppressions=0" \
  ctest --test-dir build-asan --output-on-failure --no-tests=error -j "$(nproc)"

step "fuzzing"
bash scripts/fuzz.sh

step "Helm chart, manifests, and the real cache-server started with their arguments"
KCACHE_SERVER_BIN="$root/build/cmd/cache-server/cache-server" KCACHE_CACHECTL_BIN="$root/build/cmd/cachectl/cachectl" \
  KCACHE_REQUIRE_SERVER_BIN=1 bash scripts/helm-check.sh

step "all checks passed in $(($(date +%s) - started)) s"
