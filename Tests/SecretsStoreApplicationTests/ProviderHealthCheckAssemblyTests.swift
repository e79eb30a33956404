import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreObservability
import SecretsStoreTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `--provider-health-check` through the assembly: the ``ProviderHealthService`` joins the group only when
/// configured, and its gauge follows a provider that stops and comes back.
@Suite("Driver assembly: provider health check", .timeLimit(.minutes(3)))
struct ProviderHealthCheckAssemblyTests {
    static func configuration(root: String, interval: Duration?) -> DriverConfiguration {
        DriverConfiguration(
            socketPath: root + "/csi.sock",
            nodeID: "node-1",
            providerDirectories: [root + "/providers"],
            metricsAddress: "127.0.0.1:0",
            builtInAzure: nil,
            providerHealthCheckInterval: interval
        )
    }

    @Test("with the flag on, provider_health_check_healthy{provider} goes 1, 0 while the provider is down, then 1 again")
    func gaugeFollowsTheProvider() async throws {
        try await withTemporaryDirectory { root in
            mkdir(root + "/providers", 0o755)
            let path = root + "/providers/test.sock"
            var provider = try await TestProviderServer(socketPath: path, behaviour: .hang)
            let logs = LogCapture()
            let driver = try await DriverAssembly(
                configuration: Self.configuration(root: root, interval: .milliseconds(20)),
                seams: DriverAssembly.Seams(kubernetes: InMemoryKubernetesAPI(), mounter: RecordingMounter()),
                logger: logs.logger(level: .info)
            )
            try await driver.withRunning { _ in
                try await eventually("driver.metrics.render().contains(\"provider_health_check_healthy{provider=\\\"test\\\"} 1.0\")") { driver.metrics.render().contains("provider_health_check_healthy{provider=\"test\"} 1.0") }
                provider.shutdown()
                try await eventually("driver.metrics.render().contains(\"provider_health_check_healthy{provider=\\\"test\\\"} 0.0\")") { driver.metrics.render().contains("provider_health_check_healthy{provider=\"test\"} 0.0") }
                provider = try await TestProviderServer(socketPath: path, behaviour: .hang)
                try await eventually("driver.metrics.render().contains(\"provider_health_check_healthy{provider=\\\"test\\\"} 1.0\")") { driver.metrics.render().contains("provider_health_check_healthy{provider=\"test\"} 1.0") }
            }
            provider.shutdown()
            let lines = logs.all
            #expect(lines.contains { $0.contains("provider health check enabled") })
            #expect(lines.filter { $0.contains("provider health check failed") }.count == 1)
            #expect(lines.filter { $0.contains("provider recovered") }.count == 1)
        }
    }

    @Test("with the flag off (the default), no health check runs and no gauge exists")
    func offByDefault() async throws {
        try await withTemporaryDirectory { root in
            mkdir(root + "/providers", 0o755)
            let provider = try await TestProviderServer(socketPath: root + "/providers/test.sock", behaviour: .hang)
            let logs = LogCapture()
            let driver = try await DriverAssembly(
                configuration: Self.configuration(root: root, interval: nil),
                seams: DriverAssembly.Seams(kubernetes: InMemoryKubernetesAPI(), mounter: RecordingMounter()),
                logger: logs.logger(level: .info)
            )
            try await driver.withRunning { _ in }
            provider.shutdown()
            #expect(!driver.metrics.render().contains("provider_health_check_healthy"))
            #expect(!logs.all.contains { $0.contains("provider health check") })
        }
    }

}
