import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Finds providers: a built-in one by name, else `<dir>/<name>.sock` in the first provider directory that
/// has it (`--additional-provider-volume-paths` first, then `--provider-volume`, as upstream).
package struct ProviderSocketDirectory: ProviderDirectory {
    /// Providers served in-process, by `spec.provider` name; they win over any socket of the same name.
    package var builtIn: [String: any SecretsProvider]
    /// Directories in search order.
    package var directories: [String]
    /// `--max-call-recv-msg-size`: the largest provider answer accepted.
    package var maxReceiveMessageBytes: Int

    /// A directory over `builtIn` providers and the sockets in `directories`.
    package init(builtIn: [String: any SecretsProvider] = [:], directories: [String], maxReceiveMessageBytes: Int) {
        self.builtIn = builtIn
        self.directories = directories
        self.maxReceiveMessageBytes = maxReceiveMessageBytes
    }

    /// The built-in provider called `name`, else an ``ExternalProvider`` for the first `<directory>/<name>.sock`
    /// that exists (nothing connects until a fetch). Throws ``PublishError/providerNotFound(name:searched:)``
    /// when there is neither.
    package func provider(named name: String) throws(PublishError) -> any SecretsProvider {
        if let provider = builtIn[name] { return provider }
        for directory in directories {
            let path = directory + "/" + name + ".sock"
            var info = stat()
            if stat(path, &info) == 0 {
                return ExternalProvider(name: name, socketPath: path, maxReceiveMessageBytes: maxReceiveMessageBytes)
            }
        }
        throw .providerNotFound(name: name, searched: directories)
    }
}

/// A provider reached over the v1alpha1 `CSIDriverProvider` API on a Unix socket.
///
/// Each fetch opens a connection (a Unix-socket connect costs well under a millisecond), so a restarted
/// provider is picked up without any cache to invalidate. `:authority` is `localhost`, as providers written
/// for the upstream driver expect; the answer is bounded by `maxReceiveMessageBytes` and the call by the
/// request's deadline.
///
/// A call that fails with UNAVAILABLE (the socket is there but nothing accepts on it yet, or the provider
/// itself answers UNAVAILABLE) is tried again as ``retryPolicy`` says, never past the request's deadline: the
/// upstream driver's gRPC client retries UNAVAILABLE too (service config: 3 attempts, 1 s initial back-off)
/// and, with `waitForReady`, waits for a provider that is starting. Every other failure is final at once.
package struct ExternalProvider: SecretsProvider {
    /// Retries of a Mount answered UNAVAILABLE: 5 attempts in all, 250 ms, 500 ms, 1 s and 2 s apart, so a
    /// provider that takes up to about 3.7 s to (re)start its server is waited for, and a dead one is reported
    /// within that time instead of at the kubelet deadline.
    package static let unavailableRetryPolicy = SecretsStoreCore.RetryPolicy(maxAttempts: 5, backoff: .doubling(first: .milliseconds(250)))

    /// The provider's name (`spec.provider`), the socket's base name.
    package var name: String
    /// The provider's Unix socket, `<directory>/<name>.sock`.
    package var socketPath: String
    /// `--max-call-recv-msg-size`: the largest MountResponse accepted, in bytes.
    package var maxReceiveMessageBytes: Int
    /// How UNAVAILABLE answers are retried (``unavailableRetryPolicy`` unless a test picks another).
    package var retryPolicy: SecretsStoreCore.RetryPolicy

    /// A provider at `socketPath`; nothing connects until a fetch.
    package init(
        name: String,
        socketPath: String,
        maxReceiveMessageBytes: Int,
        retryPolicy: SecretsStoreCore.RetryPolicy = ExternalProvider.unavailableRetryPolicy
    ) {
        self.name = name
        self.socketPath = socketPath
        self.maxReceiveMessageBytes = maxReceiveMessageBytes
        self.retryPolicy = retryPolicy
    }

    /// `Mount` calls on fresh connections, without waiting for the socket to become ready, until one is
    /// answered or fails for good: an UNAVAILABLE failure is retried as ``retryPolicy`` says within the
    /// request's deadline, and when the retries run out the last one is thrown with the number of attempts.
    ///
    /// - Throws: ``ProviderFailure/deadlineExceeded(_:)`` when no time is left or the provider does not answer
    ///   in time; ``ProviderFailure/unavailable(_:cause:)`` when it cannot be reached, with the gRPC or
    ///   transport error as its cause; ``ProviderFailure/cancelled``;
    ///   ``ProviderFailure/invalidResponse(_:cause:)`` for an answer over ``maxReceiveMessageBytes`` or a file mode
    ///   outside 0…0o777; ``ProviderFailure/providerError(code:)`` when `error.code` is set; and
    ///   ``ProviderFailure/rpc(code:message:)`` for any other gRPC status.
    package func fetch(_ request: ProviderRequest, logger: Logger) async throws(ProviderFailure) -> ProviderResponse {
        let message = try Self.mountRequest(for: request)
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try Self.providerResponse(from: try await mountOnce(message, deadline: request.deadline))
            } catch {
                guard case .unavailable(let reason, let cause) = error else { throw error }
                let remaining = request.deadline.map { $0 - .now }
                guard case .retry(let delay) = retryPolicy.decision(afterAttempt: attempt, remaining: remaining) else {
                    throw attempt > 1 ? .unavailable("\(reason) (\(attempt) attempts)", cause: cause) : error
                }
                logger.debug(
                    "provider unavailable, retrying",
                    metadata: [
                        "provider": "\(name)", "provider.socket": "\(socketPath)", "attempt": "\(attempt)",
                        "retry.delay": "\(delay)", "error": "\(reason)",
                    ].addingCause(of: error)
                )
                do { try await Task.sleep(for: delay) } catch { throw .cancelled }
            }
        }
    }

    /// One `Mount` on a fresh connection, bounded by what is left of `deadline`.
    private func mountOnce(_ message: V1alpha1_MountRequest, deadline: ContinuousClock.Instant?) async throws(ProviderFailure) -> V1alpha1_MountResponse {
        var options = CallOptions.defaults
        options.maxResponseMessageBytes = maxReceiveMessageBytes
        // grpc-swift-nio-transport 2.9 sizes the client stream's inbound deframer from maxRequestMessageBytes, so
        // the receive limit only holds when both are set. Our requests are a few KiB, far below either.
        options.maxRequestMessageBytes = maxReceiveMessageBytes
        options.waitForReady = false
        if let deadline {
            let remaining = deadline - .now
            guard remaining > .zero else { throw .deadlineExceeded("no time left before the request deadline") }
            options.timeout = remaining
        }
        do {
            return try await withGRPCClient(
                transport: .http2NIOPosix(
                    target: .unixDomainSocket(path: socketPath, authority: "localhost"),
                    transportSecurity: .plaintext
                )
            ) { client in
                let provider = V1alpha1_CSIDriverProvider.Client(wrapping: client)
                return try await provider.mount(message, options: options)
            }
        } catch let error as RPCError {
            throw Self.failure(from: error, maxBytes: maxReceiveMessageBytes)
        } catch is CancellationError {
            throw .cancelled
        } catch {
            throw .unavailable("\(error)", cause: ErrorCause(error))
        }
    }

    /// One `Version` call (`version: "v1alpha1"`) on a fresh connection within `timeout`, without retries: the
    /// provider health check.
    ///
    /// - Throws: ``ProviderFailure/unavailable(_:cause:)`` when nothing answers on the socket (the cause is the
    ///   gRPC or transport error),
    ///   ``ProviderFailure/deadlineExceeded(_:)`` past `timeout`, ``ProviderFailure/rpc(code:message:)`` for
    ///   any other gRPC status.
    package func version(timeout: Duration) async throws(ProviderFailure) -> V1alpha1_VersionResponse {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        var request = V1alpha1_VersionRequest()
        request.version = "v1alpha1"
        do {
            return try await withGRPCClient(
                transport: .http2NIOPosix(
                    target: .unixDomainSocket(path: socketPath, authority: "localhost"),
                    transportSecurity: .plaintext
                )
            ) { client in
                try await V1alpha1_CSIDriverProvider.Client(wrapping: client).version(request, options: options)
            }
        } catch let error as RPCError {
            throw Self.failure(from: error, maxBytes: maxReceiveMessageBytes)
        } catch is CancellationError {
            throw .cancelled
        } catch {
            throw .unavailable("\(error)", cause: ErrorCause(error))
        }
    }

    /// The wire request: attributes and secrets as JSON objects of strings (`secrets` is `null` when kubelet
    /// sent none, as upstream encodes it), permission as the JSON number `420`.
    package static func mountRequest(for request: ProviderRequest) throws(ProviderFailure) -> V1alpha1_MountRequest {
        var message = V1alpha1_MountRequest()
        message.attributes = try json(request.attributes)
        message.secrets = request.secrets.isEmpty ? "null" : try json(request.secrets)
        message.targetPath = request.targetPath
        message.permission = String(request.permission)
        message.currentObjectVersion = request.currentObjectVersions.map { version in
            var object = V1alpha1_ObjectVersion()
            object.id = version.id
            object.version = version.version
            return object
        }
        return message
    }

    /// Checks the answer against the provider API contract and converts it.
    package static func providerResponse(from response: V1alpha1_MountResponse) throws(ProviderFailure) -> ProviderResponse {
        if response.hasError, !response.error.code.isEmpty {
            throw .providerError(code: response.error.code)
        }
        var files: [SecretFile] = []
        for file in response.files {
            guard file.mode >= 0, file.mode <= 0o777 else {
                throw .invalidResponse("file \"\(file.path)\" has mode \(file.mode), outside 0-511")
            }
            files.append(SecretFile(path: file.path, mode: UInt32(file.mode), contents: Array(file.contents)))
        }
        return ProviderResponse(
            files: files,
            objectVersions: response.objectVersion.map { ObjectVersion(id: $0.id, version: $0.version) }
        )
    }

    private static func json(_ map: [String: String]) throws(ProviderFailure) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(map), as: UTF8.self)
        } catch {
            throw .invalidResponse("failed to encode the request: \(error)")
        }
    }

    private static func failure(from error: RPCError, maxBytes: Int) -> ProviderFailure {
        // The transport reports an oversized answer as INTERNAL ("Failed to decode message") wrapping
        // RESOURCE_EXHAUSTED; name the flag that raises the limit either way.
        if error.code == .resourceExhausted || error.message.contains("maximum payload size") {
            return .invalidResponse(
                "the provider's answer is larger than --max-call-recv-msg-size (\(maxBytes) bytes); raise the flag "
                    + "or split the SecretProviderClass"
            )
        }
        switch error.code {
        case .deadlineExceeded: return .deadlineExceeded("the provider did not answer before the request deadline")
        case .unavailable: return .unavailable("the provider is not reachable: \(error.message)", cause: ErrorCause(error))
        case .cancelled: return .cancelled
        default: return .rpc(code: error.code.rawValue, message: error.message)
        }
    }
}
