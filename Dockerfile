# Multi-stage image for the driver. It cannot be built on the development machines (no Docker engine there);
# its build steps are the ones .ci/run exercises: `swift build` of the same package, release configuration.
FROM swift:6.3-bookworm AS build
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY proto ./proto
RUN swift build -c release --static-swift-stdlib --product secrets-store-csi-driver \
 && install -D "$(swift build -c release --show-bin-path)/secrets-store-csi-driver" /out/secrets-store-csi-driver \
 && strip /out/secrets-store-csi-driver

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/secrets-store-csi-driver /usr/local/bin/secrets-store-csi-driver
# Runs as root: mount(2) of tmpfs needs CAP_SYS_ADMIN in a privileged container (see the chart). The process
# opens no port to the outside but /metrics and /healthz.
ENTRYPOINT ["/usr/local/bin/secrets-store-csi-driver"]
