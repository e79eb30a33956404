import CSIProtocol
import GRPCCore
import Logging
import SecretsStoreCore

/// The CSI Node service: turns protobuf requests into core requests and core errors into gRPC statuses.
/// All the work happens in ``NodePublisher``.
package struct NodeService: Csi_V1_Node.SimpleServiceProtocol {
    private let publisher: NodePublisher
    private let nodeID: String
    private let logger: Logger

    package init(publisher: NodePublisher, nodeID: String, logger: Logger) {
        self.publisher = publisher
        self.nodeID = nodeID
        self.logger = logger
    }

    package func nodePublishVolume(
        request: Csi_V1_NodePublishVolumeRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodePublishVolumeResponse {
        let accessType: PublishRequest.AccessType
        switch request.hasVolumeCapability ? request.volumeCapability.accessType : nil {
        case .mount: accessType = .mount
        case .block: accessType = .block
        case nil: accessType = request.hasVolumeCapability ? .mount : .missing
        }
        let publishRequest = PublishRequest(
            volumeID: request.volumeID,
            targetPath: request.targetPath,
            accessType: accessType,
            readOnly: request.readonly,
            volumeContext: request.volumeContext,
            secrets: request.secrets,
            deadline: RequestDeadline.from(context)
        )
        logger.trace(
            "NodePublishVolume request",
            metadata: [
                "csi.volume_id": "\(request.volumeID)",
                "csi.target_path": "\(request.targetPath)",
                "csi.volume_context": "\(RequestSanitizer.sanitized(volumeContext: request.volumeContext))",
                "csi.secrets": "\(RequestSanitizer.sanitized(secrets: request.secrets))",
                "csi.readonly": "\(request.readonly)",
            ]
        )
        do {
            try await publisher.publish(publishRequest, logger: logger)
        } catch {
            throw RPCError(error)
        }
        return Csi_V1_NodePublishVolumeResponse()
    }

    package func nodeUnpublishVolume(
        request: Csi_V1_NodeUnpublishVolumeRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodeUnpublishVolumeResponse {
        do {
            try publisher.unpublish(
                UnpublishRequest(volumeID: request.volumeID, targetPath: request.targetPath),
                logger: logger
            )
        } catch {
            throw RPCError(error)
        }
        return Csi_V1_NodeUnpublishVolumeResponse()
    }

    /// Advertises no node capability. Kubelet uses secrets volumes only as inline ephemeral volumes, which it
    /// never stages, so STAGE_UNSTAGE_VOLUME (advertised upstream, with no-op stage calls) would only make a
    /// CO that does stage call two RPCs that do nothing. Volume stats, expansion, conditions and mount groups do
    /// not apply to a tmpfs of secrets.
    package func nodeGetCapabilities(
        request: Csi_V1_NodeGetCapabilitiesRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodeGetCapabilitiesResponse {
        Csi_V1_NodeGetCapabilitiesResponse()
    }

    package func nodeGetInfo(
        request: Csi_V1_NodeGetInfoRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodeGetInfoResponse {
        var response = Csi_V1_NodeGetInfoResponse()
        response.nodeID = nodeID
        return response
    }

    package func nodeStageVolume(
        request: Csi_V1_NodeStageVolumeRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodeStageVolumeResponse {
        throw RPCError(code: .unimplemented, message: "NodeStageVolume is not supported")
    }

    package func nodeUnstageVolume(
        request: Csi_V1_NodeUnstageVolumeRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodeUnstageVolumeResponse {
        throw RPCError(code: .unimplemented, message: "NodeUnstageVolume is not supported")
    }

    package func nodeGetVolumeStats(
        request: Csi_V1_NodeGetVolumeStatsRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodeGetVolumeStatsResponse {
        throw RPCError(code: .unimplemented, message: "NodeGetVolumeStats is not supported")
    }

    package func nodeExpandVolume(
        request: Csi_V1_NodeExpandVolumeRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodeExpandVolumeResponse {
        throw RPCError(code: .unimplemented, message: "NodeExpandVolume is not supported")
    }
}

/// The deadline kubelet set on the current call, read from its `grpc-timeout` header by
/// ``RequestLogInterceptor`` and carried to the handler in a task-local value.
package enum RequestDeadline {
    @TaskLocal package static var current: ContinuousClock.Instant?

    package static func from(_ context: ServerContext) -> ContinuousClock.Instant? {
        current
    }

    /// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
    package static func parseTimeout(_ value: String) -> Duration? {
        guard let unit = value.last, value.count >= 2, value.count <= 9,
            let amount = Int64(value.dropLast()), amount >= 0
        else { return nil }
        switch unit {
        case "H": return .seconds(amount * 3600)
        case "M": return .seconds(amount * 60)
        case "S": return .seconds(amount)
        case "m": return .milliseconds(amount)
        case "u": return .microseconds(amount)
        case "n": return .nanoseconds(amount)
        default: return nil
        }
    }
}
