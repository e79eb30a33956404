/// The parts of a `SecretProviderClass` (`secrets-store.csi.x-k8s.io/v1`) the driver acts on.
package struct SecretProviderClass: Sendable, Equatable {
    /// One `spec.secretObjects[]` entry: a Kubernetes Secret to mirror from mounted files.
    package struct SecretObject: Sendable, Equatable, Codable {
        package struct DataEntry: Sendable, Equatable, Codable {
            package var objectName: String
            package var key: String
            package init(objectName: String, key: String) {
                self.objectName = objectName
                self.key = key
            }
        }
        package var secretName: String
        package var type: String
        package var labels: [String: String]?
        package var annotations: [String: String]?
        package var data: [DataEntry]?

        package init(
            secretName: String,
            type: String,
            labels: [String: String]? = nil,
            annotations: [String: String]? = nil,
            data: [DataEntry]? = nil
        ) {
            self.secretName = secretName
            self.type = type
            self.labels = labels
            self.annotations = annotations
            self.data = data
        }
    }

    package var namespace: String
    package var name: String
    package var generation: Int
    package var provider: String
    package var parameters: [String: String]
    package var secretObjects: [SecretObject]

    package init(
        namespace: String,
        name: String,
        generation: Int = 1,
        provider: String,
        parameters: [String: String],
        secretObjects: [SecretObject] = []
    ) {
        self.namespace = namespace
        self.name = name
        self.generation = generation
        self.provider = provider
        self.parameters = parameters
        self.secretObjects = secretObjects
    }
}

/// A `SecretProviderClassPodStatus`: the record that a pod's volume was mounted from an SPC, and with which
/// object versions. Named `<pod>-<namespace>-<spc>`, labelled with the node, owned by the pod.
package struct SecretProviderClassPodStatus: Sendable, Equatable {
    /// Label key the driver puts on every SPCPS it writes, with the node ID as value.
    package static let nodeNameLabel = "internal.secrets-store.csi.k8s.io/node-name"

    package var namespace: String
    package var podName: String
    package var podUID: String
    package var nodeName: String
    package var secretProviderClassName: String
    package var targetPath: String
    package var mounted: Bool
    /// Sorted by ``ObjectVersion/id``.
    package var objects: [ObjectVersion]

    /// The object name the upstream driver uses, so tooling that looks it up keeps working.
    package var name: String { "\(podName)-\(namespace)-\(secretProviderClassName)" }

    package init(
        namespace: String,
        podName: String,
        podUID: String,
        nodeName: String,
        secretProviderClassName: String,
        targetPath: String,
        mounted: Bool = true,
        objects: [ObjectVersion]
    ) {
        self.namespace = namespace
        self.podName = podName
        self.podUID = podUID
        self.nodeName = nodeName
        self.secretProviderClassName = secretProviderClassName
        self.targetPath = targetPath
        self.mounted = mounted
        self.objects = objects.sorted { $0.id < $1.id }
    }
}
