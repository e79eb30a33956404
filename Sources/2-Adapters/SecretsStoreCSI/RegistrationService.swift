import CSIProtocol
import GRPCCore
import Logging

/// Kubelet's plugin registration service (`pluginregistration.Registration`, v1), served by the driver itself on
/// `<plugins_registry>/<driver name>-reg.sock`: what the node-driver-registrar sidecar does, without the sidecar.
///
/// Kubelet's plugin watcher notices the socket, calls `GetInfo`, checks the answer (a `CSIPlugin` named like the
/// CSIDriver, an endpoint it can reach, a CSI version it speaks), calls `NodeGetInfo` on the endpoint, and reports
/// the outcome with `NotifyRegistrationStatus`. A refusal is logged as an error and reported to `onStatus`.
package struct RegistrationService: Pluginregistration_Registration.SimpleServiceProtocol {
    /// `PluginInfo.type` for a CSI driver.
    package static let pluginType = "CSIPlugin"
    /// The CSI versions announced: CSI v1, as the node-driver-registrar announces it.
    package static let supportedVersions = ["1.0.0"]

    /// GetInfo's `name`: the driver name (`--drivername`), which kubelet matches against the CSIDriver object.
    package var driverName: String
    /// GetInfo's `endpoint`: the CSI socket as kubelet sees it (`--kubelet-registration-path`).
    package var endpointPath: String
    private let logger: Logger
    private let onStatus: @Sendable (_ registered: Bool) -> Void

    /// - Parameters:
    ///   - driverName: the CSI driver name.
    ///   - endpointPath: the CSI socket path kubelet should dial.
    ///   - onStatus: told every verdict kubelet sends (for the `kubelet_registration_total` counter).
    package init(
        driverName: String,
        endpointPath: String,
        logger: Logger,
        onStatus: @escaping @Sendable (_ registered: Bool) -> Void = { _ in }
    ) {
        self.driverName = driverName
        self.endpointPath = endpointPath
        self.logger = logger
        self.onStatus = onStatus
    }

    /// `CSIPlugin`, the driver name, the endpoint and `["1.0.0"]`.
    package func getInfo(
        request: Pluginregistration_InfoRequest,
        context: ServerContext
    ) async throws -> Pluginregistration_PluginInfo {
        var info = Pluginregistration_PluginInfo()
        info.type = Self.pluginType
        info.name = driverName
        info.endpoint = endpointPath
        info.supportedVersions = Self.supportedVersions
        logger.debug("kubelet asked for the plugin info", metadata: ["csi.endpoint": "\(endpointPath)"])
        return info
    }

    /// Logs kubelet's verdict (info when registered, error with kubelet's reason otherwise) and reports it.
    package func notifyRegistrationStatus(
        request: Pluginregistration_RegistrationStatus,
        context: ServerContext
    ) async throws -> Pluginregistration_RegistrationStatusResponse {
        if request.pluginRegistered {
            logger.info("registered with kubelet", metadata: ["driver.name": "\(driverName)", "csi.endpoint": "\(endpointPath)"])
        } else {
            logger.error(
                "kubelet refused the registration",
                metadata: ["driver.name": "\(driverName)", "csi.endpoint": "\(endpointPath)", "error": "\(request.error)"]
            )
        }
        onStatus(request.pluginRegistered)
        return Pluginregistration_RegistrationStatusResponse()
    }
}
