#!/usr/bin/env bash
# Builds the driver binary as the container image ships it: release, Swift runtime linked statically, stripped.
# The Dockerfile runs exactly this script; CI runs it too, so the image's build step is exercised.
# Usage: scripts/build-release.sh [OUT_DIR]   (default: .build-image)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.build-image}"
# Every function and C object in a section of its own, so the linker can drop what nothing calls and place the
# functions start-up touches next to each other (scripts/startup-symbol-order.txt, lld, see Package.swift).
# scripts/bench.sh builds with the same flags, so both share one release build.
release_flags=(-c release --static-swift-stdlib
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections)
swift build "${release_flags[@]}" --product secrets-store-csi-driver
mkdir -p "$out"
install -m 0755 "$(swift build "${release_flags[@]}" --show-bin-path)/secrets-store-csi-driver" "$out/secrets-store-csi-driver"
strip "$out/secrets-store-csi-driver"
"$out/secrets-store-csi-driver" --version
