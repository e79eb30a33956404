#!/usr/bin/env bash
# Builds the driver binary as the container image ships it: release, Swift runtime linked statically, stripped.
# The Dockerfile runs exactly this script; CI runs it too, so the image's build step is exercised.
# Usage: scripts/build-release.sh [OUT_DIR]   (default: .build-image)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.build-image}"
swift build -c release --static-swift-stdlib --product secrets-store-csi-driver
mkdir -p "$out"
install -m 0755 "$(swift build -c release --show-bin-path)/secrets-store-csi-driver" "$out/secrets-store-csi-driver"
strip "$out/secrets-store-csi-driver"
"$out/secrets-store-csi-driver" --version
