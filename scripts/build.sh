#!/usr/bin/env bash
# Configures and builds one flavour of kcache with ccache.
#   scripts/build.sh [release|asan] [ninja targets...]
# release: build/       optimised, -Werror, tests and benchmarks
# asan:    build-asan/  ASan+UBSan, -Werror, tests only
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
flavour="${1:-release}"
shift || true

# Outside the work tree, so fresh clones on the same machine (CI) reuse it.
export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kcache-ccache}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}"  # paths relative to the clone: clones share hits
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-3G}"
jobs="${KCACHE_JOBS:-$(nproc)}"

case "$flavour" in
  release)
    build="$root/build"
    options=(-DCMAKE_BUILD_TYPE=Release -DKCACHE_WERROR=ON -DKCACHE_BUILD_TESTS=ON -DKCACHE_BUILD_BENCH=ON)
    ;;
  asan)
    build="$root/build-asan"
    # -O1 keeps the sanitized build and its run reasonably fast.
    options=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DKCACHE_WERROR=ON
             -DKCACHE_SANITIZE=ON -DKCACHE_BUILD_TESTS=ON -DKCACHE_BUILD_BENCH=OFF)
    ;;
  *)
    echo "usage: scripts/build.sh [release|asan] [targets...]" >&2
    exit 2
    ;;
esac

cmake -S "$root" -B "$build" -G Ninja "${options[@]}" -DKCACHE_SKIP="${KCACHE_SKIP:-}" >/dev/null
ninja -C "$build" -j "$jobs" "$@"
