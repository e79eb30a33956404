#!/usr/bin/env bash
# The benchmark, in release: the driver as the image ships it (scripts/build-release.sh: static Swift runtime,
# stripped) run as its own process, against the Key Vault emulator and the fake Kubernetes API hosted by csi-bench.
# Prints the table (each figure next to a floor measured in the same run) and writes JSON.
# Run as root for real tmpfs mounts. Round trips need Python grpcio (pip install grpcio).
# Usage: scripts/bench.sh [ITERATIONS] [JSON_PATH] [--only controller]   (defaults: 300, benchmark-results.json)
set -euo pipefail
cd "$(dirname "$0")/.."
iterations="${1:-300}"
json="${2:-benchmark-results.json}"
scripts/build-release.sh .build-image >/dev/null
# Same compile flags as the image build, so the two share one release build. The driver target alone gets the
# release linker settings of Package.swift (lld, packed relocations, no exported symbols, start-up ordering);
# the floor server in csi-bench is linked as SwiftPM links by default.
release_flags=(-c release --static-swift-stdlib
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections)
swift build "${release_flags[@]}" --product csi-bench
"$(swift build "${release_flags[@]}" --show-bin-path)/csi-bench" --iterations "$iterations" --json "$json" \
  --driver .build-image/secrets-store-csi-driver "${@:3}"
