#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SecretsStoreCore

/// JSON shapes of the Kubernetes objects the driver reads and writes: only the fields it uses.
///
/// Internal to this adapter on purpose: the program has one Kubernetes model, the core's
/// (`SecretProviderClass`, `SecretProviderClassPodStatus`, `KubernetesSecret`, `Workload`…). These shapes are
/// how the REST client reads and writes it; each turns into the core's value (`domainValue`) at the edge, and
/// nothing outside the adapter sees them.
enum Resources {
    /// `metadata.ownerReferences[]`: an object this one belongs to, for garbage collection.
    package struct OwnerReference: Codable, Sendable, Equatable {
        /// The owner's API version (`v1`, `apps/v1`…).
        package var apiVersion: String
        /// The owner's kind (`Pod`, `ReplicaSet`…).
        package var kind: String
        /// The owner's name, in the same namespace.
        package var name: String
        /// The owner's UID: the garbage collector matches on it.
        package var uid: String
        /// Whether the owner is the managing controller; read, never written by the driver.
        package var controller: Bool?
        /// Whether foreground deletion of the owner waits for this object; never written by the driver.
        package var blockOwnerDeletion: Bool?

        /// An owner reference with `controller` and `blockOwnerDeletion` unset.
        package init(apiVersion: String, kind: String, name: String, uid: String) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.name = name
            self.uid = uid
        }

        /// The wire form of a domain owner reference; `controller` and `blockOwnerDeletion` stay unset.
        package init(_ domain: SecretsStoreCore.OwnerReference) {
            self.init(apiVersion: domain.apiVersion, kind: domain.kind, name: domain.name, uid: domain.uid)
        }

        /// The domain value: API version, kind, name and UID (`controller` and `blockOwnerDeletion` are dropped).
        package var domainValue: SecretsStoreCore.OwnerReference {
            SecretsStoreCore.OwnerReference(apiVersion: apiVersion, kind: kind, name: name, uid: uid)
        }
    }

    /// `metadata` of an object the driver writes or lists (only the fields it uses).
    package struct ObjectMeta: Codable, Sendable, Equatable {
        /// `metadata.name`.
        package var name: String?
        /// `metadata.namespace`.
        package var namespace: String?
        /// `metadata.uid`, set by the API server.
        package var uid: String?
        /// `metadata.resourceVersion`: sent back on update so a concurrent write makes it fail with 409.
        package var resourceVersion: String?
        /// `metadata.generation`, bumped by the API server on spec changes.
        package var generation: Int?
        /// `metadata.labels`.
        package var labels: [String: String]?
        /// `metadata.annotations`.
        package var annotations: [String: String]?
        /// `metadata.ownerReferences`.
        package var ownerReferences: [OwnerReference]?

        /// Metadata with only a name and namespace.
        package init(name: String? = nil, namespace: String? = nil) {
            self.name = name
            self.namespace = namespace
        }
    }

    /// `secrets-store.csi.x-k8s.io/v1` SecretProviderClass as read from the API.
    package struct SecretProviderClass: Codable, Sendable {
        /// `spec`: the provider, its parameters and the Secrets to sync.
        package struct Spec: Codable, Sendable {
            /// `spec.provider`.
            package var provider: String?
            /// `spec.parameters`, passed to the provider as they are.
            package var parameters: [String: String]?
            /// `spec.secretObjects`: Kubernetes Secrets to mirror the volume's files into.
            package var secretObjects: [SecretsStoreCore.SecretProviderClass.SecretObject]?
            /// `spec.refreshInterval`, a Go duration as written.
            package var refreshInterval: String?
            /// `spec.sync`: the identity the sync controller fetches with.
            package var sync: Sync?
        }
        /// `spec.sync`.
        package struct Sync: Codable, Sendable {
            /// `spec.sync.nodePublishSecretRef`.
            package struct SecretReference: Codable, Sendable {
                /// `spec.sync.nodePublishSecretRef.name`.
                package var name: String?
            }
            /// `spec.sync.serviceAccountName`.
            package var serviceAccountName: String?
            /// `spec.sync.nodePublishSecretRef`.
            package var nodePublishSecretRef: SecretReference?
        }
        /// `metadata`.
        package var metadata: ObjectMeta
        /// `spec`; `nil` when the object has none.
        package var spec: Spec?

        /// The domain value; `namespace` and `name` come from the request when the body lacks them.
        package func domainValue(namespace: String, name: String) -> SecretsStoreCore.SecretProviderClass {
            .init(
                namespace: metadata.namespace ?? namespace,
                name: metadata.name ?? name,
                generation: metadata.generation ?? 0,
                provider: spec?.provider ?? "",
                parameters: spec?.parameters ?? [:],
                secretObjects: spec?.secretObjects ?? [],
                uid: metadata.uid ?? "",
                resourceVersion: metadata.resourceVersion,
                refreshInterval: spec?.refreshInterval,
                sync: spec?.sync.map {
                    .init(serviceAccountName: $0.serviceAccountName, nodePublishSecretRefName: $0.nodePublishSecretRef?.name)
                }
            )
        }
    }

    /// `secrets-store.csi.x-k8s.io/v1` SecretProviderClassPodStatus: the record of one mounted volume.
    package struct SecretProviderClassPodStatus: Codable, Sendable {
        /// `status`: which pod mounted which class where, and the object versions it got.
        package struct Status: Codable, Sendable, Equatable {
            /// `status.podName`.
            package var podName: String
            /// `status.secretProviderClassName`.
            package var secretProviderClassName: String
            /// `status.mounted`: the volume's files are in place.
            package var mounted: Bool
            /// `status.targetPath`: the volume's mount point on the node.
            package var targetPath: String
            /// `status.objects`: the id and version of every object in the volume.
            package var objects: [ObjectVersion]?
        }
        /// `apiVersion`: `secrets-store.csi.x-k8s.io/v1` unless the body says otherwise.
        package var apiVersion: String = "secrets-store.csi.x-k8s.io/v1"
        /// `kind`: `SecretProviderClassPodStatus` unless the body says otherwise.
        package var kind: String = "SecretProviderClassPodStatus"
        /// `metadata`: name, namespace, the node label and the owning pod.
        package var metadata: ObjectMeta
        /// `status`; `nil` when the object has none (it is then skipped when listed).
        package var status: Status?

        /// The domain value of a listed object.
        package func domainValue() -> SecretsStoreCore.SecretProviderClassPodStatus? {
            guard let status, let namespace = metadata.namespace else { return nil }
            return .init(
                namespace: namespace,
                podName: status.podName,
                podUID: metadata.ownerReferences?.first(where: { $0.kind == "Pod" })?.uid ?? "",
                nodeName: metadata.labels?[SecretsStoreCore.SecretProviderClassPodStatus.nodeNameLabel] ?? "",
                secretProviderClassName: status.secretProviderClassName,
                targetPath: status.targetPath,
                mounted: status.mounted,
                objects: status.objects ?? []
            )
        }

        /// The object the driver writes for `status`: node label, one owner reference to the pod.
        package init(_ status: SecretsStoreCore.SecretProviderClassPodStatus) {
            var metadata = ObjectMeta(name: status.name, namespace: status.namespace)
            metadata.labels = [SecretsStoreCore.SecretProviderClassPodStatus.nodeNameLabel: status.nodeName]
            if !status.podUID.isEmpty {
                metadata.ownerReferences = [
                    OwnerReference(apiVersion: "v1", kind: "Pod", name: status.podName, uid: status.podUID)
                ]
            }
            self.metadata = metadata
            self.status = Status(
                podName: status.podName,
                secretProviderClassName: status.secretProviderClassName,
                mounted: status.mounted,
                targetPath: status.targetPath,
                objects: status.objects
            )
        }
    }

    /// `v1` Pod, as far as the driver reads it: its UID, owners and whether it is being deleted.
    package struct Pod: Codable, Sendable {
        /// The pod's `metadata` fields the driver reads.
        package struct Metadata: Codable, Sendable {
            var name: String?
            var namespace: String?
            var uid: String?
            var ownerReferences: [OwnerReference]?
            var deletionTimestamp: String?
        }
        /// `metadata`.
        package var metadata: Metadata
    }

    /// `apps/v1` ReplicaSet, as far as the driver reads it: its owners (a Deployment's ReplicaSet names it).
    package struct ReplicaSet: Codable, Sendable {
        /// `metadata`: only `ownerReferences` is used.
        package var metadata: ObjectMeta
    }

    /// `apps/v1` Deployment, StatefulSet or DaemonSet, as far as the driver reads it: its annotations (the
    /// restart-on-rotation opt-in), resourceVersion, generation and pod template annotations.
    package struct Workload: Codable, Sendable {
        /// `spec`: only `spec.template.metadata` is read.
        package struct Spec: Codable, Sendable {
            /// `spec.template`.
            package var template: Template?
        }
        /// `spec.template`: only its `metadata` is read.
        package struct Template: Codable, Sendable {
            /// `spec.template.metadata`.
            package var metadata: ObjectMeta?
        }
        /// `metadata`.
        package var metadata: ObjectMeta
        /// `spec`; `nil` when the body has none.
        package var spec: Spec?

        /// The domain value; the reference's namespace and name stand in when the body lacks them.
        package func domainValue(_ reference: WorkloadReference) -> SecretsStoreCore.Workload {
            SecretsStoreCore.Workload(
                reference: WorkloadReference(
                    kind: reference.kind,
                    namespace: metadata.namespace ?? reference.namespace,
                    name: metadata.name ?? reference.name,
                    uid: metadata.uid ?? ""
                ),
                annotations: metadata.annotations ?? [:],
                templateAnnotations: spec?.template?.metadata?.annotations ?? [:],
                resourceVersion: metadata.resourceVersion,
                generation: metadata.generation ?? 0
            )
        }
    }

    /// The JSON merge patch (RFC 7386) the driver sends to a workload: pod template annotations, and the
    /// resourceVersion the API server checks the patch against when set (409 Conflict when it is stale).
    package struct TemplateAnnotationsPatch: Codable, Sendable, Equatable {
        /// `metadata`: only `resourceVersion`.
        package struct Metadata: Codable, Sendable, Equatable {
            /// The version read; omitted for an unconditional patch.
            package var resourceVersion: String?
        }
        /// `spec.template.metadata.annotations`.
        package struct Spec: Codable, Sendable, Equatable {
            /// `spec.template`.
            package var template: Template
        }
        /// `spec.template`.
        package struct Template: Codable, Sendable, Equatable {
            /// `spec.template.metadata`.
            package var metadata: TemplateMetadata
        }
        /// `spec.template.metadata`.
        package struct TemplateMetadata: Codable, Sendable, Equatable {
            /// The annotations to set (others are kept by the merge).
            package var annotations: [String: String]
        }
        /// `metadata`; `nil` for an unconditional patch.
        package var metadata: Metadata?
        /// `spec`.
        package var spec: Spec

        /// A patch setting `annotations` on the pod template, conditional on `resourceVersion` when given.
        package init(annotations: [String: String], resourceVersion: String?) {
            self.metadata = resourceVersion.map { Metadata(resourceVersion: $0) }
            self.spec = Spec(template: Template(metadata: TemplateMetadata(annotations: annotations)))
        }
    }

    /// `v1` Secret, as the driver reads and writes it when syncing `secretObjects`.
    package struct Secret: Codable, Sendable {
        /// `apiVersion`: `v1` unless the body says otherwise.
        package var apiVersion: String = "v1"
        /// `kind`: `Secret` unless the body says otherwise.
        package var kind: String = "Secret"
        /// `metadata`: name, namespace, labels, annotations, owners, resourceVersion.
        package var metadata: ObjectMeta
        /// `type` (`Opaque`, `kubernetes.io/tls`…).
        package var type: String?
        /// Values base64-encoded, as the API sends them.
        package var data: [String: String]?

        /// The wire form of a domain Secret: values base64-encoded, no annotations key when there are none.
        package init(_ secret: KubernetesSecret) {
            var metadata = ObjectMeta(name: secret.name, namespace: secret.namespace)
            metadata.labels = secret.labels
            metadata.annotations = secret.annotations.isEmpty ? nil : secret.annotations
            metadata.ownerReferences = secret.ownerReferences.map { OwnerReference($0) }
            metadata.resourceVersion = secret.resourceVersion
            self.metadata = metadata
            self.type = secret.type
            self.data = secret.data.mapValues { Data($0).base64EncodedString() }
        }

        private enum CodingKeys: String, CodingKey {
            case apiVersion, kind, metadata, type, data
        }

        /// Decodes a Secret; `apiVersion` and `kind` may be missing: the API server leaves them out of each
        /// item of a list of a built-in type (`GET /api/v1/secrets` gives `items` without them).
        package init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion) ?? "v1"
            kind = try container.decodeIfPresent(String.self, forKey: .kind) ?? "Secret"
            metadata = try container.decode(ObjectMeta.self, forKey: .metadata)
            type = try container.decodeIfPresent(String.self, forKey: .type)
            data = try container.decodeIfPresent([String: String].self, forKey: .data)
        }

        /// The domain Secret; `namespace` and `name` come from the request when the body lacks them, values that
        /// are not valid base64 are dropped, and a missing `type` reads as `Opaque`.
        package func domainValue(namespace: String, name: String) -> KubernetesSecret {
            KubernetesSecret(
                namespace: metadata.namespace ?? namespace,
                name: metadata.name ?? name,
                type: type ?? "Opaque",
                data: (data ?? [:]).compactMapValues { Data(base64Encoded: $0).map(Array.init) },
                labels: metadata.labels ?? [:],
                annotations: metadata.annotations ?? [:],
                ownerReferences: (metadata.ownerReferences ?? []).map(\.domainValue),
                resourceVersion: metadata.resourceVersion
            )
        }
    }

    /// `v1` Event recorded on a pod or a workload (`kubectl describe` shows it).
    package struct Event: Codable, Sendable {
        /// `involvedObject`: the pod (or Deployment, StatefulSet, DaemonSet) the event is about.
        package struct InvolvedObject: Codable, Sendable {
            var apiVersion = "v1"
            var kind = "Pod"
            var name: String
            var namespace: String
            var uid: String?
        }
        /// `source`: the component that reports the event.
        package struct Source: Codable, Sendable {
            var component: String
            var host: String?
        }
        /// `apiVersion`: `v1` unless the body says otherwise.
        package var apiVersion = "v1"
        /// `kind`: `Event` unless the body says otherwise.
        package var kind = "Event"
        /// `metadata`: a unique name in the pod's namespace.
        package var metadata: ObjectMeta
        /// The pod the event is about.
        package var involvedObject: InvolvedObject
        /// A short CamelCase reason (`FailedToCreateSecret`…).
        package var reason: String
        /// The human-readable text (names objects and reasons, never secret values or tokens).
        package var message: String
        /// `Normal` or `Warning`.
        package var type: String
        /// Who reports it (`secrets-store-csi-driver`).
        package var source: Source
        /// When it first happened, RFC 3339 to the second.
        package var firstTimestamp: String
        /// When it last happened, RFC 3339 to the second.
        package var lastTimestamp: String
        /// How many times it happened; always 1 (each event is a new object).
        package var count = 1
    }

    /// `metadata` of a list: the collection's resourceVersion and the token of the next page.
    package struct ListMeta: Codable, Sendable, Equatable {
        /// `metadata.resourceVersion`: watch from here to see every change after the list.
        package var resourceVersion: String?
        /// `metadata.continue`: present when there are more pages (`?continue=<token>`).
        package var `continue`: String?
    }

    /// The body of a list request: `items` and the list's `metadata`.
    package struct List<Item: Codable & Sendable>: Codable, Sendable {
        /// `metadata`; `nil` when the body has none.
        package var metadata: ListMeta?
        /// The listed objects (`null` reads as none).
        package var items: [Item]

        package init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            metadata = try container.decodeIfPresent(ListMeta.self, forKey: .metadata)
            items = try container.decodeIfPresent([Item].self, forKey: .items) ?? []
        }
    }

    /// `meta.k8s.io/v1` Status: the body of every API error.
    package struct Status: Codable, Sendable, Equatable {
        /// `kind`: `Status` unless the body says otherwise.
        package var kind: String?
        /// `apiVersion`: `v1` unless the body says otherwise.
        package var apiVersion: String?
        /// `Failure` (or `Success`).
        package var status: String?
        /// The API server's explanation; what ``KubernetesClientError`` carries.
        package var message: String?
        /// A machine-readable reason (`NotFound`, `Conflict`, `Forbidden`…).
        package var reason: String?
        /// The HTTP status code.
        package var code: Int?

        /// A failure Status, as the API server sends it.
        package init(message: String, reason: String, code: Int) {
            self.kind = "Status"
            self.apiVersion = "v1"
            self.status = "Failure"
            self.message = message
            self.reason = reason
            self.code = code
        }
    }
}
