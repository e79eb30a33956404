#!/usr/bin/env bash
# Regenerates Sources/2-Adapters/CSIProtocol/*.pb.swift and *.grpc.swift from proto/*.proto (CSI v1, the v1alpha1
# provider API, grpc.health.v1 and kubelet's plugin registration v1).
#
# Needs protoc with the well-known types (Debian: protobuf-compiler libprotobuf-dev). The two Swift
# plugins are built in debug from scripts/protoc-plugins (about a minute), which avoids the slow
# SwiftPM build plugin. The output carries no timestamps: run with --check to fail when the committed
# files differ from what the protos generate.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
plugins="$root/scripts/protoc-plugins"
out="$root/Sources/2-Adapters/CSIProtocol"

(cd "$plugins" && swift build -q --product protoc-gen-swift && swift build -q --product protoc-gen-grpc-swift-2)
bin=$(cd "$plugins" && swift build --show-bin-path)

protoc -I "$root/proto" -I /usr/include \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --swift_opt=Visibility=Public --swift_out="$out" \
  --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
  --grpc-swift-2_opt=Visibility=Public --grpc-swift-2_out="$out" \
  "$root/proto/csi.proto" "$root/proto/provider.proto" "$root/proto/health.proto" \
  "$root/proto/pluginregistration.proto"

if [ "${1:-}" = "--check" ]; then
  git -C "$root" diff --exit-code -- Sources/2-Adapters/CSIProtocol
fi
