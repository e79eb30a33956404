# Multi-stage image for the driver. It cannot be built on the development machines (no Docker engine there);
# its build step is scripts/build-release.sh, which .ci/run also runs, so CI exercises it.
FROM swift:6.3-bookworm AS build
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY proto ./proto
COPY scripts/build-release.sh scripts/startup-symbol-order.txt ./scripts/
COPY scripts/static-libstdcxx ./scripts/static-libstdcxx
RUN scripts/build-release.sh /out

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/secrets-store-csi-driver /usr/local/bin/secrets-store-csi-driver
# Runs as root: mount(2) of tmpfs needs CAP_SYS_ADMIN in a privileged container (see the chart). The process
# opens no port to the outside but /metrics and /healthz.
ENTRYPOINT ["/usr/local/bin/secrets-store-csi-driver"]
