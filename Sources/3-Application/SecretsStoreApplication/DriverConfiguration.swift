import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreKubernetes

#if canImport(Glibc)
import Glibc
#endif

/// Everything the `serve` command's flags decide, as one value: where to serve, who this node is, where the
/// providers are, how to reach Kubernetes, rotation, sync, metrics and the built-in Azure provider.
///
/// It holds no live resource; ``DriverAssembly`` turns it into running services. The defaults are the
/// upstream driver's flag defaults where a default makes sense.
package struct DriverConfiguration: Sendable {
    /// How the driver reaches the Kubernetes API server.
    package enum KubernetesSource: Sendable, Equatable {
        /// The pod's service account: `KUBERNETES_SERVICE_HOST`/`_PORT` from the process environment and the
        /// token and CA files under `/var/run/secrets/kubernetes.io/serviceaccount` (`--kubeconfig` empty).
        case inCluster
        /// The current context of the kubeconfig file at this path (`--kubeconfig`).
        case kubeconfig(path: String)
        /// A connection already worked out (tests point it at a fake API server).
        case configuration(KubernetesConfiguration)

        /// The connection this source names, reading the files and variables it refers to.
        package func resolve() throws(KubernetesConfiguration.LoadError) -> KubernetesConfiguration {
            switch self {
            case .inCluster: try KubernetesConfiguration.inCluster(environment: Self.serviceEnvironment())
            case .kubeconfig(let path): try KubernetesConfiguration.kubeconfig(at: path)
            case .configuration(let configuration): configuration
            }
        }

        /// The two variables kubelet sets for in-cluster clients, as far as they are set.
        private static func serviceEnvironment() -> [String: String] {
            var result: [String: String] = [:]
            for name in ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"] {
                if let value = getenv(name) { result[name] = String(cString: value) }
            }
            return result
        }
    }

    /// The in-process Azure Key Vault provider (`--builtin-azure-provider=true`) and its `--azure-*` options.
    package struct BuiltInAzure: Sendable, Equatable {
        /// Operator-set endpoints (emulators, private clouds), the extra CA bundle for every Azure endpoint, and
        /// `--construct-pem-chain` / `--write-cert-and-key-in-separate-files`.
        package var overrides: AzureEndpointOverrides
        /// `--azure-cloud-name`: the cloud when a SecretProviderClass sets no `cloudName`.
        package var defaultCloudName: String
        /// `--custom-user-agent`: appended to the User-Agent of every Azure request (the AKS add-on sets it);
        /// `nil` or empty for none.
        package var customUserAgent: String?

        /// - Parameters:
        ///   - overrides: endpoint overrides, extra CA certificates and the file-layout flags
        ///     `--construct-pem-chain` and `--write-cert-and-key-in-separate-files` (defaults: Azure's public
        ///     endpoints, the upstream provider's layout).
        ///   - defaultCloudName: the cloud for SecretProviderClasses without `cloudName`.
        ///   - customUserAgent: the User-Agent suffix (`--custom-user-agent`).
        package init(
            overrides: AzureEndpointOverrides = .init(),
            defaultCloudName: String = "AzurePublicCloud",
            customUserAgent: String? = nil
        ) {
            self.overrides = overrides
            self.defaultCloudName = defaultCloudName
            self.customUserAgent = customUserAgent
        }

        /// The provider and the HTTPS client it owns (the caller shuts the client down when done).
        ///
        /// - Parameter onKeyVaultResponse: told the HTTP status of every Key Vault answer (for metrics).
        /// - Parameter onHTTPExchange: told of every Entra ID, IMDS and Key Vault request once it ended (the
        ///   `provider azure` metrics). The client honours `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from this
        ///   process's environment (IMDS never proxied) and appends ``customUserAgent`` to its User-Agent.
        package func makeProvider(
            onKeyVaultResponse: @escaping @Sendable (Int) -> Void = { _ in },
            onHTTPExchange: (@Sendable (AzureHTTPExchange) -> Void)? = nil
        ) throws -> (provider: AzureKeyVaultProvider, http: AzureHTTP) {
            let http = try AzureHTTP(
                extraCABundlePEM: overrides.caBundlePEM,
                customUserAgent: customUserAgent,
                onExchange: onHTTPExchange
            )
            let provider = AzureKeyVaultProvider(
                http: http,
                overrides: overrides,
                defaultCloudName: defaultCloudName,
                onKeyVaultResponse: onKeyVaultResponse
            )
            return (provider, http)
        }
    }

    /// The CSI socket (`--endpoint`, already reduced to a path).
    package var socketPath: String
    /// `--nodeid`: reported by NodeGetInfo, and the node whose pod statuses are recovered at start-up.
    package var nodeID: String
    /// `--drivername`: the name GetPluginInfo reports.
    package var driverName: String
    /// Directories searched for `<provider>.sock`, in order (`--additional-provider-volume-paths`, then
    /// `--provider-volume`).
    package var providerDirectories: [String]
    /// `--max-call-recv-msg-size`: the largest provider answer accepted, in bytes.
    package var maxReceiveMessageBytes: Int
    /// `--kubeconfig`, or in-cluster when it is empty.
    package var kubernetes: KubernetesSource
    /// `--enable-secret-rotation` and `--rotation-poll-interval`.
    package var rotation: RotationPolicy
    /// `--rotation-poll-interval` as written on the command line, for the start-up log line (`nil`: the
    /// interval's own description).
    package var rotationIntervalText: String?
    /// `--enable-secret-sync`: mirror `secretObjects` into Kubernetes Secrets.
    package var syncSecrets: Bool
    /// `--enable-rotation-restart`: restart opted-in Deployments, StatefulSets and DaemonSets after a refresh
    /// changed their pods' files (``RolloutTrigger``); off, no workload is read or written.
    package var restartOnRotation: Bool
    /// `--metrics-addr`: `host:port` or `:port` of the `/metrics` and `/healthz` listener (port 0: any free one).
    package var metricsAddress: String
    /// The built-in Azure provider, or `nil` when `azure` is reached through `azure.sock` like any other.
    package var builtInAzure: BuiltInAzure?
    /// `--provider-health-check` with `--provider-health-check-interval`: the period of the `Version` calls on
    /// every provider socket (``ProviderHealthService``); `nil` (the default) checks nothing.
    package var providerHealthCheckInterval: Duration?
    /// `--heap-trim-interval` (ours, not upstream's): how often the ``HeapTrimService`` looks whether a burst
    /// of operations has ended, to hand freed heap memory back; `nil` never trims.
    package var heapTrimInterval: Duration?
    /// `--plugin-registration-dir` and `--kubelet-registration-path`: register with kubelet's plugin watcher
    /// without the node-driver-registrar sidecar; `nil` (the default, and the flag's empty value) does not.
    package var kubeletRegistration: KubeletRegistration?

    /// Where the driver registers itself with kubelet (the built-in registrar).
    package struct KubeletRegistration: Sendable, Equatable {
        /// Kubelet's `plugins_registry` directory; the registration socket is `<directory>/<driver name>-reg.sock`.
        package var directory: String
        /// The CSI socket as kubelet sees it (GetInfo's `endpoint`), which may differ from ``DriverConfiguration/socketPath``
        /// when the driver runs in a container with the host directory mounted elsewhere.
        package var endpointPath: String

        /// A registration in `directory` announcing `endpointPath`.
        package init(directory: String, endpointPath: String) {
            self.directory = directory
            self.endpointPath = endpointPath
        }

        /// `<directory>/<driverName>-reg.sock`, the name kubelet's plugin watcher expects.
        package func socketPath(driverName: String) -> String {
            (directory.hasSuffix("/") ? String(directory.dropLast()) : directory) + "/" + driverName + "-reg.sock"
        }
    }

    /// A configuration with the upstream defaults for everything not given.
    package init(
        socketPath: String,
        nodeID: String,
        driverName: String = "secrets-store.csi.k8s.io",
        providerDirectories: [String] = ["/etc/kubernetes/secrets-store-csi-providers", "/var/run/secrets-store-csi-providers"],
        maxReceiveMessageBytes: Int = 4_194_304,
        kubernetes: KubernetesSource = .inCluster,
        rotation: RotationPolicy = .disabled,
        rotationIntervalText: String? = nil,
        syncSecrets: Bool = false,
        restartOnRotation: Bool = false,
        metricsAddress: String = ":8095",
        builtInAzure: BuiltInAzure? = BuiltInAzure(),
        providerHealthCheckInterval: Duration? = nil,
        heapTrimInterval: Duration? = .seconds(1),
        kubeletRegistration: KubeletRegistration? = nil
    ) {
        self.socketPath = socketPath
        self.nodeID = nodeID
        self.driverName = driverName
        self.providerDirectories = providerDirectories
        self.maxReceiveMessageBytes = maxReceiveMessageBytes
        self.kubernetes = kubernetes
        self.rotation = rotation
        self.rotationIntervalText = rotationIntervalText
        self.syncSecrets = syncSecrets
        self.restartOnRotation = restartOnRotation
        self.metricsAddress = metricsAddress
        self.builtInAzure = builtInAzure
        self.providerHealthCheckInterval = providerHealthCheckInterval
        self.heapTrimInterval = heapTrimInterval
        self.kubeletRegistration = kubeletRegistration
    }
}
