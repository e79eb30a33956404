import CSIProtocol
import GRPCCore
import Logging
import SecretsStoreCore
import SwiftProtobuf

/// Logs every call with its method, duration and status code, and reads the call's deadline for the handler.
///
/// It never logs request bodies: NodeService logs NodePublishVolume's at trace level, and only after
/// ``RequestSanitizer`` removed `secrets` and the service account tokens (CVE-2023-2878). Probe, which the
/// liveness sidecar sends every few seconds, is logged at trace level.
package struct RequestLogInterceptor: ServerInterceptor {
    private let logger: Logger

    /// An interceptor logging to `logger`.
    package init(logger: Logger) {
        self.logger = logger
    }

    /// Runs the call with ``RequestDeadline/current`` set from its `grpc-timeout`, logging the start and the end
    /// (`grpc.method`, then `grpc.code` or `error`, and `duration_ms`) at debug level, Probe at trace. Rethrows what
    /// the handler throws.
    package func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.fullyQualifiedMethod
        let quiet = context.descriptor == Csi_V1_Identity.Method.Probe.descriptor
        let level: Logger.Level = quiet ? .trace : .debug
        let deadline = request.metadata[stringValues: "grpc-timeout"].first(where: { _ in true })
            .flatMap(RequestDeadline.parseTimeout)
            .map { ContinuousClock.now + $0 }
        let start = ContinuousClock.now
        logger.log(level: level, "gRPC call", metadata: ["grpc.method": "\(method)"])
        do {
            let response = try await RequestDeadline.$current.withValue(deadline) {
                try await next(request, context)
            }
            let outcome: String
            switch response.accepted {
            case .success: outcome = "OK"
            case .failure(let error): outcome = "\(error.code)"
            }
            logger.log(
                level: level,
                "gRPC call finished",
                metadata: [
                    "grpc.method": "\(method)", "grpc.code": "\(outcome)",
                    "duration_ms": "\(Self.milliseconds(ContinuousClock.now - start))",
                ]
            )
            return response
        } catch {
            logger.log(
                level: level,
                "gRPC call failed",
                metadata: [
                    "grpc.method": "\(method)", "error": "\(error)",
                    "duration_ms": "\(Self.milliseconds(ContinuousClock.now - start))",
                ]
            )
            throw error
        }
    }

    /// A duration as milliseconds with three decimals, e.g. `1.234`.
    private static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        let fraction = String(micros % 1000)
        return "\(micros / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}

/// Removes credentials from CSI requests before anything logs them.
package enum RequestSanitizer {
    /// What replaces each credential value.
    package static let stripped = "***stripped***"

    /// A copy of a volume_context with the service account tokens replaced.
    package static func sanitized(volumeContext: [String: String]) -> [String: String] {
        var context = volumeContext
        if context[VolumeContextKey.serviceAccountTokens] != nil {
            context[VolumeContextKey.serviceAccountTokens] = stripped
        }
        return context
    }

    /// A copy of a secrets map with every value replaced.
    package static func sanitized(secrets: [String: String]) -> [String: String] {
        secrets.mapValues { _ in stripped }
    }
}
