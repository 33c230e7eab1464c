# syntax=docker/dockerfile:1
# kcache image: cache-server (the admission webhook, watcher and GC) and cachectl.
#
#   docker build -t registry.example.com/kcache:0.1.0 .
#
# Build stage: the same Debian packages as a developer machine (scripts/packages.txt through
# scripts/install-deps.sh, one list). Runtime stage: Debian 12 slim with only the shared libraries
# of scripts/runtime-packages.txt, running as a non-root user.
ARG DEBIAN_IMAGE=debian:12
ARG DEBIAN_SLIM_IMAGE=debian:12-slim

FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY scripts/install-deps.sh scripts/packages.txt scripts/
RUN ./scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DKCACHE_BUILD_TESTS=OFF -DKCACHE_BUILD_BENCH=OFF \
    && cmake --build /build --target cache-server cachectl \
    && cmake --install /build --prefix /opt/kcache --strip \
    && mkdir -p /out \
    && for binary in cache-server cachectl; do \
         [ -x "/opt/kcache/bin/$binary" ] || { echo "build: $binary was not installed" >&2; exit 1; }; \
         cp "/opt/kcache/bin/$binary" "/out/$binary"; \
       done
# Every library the binaries need directly must come from a package the runtime stage installs.
RUN set -e; \
    wanted="$(grep -vE '^\s*(#|$)' scripts/runtime-packages.txt | awk '{print $1}')"; \
    for binary in /out/*; do \
      for soname in $(objdump -p "$binary" | awk '/NEEDED/ {print $2}'); do \
        path="$(ldconfig -p | awk -v so="$soname" '$1 == so {print $NF; exit}')"; \
        [ -n "$path" ] || { echo "runtime: $soname of $binary not found" >&2; exit 1; }; \
        real="$(realpath "$path")"; \
        pkg="$( (dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}") | head -n 1 | cut -d: -f1)"; \
        echo "$wanted" | grep -qxF "$pkg" || { echo "runtime: $binary needs $soname from $pkg, missing in scripts/runtime-packages.txt" >&2; exit 1; }; \
      done; \
    done

FROM ${DEBIAN_SLIM_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -q \
    && grep -vE '^\s*(#|$)' /tmp/runtime-packages.txt | awk '{print $1}' \
       | xargs apt-get install -y -q --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
    && groupadd --system --gid 65532 kcache \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
         --shell /usr/sbin/nologin kcache
COPY --from=build /out/cache-server /out/cachectl /usr/local/bin/
# Fails the build if a shared library is missing at run time.
RUN cache-server --help >/dev/null && cachectl --help >/dev/null
USER 65532:65532
# glibc keeps more freed blocks per thread for reuse: ~10% less CPU per cache hit, no more memory
# (webhook/README.md, Figures). A Deployment may override it.
ENV GLIBC_TUNABLES=glibc.malloc.tcache_count=2000
# 8443: TLS admission webhook (/mutate). 8080: plain HTTP /healthz, /readyz, /metrics.
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/cache-server"]
