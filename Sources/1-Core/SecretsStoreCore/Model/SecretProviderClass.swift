/// The parts of a `SecretProviderClass` (`secrets-store.csi.x-k8s.io/v1`) the driver acts on.
package struct SecretProviderClass: Sendable, Equatable {
    /// One `spec.secretObjects[]` entry: a Kubernetes Secret to mirror from mounted files.
    package struct SecretObject: Sendable, Equatable, Codable {
        /// One `data[]` item of a `secretObjects` entry: which volume file, or which template over the volume's
        /// files, becomes which Secret key. Exactly one of `objectName` and `template` is given (checked where
        /// it is used, so that the error can name the entry: ``SecretsStoreTemplates/TemplateProblem``).
        package struct DataEntry: Sendable, Equatable, Codable {
            /// `objectName`: the path of a file in the volume, as the provider returned it (e.g. an `objectAlias`)
            /// or as `fileTemplates` composed it.
            package var objectName: String?
            /// `template`: a Mustache template over the volume's files (`postgres://{{username}}:{{db-pass}}@{{host}}/app`),
            /// rendered into the key instead of one file's bytes.
            package var template: String?
            /// `key`: the Secret data key the file's bytes go under; only `tls.crt` or `tls.key` in a
            /// `kubernetes.io/tls` Secret.
            package var key: String
            /// A data entry mapping file `objectName` to Secret key `key`.
            package init(objectName: String, key: String) {
                self.objectName = objectName
                self.key = key
            }
            /// A data entry rendering `template` into Secret key `key`.
            package init(key: String, template: String) {
                self.template = template
                self.key = key
            }
        }
        /// `secretName`: the Secret to create or update, in the SecretProviderClass's namespace; required.
        package var secretName: String
        /// `type`: the Secret's type (`Opaque`, `kubernetes.io/tls`…); required.
        package var type: String
        /// `labels` for the Secret; the driver adds `secrets-store.csi.k8s.io/managed=true`.
        package var labels: [String: String]?
        /// `annotations` for the Secret.
        package var annotations: [String: String]?
        /// `data`: the keys to fill; a sync fails when it is missing or empty.
        package var data: [DataEntry]?

        /// A `secretObjects` entry; `labels`, `annotations` and `data` default to absent.
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

    /// `metadata.namespace`; synced Secrets are created here.
    package var namespace: String
    /// `metadata.name`: what the volume's `secretProviderClass` attribute names.
    package var name: String
    /// `metadata.generation` (0 when the object read lacks it); carried, not acted on.
    package var generation: Int
    /// `spec.provider`: the provider's name; must be non-empty and match `^[a-zA-Z0-9_-]{0,30}$` (it names
    /// `<provider>.sock`).
    package var provider: String
    /// `spec.parameters`: provider-specific settings, the base of the provider request's `attributes`.
    package var parameters: [String: String]
    /// `spec.secretObjects`: the Secrets to mirror when `--enable-secret-sync` is on; empty for none.
    package var secretObjects: [SecretObject]
    /// `metadata.uid` (empty when the object read lacks it): the owner of the Secrets the controller syncs.
    package var uid: String
    /// `metadata.resourceVersion`, when read from the API.
    package var resourceVersion: String?
    /// `spec.refreshInterval` as written (a Go duration, at least 5 s; ``refreshIntervalDuration()`` checks
    /// it): how often this class's volumes and controller-synced Secrets are refreshed, instead of
    /// `--rotation-poll-interval`. `nil` when absent.
    package var refreshInterval: String?
    /// `spec.sync`: present when the sync controller should keep `secretObjects` in sync without pods.
    package var sync: SyncSpec?

    /// `spec.sync`: which identity the controller fetches with when no pod is involved.
    package struct SyncSpec: Sendable, Equatable, Codable {
        /// `spec.sync.serviceAccountName`: a ServiceAccount in the class's namespace; required.
        package var serviceAccountName: String?
        /// `spec.sync.nodePublishSecretRef.name`: a Secret in the class's namespace whose data is the
        /// provider request's `secrets` (service-principal auth), as a pod volume's `nodePublishSecretRef`.
        package var nodePublishSecretRefName: String?

        /// A sync spec.
        package init(serviceAccountName: String?, nodePublishSecretRefName: String? = nil) {
            self.serviceAccountName = serviceAccountName
            self.nodePublishSecretRefName = nodePublishSecretRefName
        }
    }

    /// The least `spec.refreshInterval` accepted.
    package static let minimumRefreshInterval: Duration = .seconds(5)

    /// `spec.refreshInterval` parsed: `nil` when absent; throws a message naming the field when it is not a Go
    /// duration or is below ``minimumRefreshInterval``.
    package func refreshIntervalDuration() throws(SpecFieldError) -> Duration? {
        guard let text = refreshInterval else { return nil }
        guard let duration = GoDuration.parse(text) else {
            throw SpecFieldError(field: "spec.refreshInterval", message: "spec.refreshInterval \"\(text)\" is not a Go duration (e.g. 30s, 10m, 1h)")
        }
        guard duration >= Self.minimumRefreshInterval else {
            throw SpecFieldError(field: "spec.refreshInterval", message: "spec.refreshInterval \"\(text)\" is below the minimum of 5s")
        }
        return duration
    }

    /// A SecretProviderClass; `generation` defaults to 1.
    package init(
        namespace: String,
        name: String,
        generation: Int = 1,
        provider: String,
        parameters: [String: String],
        secretObjects: [SecretObject] = [],
        uid: String = "",
        resourceVersion: String? = nil,
        refreshInterval: String? = nil,
        sync: SyncSpec? = nil
    ) {
        self.namespace = namespace
        self.name = name
        self.generation = generation
        self.provider = provider
        self.parameters = parameters
        self.secretObjects = secretObjects
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.refreshInterval = refreshInterval
        self.sync = sync
    }
}

/// A field of an object's spec that is not acceptable, with a message that names it (and no value of a secret).
package struct SpecFieldError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The field's path, e.g. `spec.sync.serviceAccountName`.
    package var field: String
    /// A sentence for a status condition or a log line.
    package var message: String
    /// A field error.
    package init(field: String, message: String) {
        self.field = field
        self.message = message
    }
    /// ``message``.
    package var description: String { message }
}

/// A `SecretProviderClassPodStatus`: the record that a pod's volume was mounted from an SPC, and with which
/// object versions. Named `<pod>-<namespace>-<spc>`, labelled with the node, owned by the pod.
package struct SecretProviderClassPodStatus: Sendable, Equatable {
    /// Label key the driver puts on every SPCPS it writes, with the node ID as value.
    package static let nodeNameLabel = "internal.secrets-store.csi.k8s.io/node-name"

    /// `metadata.namespace`: the pod's namespace.
    package var namespace: String
    /// `status.podName`.
    package var podName: String
    /// The pod's UID: written as the object's one owner reference (kind `Pod`; none when empty) and read back from it.
    package var podUID: String
    /// The node ID (`--nodeid`), stored as the ``nodeNameLabel`` label's value.
    package var nodeName: String
    /// `status.secretProviderClassName`.
    package var secretProviderClassName: String
    /// `status.targetPath`: the volume's target path on the node.
    package var targetPath: String
    /// `status.mounted`; the driver writes the object only after the files are in place, so always `true` there.
    package var mounted: Bool
    /// Sorted by ``ObjectVersion/id``.
    package var objects: [ObjectVersion]

    /// The object name the upstream driver uses, so tooling that looks it up keeps working.
    package var name: String { "\(podName)-\(namespace)-\(secretProviderClassName)" }

    /// A status; `objects` are sorted by ``ObjectVersion/id`` here, whatever order they come in.
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
