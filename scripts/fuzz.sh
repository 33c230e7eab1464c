#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS (default 60) from the
# committed corpus. New inputs go to a scratch copy, so the committed corpus stays small.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
build="$root/build-fuzz"

CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DKCACHE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKCACHE_WERROR=ON >/dev/null
ninja -C "$build" fuzz_execution_key

work="$build/corpus-work"
rm -rf "$work" && mkdir -p "$work" && cp "$root"/tests/fuzz/corpus/* "$work"/
artifacts="$build/artifacts" && mkdir -p "$artifacts"
echo "fuzz: running fuzz_execution_key for ${seconds}s"
# -rss_limit_mb keeps within the machine's budget; a finding exits non-zero and fails the run.
ASAN_OPTIONS="quarantine_size_mb=32:malloc_context_size=8${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
  "$build/tests/fuzz/fuzz_execution_key" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=768 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 "$work" 2>&1 | tail -n 25
echo "fuzz: fuzz_execution_key ran ${seconds}s without a finding"
