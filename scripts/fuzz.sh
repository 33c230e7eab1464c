#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS (default 60) from its
# committed corpus. New inputs go to a scratch copy, so the committed corpora stay small.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
build="$root/build-fuzz"
# Outside the work tree, so fresh clones on the same machine (CI) reuse it.
export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kcache-ccache}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}"  # paths relative to the clone: clones share hits

CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DKCACHE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKCACHE_WERROR=ON >/dev/null
ninja -C "$build" fuzz_execution_key fuzz_admission

run_fuzzer() {
  local name="$1"
  shift
  local work="$build/corpus-$name" artifacts="$build/artifacts-$name"
  rm -rf "$work" && mkdir -p "$work" "$artifacts"
  cp "$@" "$work"/
  echo "fuzz: running $name for ${seconds}s from $# seed inputs"
  # A small ASan quarantine and -rss_limit_mb keep the fuzzer within a few hundred MB; a finding
  # exits non-zero and fails the run.
  ASAN_OPTIONS="quarantine_size_mb=32:malloc_context_size=8${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    "$build/tests/fuzz/$name" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=768 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$work" 2>&1 | tail -n 6
  echo "fuzz: $name ran ${seconds}s without a finding"
}

run_fuzzer fuzz_execution_key "$root"/tests/fuzz/corpus/*
run_fuzzer fuzz_admission "$root"/tests/data/admission/*.json
