// swift-tools-version:6.1
// The layout is the architecture; each layer depends only on the layers above it in this list.
//   Sources/1-Core         the domain: values, the publish/refresh/unpublish steps, the seam protocols, and
//                          the templates that compose values from a class's files (SecretsStoreTemplates). No I/O.
//   Sources/2-Adapters     one target per edge: CSI over gRPC, Azure Key Vault, Kubernetes REST, Linux system
//                          calls, the HTTPS client, the HTTP listener, metrics and logging. Each implements seams
//                          of the core; none knows another adapter except the HTTP client and listener they share.
//   Sources/3-Application  the assemblies: the node plugin, the controller and the provider server, each a
//                          `ServiceGroup` of adapters built from one configuration value.
//   Sources/4-Commands     what a user types: flag parsing, `render`, `crds apply`, and the executable.
// Apart from the product: TestSupport/ (fakes, harnesses over real sockets, the Key Vault emulator, the fuzzer)
// and Tools/ (the demo, the benchmark, the fuzzer's and the emulator's executables). The product's binary links
// nothing from either.
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
        .package(url: "https://github.com/hummingbird-project/swift-mustache", exact: "2.1.1"),
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
            path: "Sources/2-Adapters/CSIProtocol",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Domain values, the publish/refresh/recovery/unpublish steps, the atomic writer and the seam protocols.
        // No gRPC, no NIO, no HTTP (only swift-log): it and its tests build fast and need no root.
        // Templates over a class's files (`secretObjects[].data[].template`, `fileTemplates`): Mustache and Yams, no I/O.
        .target(
            name: "SecretsStoreTemplates",
            dependencies: [.product(name: "Mustache", package: "swift-mustache"), .product(name: "Yams", package: "Yams")],
            path: "Sources/1-Core/SecretsStoreTemplates",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SecretsStoreCore",
            dependencies: ["SecretsStoreTemplates", .product(name: "Logging", package: "swift-log")],
            path: "Sources/1-Core/SecretsStoreCore",
            swiftSettings: swiftSettings
        ),
        // One way to build an HTTPS client (AsyncHTTPClient + NIOSSL): extra CA roots, client certificates,
        // timeouts. Shared by the Kubernetes client and the Azure provider.
        .target(
            name: "SecretsStoreHTTPClient",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Sources/2-Adapters/SecretsStoreHTTPClient",
            swiftSettings: swiftSettings
        ),
        // Kubernetes REST client (in-cluster or kubeconfig) over AsyncHTTPClient.
        .target(
            name: "SecretsStoreKubernetes",
            dependencies: [
                "SecretsStoreCore",
                "SecretsStoreHTTPClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Sources/2-Adapters/SecretsStoreKubernetes",
            swiftSettings: swiftSettings
        ),
        // The built-in Azure Key Vault provider: parameters, Entra ID / IMDS tokens, Key Vault REST, file contents.
        .target(
            name: "SecretsStoreAzure",
            dependencies: [
                "SecretsStoreCore",
                "SecretsStoreHTTPClient",
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
            path: "Sources/2-Adapters/SecretsStoreAzure",
            swiftSettings: swiftSettings
        ),
        // The one HTTP/1.1 listener (`HTTPListener`, a bounded NIO server as a `Service`): every port the program
        // opens (/metrics + /healthz, the provider's health endpoint) and, with bodies and TLS, the test doubles
        // of HTTP services (Key Vault emulator, fake Kubernetes API server).
        .target(
            name: "SecretsStoreHTTPServer",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/2-Adapters/SecretsStoreHTTPServer",
            swiftSettings: swiftSettings
        ),
        // Prometheus metrics, the log line handler, and the routes of the /metrics + /healthz and provider health
        // listeners (served by SecretsStoreHTTPServer's `HTTPListener`).
        .target(
            name: "SecretsStoreObservability",
            dependencies: [
                "SecretsStoreCore",
                "SecretsStoreHTTPServer",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/2-Adapters/SecretsStoreObservability",
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
            path: "TestSupport/KeyVaultEmulator",
            swiftSettings: swiftSettings
        ),
        // Linux system calls: tmpfs mount/unmount, /proc/self/mountinfo, POSIX file operations. NIOPosix for
        // `NIOThreadPool` only: the mounter's blocking calls (mount, umount2, stat, the mountinfo read) run on NIO's
        // blocking pool, not on the event loops that are the driver's global executor.
        .target(
            name: "SecretsStoreLinux",
            dependencies: ["SecretsStoreCore", .product(name: "NIOPosix", package: "swift-nio")],
            path: "Sources/2-Adapters/SecretsStoreLinux",
            swiftSettings: swiftSettings
        ),
        // Everything that speaks gRPC: CSI Identity + Node services, the one mapping of domain errors to gRPC
        // codes, the request log sanitizer, the CSI socket server, and the client for external v1alpha1
        // providers on Unix sockets.
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
            path: "Sources/2-Adapters/SecretsStoreCSI",
            swiftSettings: swiftSettings
        ),
        // The Swift runtime's global-executor hook, reached by the linker (the static runtime hides it from dlsym).
        .target(name: "CConcurrencyHook", path: "Sources/3-Application/CConcurrencyHook"),
        // The application layer: `DriverConfiguration` and `DriverAssembly` (the node plugin), `ControllerAssembly`
        // and `BuiltInProviderServer` (`provider azure`), each turning one configuration value into a
        // `ServiceGroup` with every seam overridable, and the services they run (rotation, pod status writes,
        // reflectors, heap trim, the kubelet registrar). The executable, the demo, the bench and the end-to-end
        // tests all build the driver through it.
        .target(
            name: "SecretsStoreApplication",
            dependencies: [
                "CConcurrencyHook",
                "SecretsStoreCore",
                "SecretsStoreAzure",
                "SecretsStoreObservability",
                "SecretsStoreHTTPServer",
                "SecretsStoreCSI",
                "SecretsStoreKubernetes",
                "SecretsStoreLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/3-Application/SecretsStoreApplication",
            swiftSettings: swiftSettings
        ),
        // The command line: Go flag syntax, `render` (the dry run and the full render of a SecretProviderClass, with
        // its checks), `crds apply` and the CRDs it embeds.
        .target(
            name: "SecretsStoreCommandLine",
            dependencies: [
                "SecretsStoreApplication",
                "SecretsStoreCore",
                "SecretsStoreAzure",
                "SecretsStoreCSI",
                "SecretsStoreKubernetes",
                "SecretsStoreLinux",
                "SecretsStoreTemplates",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/4-Commands/SecretsStoreCommandLine",
            swiftSettings: swiftSettings
        ),
        // Fakes of the core's seams that need nothing but the core: recording mounter, fake Kubernetes client,
        // static provider and fixed provider directory, manual clock, log capture, temporary directories.
        .target(
            name: "SecretsStoreCoreTesting",
            dependencies: [
                "SecretsStoreCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "TestSupport/SecretsStoreCoreTesting",
            swiftSettings: swiftSettings
        ),
        // Harnesses over real sockets for the tests, the demo and the bench: fake Kubernetes API server (HTTP), the
        // real one (etcd + kube-apiserver, when installed), test provider on a Unix socket (gRPC), CSI client
        // helpers, and log capture rendered by the driver's own log handler.
        .target(
            name: "SecretsStoreTesting",
            dependencies: [
                "SecretsStoreObservability",
                "SecretsStoreCommandLine",
                "SecretsStoreCoreTesting",
                "SecretsStoreCSI",
                "SecretsStoreApplication",
                "SecretsStoreHTTPServer",
                "SecretsStoreKubernetes",
                "SecretsStoreAzure",
                "KeyVaultEmulator",
                "CSIProtocol",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                // The real API server's service account signing key (RealKubernetesAPIServer).
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "TestSupport/SecretsStoreTesting",
            swiftSettings: swiftSettings
        ),
        // Deterministic mutation fuzzing of the parsers and validators that take outside input, over the
        // production code paths; run bounded by FuzzTests and for as long as wanted by csi-fuzz.
        .target(
            name: "SecretsStoreFuzzing",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreTemplates", "SecretsStoreAzure", "SecretsStoreCSI", "SecretsStoreKubernetes",
                "CSIProtocol",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "TestSupport/SecretsStoreFuzzing",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "csi-fuzz",
            dependencies: ["SecretsStoreFuzzing", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/csi-fuzz",
            swiftSettings: swiftSettings
        ),
        // The shipped binary: flag parsing, then a `DriverConfiguration` handed to the assembly.
        .executableTarget(
            name: "secrets-store-csi-driver",
            dependencies: [
                "SecretsStoreCommandLine",
                "SecretsStoreObservability",
                "SecretsStoreApplication",
                "SecretsStoreCore",
                "SecretsStoreAzure",
                "SecretsStoreCSI",
                "SecretsStoreKubernetes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Sources/4-Commands/secrets-store-csi-driver",
            swiftSettings: swiftSettings,
            // Release on Linux: link with lld so relative relocations are packed (DT_RELR, glibc >= 2.36: 3.5 MB of
            // .rela.dyn read at every start becomes ~0.1 MB), and export no symbols (the static runtime's
            // -export-dynamic put every Swift symbol in .dynsym/.gnu.hash, which the loader reads at start-up):
            // idle RSS 36.9 -> 30.8 MiB in the benchmark. The ordering file puts the functions that start-up and
            // publishing touch next to each other, so the kernel's 64 KiB fault-around maps fewer untouched pages
            // (30.8 -> 23.8 MiB); regenerate it with scripts/generate-startup-order.sh (a stale entry is only
            // ignored). scripts/static-libstdcxx makes -lstdc++ take the static C++ runtime (about 1 MiB less:
            // the shared one is mapped and faulted in whole). See BENCHMARKS.md.
            linkerSettings: [
                .unsafeFlags(
                    [
                        "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic",
                        "-L\(Context.packageDirectory)/scripts/static-libstdcxx",
                        "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/scripts/startup-symbol-order.txt",
                        "-Xlinker", "--no-warn-symbol-ordering",
                    ],
                    .when(platforms: [.linux], configuration: .release)
                )
            ]
        ),
        .executableTarget(
            name: "keyvault-emulator",
            dependencies: [
                "KeyVaultEmulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/keyvault-emulator",
            swiftSettings: swiftSettings
        ),
        // The two-command demo: emulator + the driver's assembly (in-memory Kubernetes API injected) on a
        // temporary socket + a kubelet-like client.
        .executableTarget(
            name: "secrets-store-csi-demo",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreApplication", "SecretsStoreKubernetes", "SecretsStoreLinux", "SecretsStoreAzure",
                "SecretsStoreCoreTesting", "SecretsStoreTesting", "KeyVaultEmulator", "CSIProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Tools/secrets-store-csi-demo",
            swiftSettings: swiftSettings
        ),
        // Benchmarks: figures printed next to a floor measured in the same run (see BENCHMARKS.md). The rotation
        // bench runs the driver's assembly in-process; the bare-server floor serves the assembly's CSI services
        // with a plain GRPCServer.
        .executableTarget(
            name: "csi-bench",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreApplication", "SecretsStoreLinux", "SecretsStoreCoreTesting", "SecretsStoreTesting",
                "CSIProtocol", "SecretsStoreAzure", "KeyVaultEmulator",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tools/csi-bench",
            swiftSettings: swiftSettings
        ),
        // The core's tests: no gRPC, no sockets. SecretsStoreLinux (system calls, and NIOPosix for the thread pool
        // its mounter uses) because the pipeline tests write real files with PosixFileSystem in a temporary directory.
        .testTarget(
            name: "SecretsStoreCoreTests",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreCoreTesting", "SecretsStoreLinux", "SecretsStoreTemplates",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The CSI services (as the assembly builds them) over GRPCCore's in-process transport, a real Unix socket
        // where the transport is the point, and the whole domain-error → gRPC-code table.
        .testTarget(
            name: "SecretsStoreCSITests",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreCoreTesting", "SecretsStoreTesting", "SecretsStoreCSI", "SecretsStoreApplication",
                "SecretsStoreLinux", "CSIProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP listener against abusive clients, as the metrics and health listener, the provider's health
        // endpoint and a test double (request bodies, TLS, streamed answers).
        .testTarget(
            name: "SecretsStoreObservabilityTests",
            dependencies: [
                "SecretsStoreObservability",
                "SecretsStoreHTTPServer",
                "KeyVaultEmulator",
                "SecretsStoreHTTPClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                "SecretsStoreCoreTesting",
                "SecretsStoreTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The application layer: the assemblies run with fakes, the kubelet registrar, the services they run.
        .testTarget(
            name: "SecretsStoreApplicationTests",
            dependencies: [
                "SecretsStoreObservability",
                "SecretsStoreApplication", "SecretsStoreCore", "SecretsStoreCoreTesting", "SecretsStoreTesting",
                "SecretsStoreKubernetes", "CSIProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The command line: Go flag syntax, `render`, `crds apply` against a fake API server.
        .testTarget(
            name: "SecretsStoreCommandLineTests",
            dependencies: [
                "SecretsStoreCommandLine", "SecretsStoreApplication", "SecretsStoreCore", "SecretsStoreCoreTesting",
                "SecretsStoreTesting", "SecretsStoreKubernetes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SecretsStoreAzureTests",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreAzure", "SecretsStoreCSI", "SecretsStoreCoreTesting", "SecretsStoreTesting",
                "SecretsStoreHTTPClient", "KeyVaultEmulator", "CSIProtocol",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SecretsStoreLinuxTests",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreLinux", "SecretsStoreCoreTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SecretsStoreKubernetesTests",
            dependencies: [
                "SecretsStoreCore", "SecretsStoreKubernetes", "SecretsStoreHTTPClient", "SecretsStoreCoreTesting",
                "SecretsStoreTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FuzzTests",
            dependencies: ["SecretsStoreFuzzing", "SecretsStoreTemplates"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "SecretsStoreCommandLine",
                "SecretsStoreCore", "SecretsStoreCSI", "SecretsStoreApplication", "SecretsStoreKubernetes", "SecretsStoreLinux",
                "SecretsStoreCoreTesting", "SecretsStoreTesting", "CSIProtocol", "SecretsStoreAzure", "KeyVaultEmulator",
                "SecretsStoreObservability", "SecretsStoreHTTPServer",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The fake Kubernetes API server's promises over its REST wire protocol, and against the real kubectl.
        .testTarget(
            name: "FakeAPIServerTests",
            dependencies: ["SecretsStoreCoreTesting", "SecretsStoreTesting"],
            swiftSettings: swiftSettings
        ),
    ]
)
