#!/usr/bin/env bash
# Builds the real programs the cluster tests run, from the Go wrapper modules beside this script:
#
#   tests/cluster/build-programs.sh [wrapper...]     (default: every wrapper)
#
#   kubernetes/  kube-apiserver, kube-controller-manager   (k8s.io/kubernetes)
#   etcd/        etcd                                      (go.etcd.io/etcd/server/v3)
#   argo-v4/     workflow-controller of Argo 4.0           (github.com/argoproj/argo-workflows/v4)
#   argo-v3/     workflow-controller of Argo 3.7           (github.com/argoproj/argo-workflows/v3)
#
# Everything comes from the Go module proxy through the committed go.mod/go.sum (-mod=readonly:
# a module whose hash is not in go.sum fails the build). Binaries land in
# ~/.cache/kcache-cluster/bin/<wrapper>-<key>/, where <key> hashes the wrapper's go.mod and go.sum,
# the Go version and the build flags, so a second run with nothing changed builds nothing and
# prints the folder at once. Prints, as its last line per wrapper, "<wrapper> <folder>".
#
# Builds run under `nice` so the C++ builds sharing the machine keep their share. Go's own build
# cache (~/.cache/go-build) also survives between runs, so a changed wrapper rebuilds only what
# changed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_bin="${KCACHE_GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[ -x "$go_bin" ] || { echo "build-programs: no Go toolchain (looked for go on PATH and /usr/local/go/bin/go)" >&2; exit 1; }
cache_root="${KCACHE_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kcache-cluster}"

# Packages and version stamps per wrapper. The stamps make `kube-apiserver --version` and
# Argo's startup log name the release instead of a development placeholder.
packages_of() {
  case "$1" in
    kubernetes) echo "k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager" ;;
    etcd) echo "go.etcd.io/etcd/server/v3" ;;
    argo-v4) echo "github.com/argoproj/argo-workflows/v4/cmd/workflow-controller" ;;
    argo-v3) echo "github.com/argoproj/argo-workflows/v3/cmd/workflow-controller" ;;
    *) echo "build-programs: unknown wrapper '$1'" >&2; return 1 ;;
  esac
}

required_version() { # module version the wrapper requires, from its go.mod
  awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m && $2 ~ /^v/ {print $2}' "$here/$1/go.mod" | head -1
}

ldflags_of() {
  local v
  case "$1" in
    kubernetes)
      v="$(required_version kubernetes k8s.io/kubernetes)"
      local minor="${v#v1.}"
      minor="${minor%%.*}"
      echo "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1" \
        "-X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
      ;;
    argo-v4)
      v="$(required_version argo-v4 github.com/argoproj/argo-workflows/v4)"
      echo "-s -w -X github.com/argoproj/argo-workflows/v4.version=$v"
      ;;
    argo-v3)
      v="$(required_version argo-v3 github.com/argoproj/argo-workflows/v3)"
      echo "-s -w -X github.com/argoproj/argo-workflows/v3.version=$v"
      ;;
    *) echo "-s -w" ;;
  esac
}

build_one() {
  local wrapper="$1" packages ldflags key out
  packages="$(packages_of "$wrapper")"
  ldflags="$(ldflags_of "$wrapper")"
  key="$( (cat "$here/$wrapper/go.mod" "$here/$wrapper/go.sum"; "$go_bin" version; echo "$packages $ldflags pgo=off cgo=0") |
    sha256sum | cut -c1-16)"
  out="$cache_root/bin/$wrapper-$key"
  if [ -f "$out/.complete" ]; then
    echo "$wrapper $out"
    return 0
  fi
  local started=$SECONDS
  echo "build-programs: building $wrapper ($packages) into $out; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  rm -rf "$out"
  mkdir -p "$out"
  # shellcheck disable=SC2086 # the package list is one word per package
  (cd "$here/$wrapper" &&
    nice -n 10 env CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
      "$go_bin" build -trimpath -pgo=off -ldflags="$ldflags" -o "$out/" $packages)
  # go build names a main package ending in /v3 after the element before it.
  if [ "$wrapper" = etcd ]; then mv "$out/server" "$out/etcd"; fi
  date -u +%FT%TZ >"$out/.complete"
  echo "build-programs: built $wrapper in $((SECONDS - started)) s; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  echo "$wrapper $out"
}

# One build at a time into the cache (two test runs starting together wait for each other).
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9

wrappers=("$@")
[ "${#wrappers[@]}" -gt 0 ] || wrappers=(etcd kubernetes argo-v4 argo-v3)
for w in "${wrappers[@]}"; do
  build_one "$w"
done
