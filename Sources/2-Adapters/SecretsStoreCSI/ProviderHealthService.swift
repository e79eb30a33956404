import CSIProtocol
import Logging
import SecretsStoreCore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// `--provider-health-check`: every `--provider-health-check-interval`, a v1alpha1 `Version` call on every
/// provider socket found in the provider directories, run as a `Service` in the driver's group.
///
/// Promises:
/// - the first round runs one interval after start (as upstream's ticker), then one every interval until
///   graceful shutdown or cancellation;
/// - each call has ``timeout`` (upstream: 5 s) and its own connection; the providers of a round are checked
///   concurrently;
/// - `report` hears every result (for the `provider_health_check_healthy{provider}` gauge); a round cut short
///   by shutdown (its task cancelled) is dropped, neither reported nor logged;
/// - a log line is written only when a provider's state changes: `provider health check failed` (warning) the
///   first time it fails or stops answering, `provider is healthy` (info) when it is first seen answering and
///   `provider recovered` (info) when it answers again; a socket that disappears counts as a failure;
/// - sockets are found as `<directory>/<name>.sock` (directories in lookup order; the first one with a name
///   wins, as lookups do); names in ``skipping`` (providers served in-process) are not checked.
package struct ProviderHealthService: Service {
    /// One provider's last known state.
    package struct ProviderState: Sendable, Equatable {
        /// The socket checked.
        package var socketPath: String
        /// The last call answered.
        package var healthy: Bool

        /// A state for the provider on `socketPath`.
        package init(socketPath: String, healthy: Bool) {
            self.socketPath = socketPath
            self.healthy = healthy
        }
    }

    /// Directories searched for `<name>.sock`, in lookup order.
    package var directories: [String]
    /// Provider names not to check (built in, so their sockets are never used).
    package var skipping: Set<String>
    /// Time between two rounds.
    package var interval: Duration
    /// The limit of one `Version` call.
    package var timeout: Duration
    private let logger: Logger
    private let report: @Sendable (_ provider: String, _ healthy: Bool) -> Void
    private let sleep: @Sendable (Duration) async throws -> Void

    /// - Parameters:
    ///   - directories: the provider directories, in lookup order.
    ///   - skipping: provider names served in-process.
    ///   - interval: `--provider-health-check-interval` (at least 1 ms is used).
    ///   - timeout: the limit of each `Version` call (upstream: 5 s).
    ///   - report: told each provider's result every round.
    ///   - sleep: how the loop waits between rounds (tests replace it).
    package init(
        directories: [String],
        skipping: Set<String> = [],
        interval: Duration,
        timeout: Duration = .seconds(5),
        logger: Logger,
        report: @escaping @Sendable (_ provider: String, _ healthy: Bool) -> Void = { _, _ in },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.directories = directories
        self.skipping = skipping
        self.interval = max(interval, .milliseconds(1))
        self.timeout = timeout
        self.logger = logger
        self.report = report
        self.sleep = sleep
    }

    /// Rounds every ``interval`` until graceful shutdown or cancellation; never throws.
    package func run() async throws {
        logger.info(
            "provider health check enabled",
            metadata: ["interval": "\(interval)", "provider.directories": "\(directories.joined(separator: ","))"]
        )
        await cancelWhenGracefulShutdown {
            var states: [String: ProviderState] = [:]
            while !Task.isCancelled {
                do { try await sleep(interval) } catch { return }
                if Task.isCancelled { return }
                states = await checkRound(previous: states)
            }
        }
    }

    /// One round: finds the sockets, calls `Version` on each, reports and logs the changes against `previous`.
    ///
    /// - Returns: every provider's state after the round (those whose socket is gone are kept, unhealthy).
    package func checkRound(previous: [String: ProviderState]) async -> [String: ProviderState] {
        let sockets = Self.providerSockets(in: directories).filter { !skipping.contains($0.name) }
        let results = await withTaskGroup(of: (String, String, Result<(String, String), ProviderFailure>).self) { group in
            for (name, path) in sockets {
                let timeout = self.timeout
                group.addTask {
                    let provider = ExternalProvider(name: name, socketPath: path, maxReceiveMessageBytes: 1 << 20)
                    do throws(ProviderFailure) {
                        let version = try await provider.version(timeout: timeout)
                        return (name, path, .success((version.runtimeName, version.runtimeVersion)))
                    } catch {
                        return (name, path, .failure(error))
                    }
                }
            }
            var results: [(String, String, Result<(String, String), ProviderFailure>)] = []
            for await result in group { results.append(result) }
            return results
        }
        // A round cut short by shutdown says nothing about the providers: neither reported nor logged.
        if Task.isCancelled { return previous }
        var states: [String: ProviderState] = [:]
        for (name, path, result) in results.sorted(by: { $0.0 < $1.0 }) {
            let before = previous[name]
            switch result {
            case .success(let (runtimeName, runtimeVersion)):
                states[name] = ProviderState(socketPath: path, healthy: true)
                let metadata: Logger.Metadata = [
                    "provider": "\(name)", "provider.socket": "\(path)",
                    "provider.runtime": "\(runtimeName)", "provider.version": "\(runtimeVersion)",
                ]
                if before == nil {
                    logger.info("provider is healthy", metadata: metadata)
                } else if before?.healthy == false {
                    logger.info("provider recovered", metadata: metadata)
                } else {
                    logger.debug("provider health check passed", metadata: metadata)
                }
            case .failure(let failure):
                states[name] = ProviderState(socketPath: path, healthy: false)
                unhealthy(name, path: path, reason: "\(failure)", before: before)
            }
            report(name, states[name]!.healthy)
        }
        for (name, state) in previous.sorted(by: { $0.key < $1.key }) where states[name] == nil && !skipping.contains(name) {
            states[name] = ProviderState(socketPath: state.socketPath, healthy: false)
            unhealthy(name, path: state.socketPath, reason: "the socket is gone", before: state)
            report(name, false)
        }
        return states
    }

    /// Logs a failure when it is a change (first seen, or healthy before); at debug level otherwise.
    private func unhealthy(_ name: String, path: String, reason: String, before: ProviderState?) {
        let metadata: Logger.Metadata = ["provider": "\(name)", "provider.socket": "\(path)", "error": "\(reason)"]
        if before?.healthy == false {
            logger.debug("provider still unhealthy", metadata: metadata)
        } else {
            logger.warning("provider health check failed", metadata: metadata)
        }
    }

    /// The `<name>.sock` sockets of `directories`, by name, the first directory that has a name winning;
    /// sorted by name. Unreadable or missing directories are skipped.
    package static func providerSockets(in directories: [String]) -> [(name: String, path: String)] {
        var found: [String: String] = [:]
        for directory in directories {
            guard let stream = opendir(directory) else { continue }
            defer { closedir(stream) }
            while let entry = readdir(stream) {
                let fileName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                guard fileName.hasSuffix(".sock"), fileName.count > 5 else { continue }
                let name = String(fileName.dropLast(5))
                guard found[name] == nil else { continue }
                let path = directory + "/" + fileName
                var info = stat()
                guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { continue }
                found[name] = path
            }
        }
        return found.sorted { $0.key < $1.key }.map { (name: $0.key, path: $0.value) }
    }
}
