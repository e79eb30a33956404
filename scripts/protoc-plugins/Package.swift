// swift-tools-version:6.1
// Builds only the two protoc plugins used by scripts/generate-protos.sh.
// Kept apart from the product package so the product never pays for the protoc build plugin.
import PackageDescription

let package = Package(
    name: "protoc-plugins",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
    ],
    targets: []
)
