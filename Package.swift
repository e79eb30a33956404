// swift-tools-version:6.1
import PackageDescription

/// Settings shared by every target: Swift 6 language mode with strict concurrency and explicit existentials.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "secrets-store-csi-driver-swift",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "secrets-store-csi-driver", targets: ["secrets-store-csi-driver"]),
        .executable(name: "keyvault-emulator", targets: ["keyvault-emulator"]),
        .executable(name: "secrets-store-csi-demo", targets: ["secrets-store-csi-demo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2", exact: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", exact: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates", exact: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", exact: "1.7.4"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
    ],
    targets: [
        // Generated wire types: CSI v1 (Identity + Node) and the v1alpha1 provider API. Regenerate with
        // scripts/generate-protos.sh; never edit by hand.
        .target(
            name: "CSIProtocol",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Domain values, the publish/unpublish pipeline, the atomic writer and the seam protocols.
        // No gRPC, no NIO, no HTTP: its tests build fast and need no root.
        .target(
            name: "SecretsStoreCore",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Kubernetes REST client (in-cluster or kubeconfig) over AsyncHTTPClient.
        .target(
            name: "SecretsStoreKubernetes",
            dependencies: [
                "SecretsStoreCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // The built-in Azure Key Vault provider: parameters, Entra ID / IMDS tokens, Key Vault REST, file contents.
        .target(
            name: "SecretsStoreAzure",
            dependencies: [
                "SecretsStoreCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // A small HTTP/1.1 server (plain or TLS) for the metrics listener and the test doubles of HTTP services.
        .target(
            name: "SecretsStoreHTTPServer",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // Prometheus metrics and the /metrics + /healthz listener.
        .target(
            name: "SecretsStoreObservability",
            dependencies: [
                "SecretsStoreCore",
                "SecretsStoreHTTPServer",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // A faithful stand-in for Key Vault, Entra ID and IMDS over HTTPS, for tests, benchmarks and the demo.
        .target(
            name: "KeyVaultEmulator",
            dependencies: [
                "SecretsStoreHTTPServer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // Linux system calls: tmpfs mount/unmount, /proc/self/mountinfo, POSIX file operations.
        .target(
            name: "SecretsStoreLinux",
            dependencies: ["SecretsStoreCore"],
            swiftSettings: swiftSettings
        ),
        // Everything that speaks gRPC: CSI Identity + Node services, the error mapping, the request log
        // sanitizer, and the client for external v1alpha1 providers on Unix sockets.
        .target(
            name: "SecretsStoreCSI",
            dependencies: [
                "SecretsStoreCore",
                "CSIProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Test doubles and harnesses shared by the test targets (and the demo): fake Kubernetes API server,
        // test provider on a Unix socket, in-memory file system, recording mounter, manual clock.
        .target(
            name: "SecretsStoreTesting",
            dependencies: [
                "SecretsStoreCore",
                "SecretsStoreCSI",
                "SecretsStoreLinux",
                "SecretsStoreHTTPServer",
                "CSIProtocol",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Deterministic mutation fuzzing of the parsers and validators that take outside input, over the
        // production code paths; run bounded by FuzzTests and for as long as wanted by csi-fuzz.
        .target(
            name: "SecretsStoreFuzzing",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreAzure", "SecretsStoreCSI", "SecretsStoreKubernetes", "CSIProtocol",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "csi-fuzz",
            dependencies: ["SecretsStoreFuzzing", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "secrets-store-csi-driver",
            dependencies: [
                "SecretsStoreCore",
                "SecretsStoreAzure",
                "SecretsStoreObservability",
                "SecretsStoreCSI",
                "SecretsStoreKubernetes",
                "SecretsStoreLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "keyvault-emulator",
            dependencies: [
                "KeyVaultEmulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // The two-command demo: emulator + driver on a temporary socket + a kubelet-like client.
        .executableTarget(
            name: "secrets-store-csi-demo",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreCSI", "SecretsStoreKubernetes", "SecretsStoreLinux", "SecretsStoreAzure",
                "SecretsStoreTesting", "KeyVaultEmulator", "CSIProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // Benchmarks: figures printed next to a floor measured in the same run (see BENCHMARKS.md).
        .executableTarget(
            name: "csi-bench",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreCSI", "SecretsStoreKubernetes", "SecretsStoreLinux",
                "SecretsStoreTesting", "CSIProtocol", "SecretsStoreAzure", "KeyVaultEmulator",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SecretsStoreCoreTests",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreLinux", "SecretsStoreTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SecretsStoreAzureTests",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreAzure", "SecretsStoreCSI", "SecretsStoreTesting", "KeyVaultEmulator", "CSIProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SecretsStoreLinuxTests",
            dependencies: ["SecretsStoreCore", "SecretsStoreLinux", "SecretsStoreTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SecretsStoreKubernetesTests",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreKubernetes", "SecretsStoreTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FuzzTests",
            dependencies: ["SecretsStoreFuzzing"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreCSI", "SecretsStoreKubernetes", "SecretsStoreLinux",
                "SecretsStoreTesting", "CSIProtocol", "SecretsStoreAzure", "KeyVaultEmulator", "SecretsStoreObservability",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
