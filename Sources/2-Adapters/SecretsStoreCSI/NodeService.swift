import CSIProtocol
import GRPCCore
import Logging
import SecretsStoreCore

/// The CSI Node service: turns protobuf requests into core requests and core errors into gRPC statuses.
/// All the work happens in ``NodePublisher``.
///
/// GRPCCore reports a client that hangs up, and a call whose deadline passed, through
/// `ServerContext.cancellation` rather than by cancelling the handler's task. NodePublishVolume watches it:
/// the publish runs in a child task that is cancelled when the call is, so its provider and Kubernetes calls
/// stop and a tmpfs it mounted is undone before the handler answers (DEADLINE_EXCEEDED when the deadline
/// passed, CANCELLED otherwise).
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
            deadline: RequestDeadline.from(context),
            volumeMountGroup: accessType == .mount ? request.volumeCapability.mount.volumeMountGroup : ""
        )
        logger.trace(
            "NodePublishVolume request",
            metadata: [
                "csi.volume_id": "\(request.volumeID)",
                "csi.target_path": "\(request.targetPath)",
                "csi.volume_context": "\(RequestSanitizer.sanitized(volumeContext: request.volumeContext))",
                "csi.secrets": "\(RequestSanitizer.sanitized(secrets: request.secrets))",
                "csi.readonly": "\(request.readonly)",
                "csi.volume_mount_group": "\(publishRequest.volumeMountGroup)",
            ]
        )
        let publisher = self.publisher
        let logger = self.logger
        do {
            try await Self.cancellingWithCall(context) { () async throws(PublishError) in
                try await publisher.publish(publishRequest, logger: logger)
            }
        } catch {
            throw RPCError(error, deadlinePassed: publishRequest.deadline.map { $0 <= .now } ?? false)
        }
        return Csi_V1_NodePublishVolumeResponse()
    }

    package func nodeUnpublishVolume(
        request: Csi_V1_NodeUnpublishVolumeRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodeUnpublishVolumeResponse {
        do {
            try await publisher.unpublish(
                UnpublishRequest(volumeID: request.volumeID, targetPath: request.targetPath),
                logger: logger
            )
        } catch {
            throw RPCError(error)
        }
        return Csi_V1_NodeUnpublishVolumeResponse()
    }

    /// Advertises exactly one node capability, VOLUME_MOUNT_GROUP: with it (and a CSIDriver `fsGroupPolicy` other
    /// than `None`) kubelet passes the pod's `securityContext.fsGroup` as `volume_mount_group` instead of changing
    /// ownership itself, and the driver mounts the tmpfs and writes every directory and file owned by that group
    /// with group read, so non-root applications can read their secrets, also after a rotation.
    ///
    /// Nothing else: kubelet uses secrets volumes only as inline ephemeral volumes, which it never stages, so
    /// STAGE_UNSTAGE_VOLUME (advertised upstream, with no-op stage calls) would only make a CO that does stage
    /// call two RPCs that do nothing; volume stats, expansion and conditions do not apply to a tmpfs of secrets.
    package func nodeGetCapabilities(
        request: Csi_V1_NodeGetCapabilitiesRequest,
        context: ServerContext
    ) async throws -> Csi_V1_NodeGetCapabilitiesResponse {
        var mountGroup = Csi_V1_NodeServiceCapability()
        mountGroup.rpc.type = .volumeMountGroup
        var response = Csi_V1_NodeGetCapabilitiesResponse()
        response.capabilities = [mountGroup]
        return response
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

extension NodeService {
    /// Runs `operation` in a child task that is cancelled when gRPC cancels the call, and waits for it to
    /// unwind (so its clean-up is done) before returning its outcome.
    static func cancellingWithCall<Success: Sendable>(
        _ context: ServerContext,
        _ operation: @escaping @Sendable () async throws(PublishError) -> Success
    ) async throws(PublishError) -> Success {
        let outcome = await withTaskGroup(of: Result<Success, PublishError>?.self, returning: Result<Success, PublishError>.self) { group in
            group.addTask {
                do throws(PublishError) {
                    return .success(try await operation())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                // Returns when the call is cancelled, or throws when the operation finished first.
                try? await context.cancellation.cancelled
                return nil
            }
            while let next = await group.next() {
                // Either the operation finished (stop watching) or the call was cancelled (stop the operation
                // and keep waiting for its outcome).
                group.cancelAll()
                if let next { return next }
            }
            return Result<Success, PublishError>.failure(.cancelled)
        }
        return try outcome.get()
    }
}

/// The deadline kubelet set on the current call, carried to the handler in a task-local value by
/// ``RequestLogInterceptor``, so providers know how long they may retry.
///
/// GRPCCore enforces the deadline itself, by cancelling the call through `ServerContext.cancellation` (which
/// ``NodeService`` watches), but in grpc-swift-2 2.4.3 its parsed `grpc-timeout` is internal
/// (`Metadata.timeout`); the header is read here only to tell providers their remaining budget.
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
