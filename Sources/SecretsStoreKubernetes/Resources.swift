#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SecretsStoreCore

/// JSON shapes of the Kubernetes objects the driver reads and writes: only the fields it uses.
package enum Resources {
    package struct OwnerReference: Codable, Sendable, Equatable {
        package var apiVersion: String
        package var kind: String
        package var name: String
        package var uid: String
        package var controller: Bool?
        package var blockOwnerDeletion: Bool?

        package init(apiVersion: String, kind: String, name: String, uid: String) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.name = name
            self.uid = uid
        }
    }

    package struct ObjectMeta: Codable, Sendable, Equatable {
        package var name: String?
        package var namespace: String?
        package var uid: String?
        package var resourceVersion: String?
        package var generation: Int?
        package var labels: [String: String]?
        package var annotations: [String: String]?
        package var ownerReferences: [OwnerReference]?

        package init(name: String? = nil, namespace: String? = nil) {
            self.name = name
            self.namespace = namespace
        }
    }

    package struct SecretProviderClass: Codable, Sendable {
        package struct Spec: Codable, Sendable {
            package var provider: String?
            package var parameters: [String: String]?
            package var secretObjects: [SecretsStoreCore.SecretProviderClass.SecretObject]?
        }
        package var metadata: ObjectMeta
        package var spec: Spec?

        /// The domain value; `namespace` and `name` come from the request when the body lacks them.
        package func domainValue(namespace: String, name: String) -> SecretsStoreCore.SecretProviderClass {
            .init(
                namespace: metadata.namespace ?? namespace,
                name: metadata.name ?? name,
                generation: metadata.generation ?? 0,
                provider: spec?.provider ?? "",
                parameters: spec?.parameters ?? [:],
                secretObjects: spec?.secretObjects ?? []
            )
        }
    }

    package struct SecretProviderClassPodStatus: Codable, Sendable {
        package struct Status: Codable, Sendable, Equatable {
            package var podName: String
            package var secretProviderClassName: String
            package var mounted: Bool
            package var targetPath: String
            package var objects: [ObjectVersion]?
        }
        package var apiVersion: String = "secrets-store.csi.x-k8s.io/v1"
        package var kind: String = "SecretProviderClassPodStatus"
        package var metadata: ObjectMeta
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

    package struct Pod: Codable, Sendable {
        package struct Metadata: Codable, Sendable {
            var name: String?
            var namespace: String?
            var uid: String?
            var ownerReferences: [OwnerReference]?
            var deletionTimestamp: String?
        }
        package var metadata: Metadata
    }

    package struct Secret: Codable, Sendable {
        package var apiVersion: String = "v1"
        package var kind: String = "Secret"
        package var metadata: ObjectMeta
        package var type: String?
        /// Values base64-encoded, as the API sends them.
        package var data: [String: String]?

        package init(_ secret: KubernetesSecret) {
            var metadata = ObjectMeta(name: secret.name, namespace: secret.namespace)
            metadata.labels = secret.labels
            metadata.annotations = secret.annotations.isEmpty ? nil : secret.annotations
            metadata.ownerReferences = secret.ownerReferences.map {
                OwnerReference(apiVersion: $0.apiVersion, kind: $0.kind, name: $0.name, uid: $0.uid)
            }
            metadata.resourceVersion = secret.resourceVersion
            self.metadata = metadata
            self.type = secret.type
            self.data = secret.data.mapValues { Data($0).base64EncodedString() }
        }

        package func domainValue(namespace: String, name: String) -> KubernetesSecret {
            KubernetesSecret(
                namespace: metadata.namespace ?? namespace,
                name: metadata.name ?? name,
                type: type ?? "Opaque",
                data: (data ?? [:]).compactMapValues { Data(base64Encoded: $0).map(Array.init) },
                labels: metadata.labels ?? [:],
                annotations: metadata.annotations ?? [:],
                ownerReferences: (metadata.ownerReferences ?? []).map {
                    SecretsStoreCore.OwnerReference(apiVersion: $0.apiVersion, kind: $0.kind, name: $0.name, uid: $0.uid)
                },
                resourceVersion: metadata.resourceVersion
            )
        }
    }

    package struct Event: Codable, Sendable {
        package struct InvolvedObject: Codable, Sendable {
            var apiVersion = "v1"
            var kind = "Pod"
            var name: String
            var namespace: String
            var uid: String?
        }
        package struct Source: Codable, Sendable {
            var component: String
            var host: String?
        }
        package var apiVersion = "v1"
        package var kind = "Event"
        package var metadata: ObjectMeta
        package var involvedObject: InvolvedObject
        package var reason: String
        package var message: String
        package var type: String
        package var source: Source
        package var firstTimestamp: String
        package var lastTimestamp: String
        package var count = 1
    }

    package struct List<Item: Codable & Sendable>: Codable, Sendable {
        package var items: [Item]
    }

    /// `meta.k8s.io/v1` Status: the body of every API error.
    package struct Status: Codable, Sendable, Equatable {
        package var kind: String?
        package var apiVersion: String?
        package var status: String?
        package var message: String?
        package var reason: String?
        package var code: Int?

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
