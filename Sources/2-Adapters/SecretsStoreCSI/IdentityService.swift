import CSIProtocol
import GRPCCore
import SwiftProtobuf

/// The CSI Identity service: who this plugin is, what it offers, whether it is ready.
package struct IdentityService: Csi_V1_Identity.SimpleServiceProtocol {
    /// `--drivername`, answered as GetPluginInfo's `name`; must match the CSIDriver object's name.
    package var driverName: String
    /// GetPluginInfo's `vendor_version`, normally ``DriverVersion/current``.
    package var vendorVersion: String

    /// An Identity service answering with `driverName` and `vendorVersion`.
    package init(driverName: String, vendorVersion: String) {
        self.driverName = driverName
        self.vendorVersion = vendorVersion
    }

    /// `name` and `vendor_version`; UNAVAILABLE when either is empty.
    package func getPluginInfo(
        request: Csi_V1_GetPluginInfoRequest,
        context: ServerContext
    ) async throws -> Csi_V1_GetPluginInfoResponse {
        guard !driverName.isEmpty, !vendorVersion.isEmpty else {
            throw RPCError(code: .unavailable, message: "driver name or version not configured")
        }
        var response = Csi_V1_GetPluginInfoResponse()
        response.name = driverName
        response.vendorVersion = vendorVersion
        return response
    }

    /// Advertises nothing. This is a node-only plugin for inline ephemeral volumes: there is no Controller
    /// service (upstream advertises CONTROLLER_SERVICE and then answers UNIMPLEMENTED to every controller RPC,
    /// which only misleads tools such as csi-sanity), and no topology constraints (a secret can be served on
    /// any node). Kubelet never asks the Identity service for capabilities when publishing ephemeral volumes.
    package func getPluginCapabilities(
        request: Csi_V1_GetPluginCapabilitiesRequest,
        context: ServerContext
    ) async throws -> Csi_V1_GetPluginCapabilitiesResponse {
        Csi_V1_GetPluginCapabilitiesResponse()
    }

    /// Always `ready: true`.
    package func probe(request: Csi_V1_ProbeRequest, context: ServerContext) async throws -> Csi_V1_ProbeResponse {
        var response = Csi_V1_ProbeResponse()
        response.ready = Google_Protobuf_BoolValue(true)
        return response
    }
}
