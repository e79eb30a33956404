import SecretsStoreCore

/// JSON shapes of the objects the sync controller reads and writes.
extension Resources {
    /// The JSON merge patch (RFC 7386) of a SecretProviderClass's `/status`: the whole `status`, with `null`
    /// for every field that has no value, so that the patch replaces the status instead of merging into it.
    package struct SecretProviderClassStatusPatch: Encodable, Sendable {
        /// `status.conditions[]`: `metav1.Condition`.
        package struct Condition: Codable, Sendable, Equatable {
            package var type: String
            package var status: String
            package var reason: String
            package var message: String
            package var lastTransitionTime: String
            package var observedGeneration: Int
        }

        /// `status`.
        package struct Status: Encodable, Sendable {
            package var conditions: [Condition]
            package var lastSyncTime: String?
            package var objects: [ObjectVersion]
            package var syncedSecrets: [String]

            private enum CodingKeys: String, CodingKey {
                case conditions, lastSyncTime, objects, syncedSecrets
            }

            /// Empty lists and a missing time are written as `null`: the merge removes them.
            package func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                if conditions.isEmpty { try container.encodeNil(forKey: .conditions) } else { try container.encode(conditions, forKey: .conditions) }
                if let lastSyncTime { try container.encode(lastSyncTime, forKey: .lastSyncTime) } else { try container.encodeNil(forKey: .lastSyncTime) }
                if objects.isEmpty { try container.encodeNil(forKey: .objects) } else { try container.encode(objects, forKey: .objects) }
                if syncedSecrets.isEmpty { try container.encodeNil(forKey: .syncedSecrets) } else { try container.encode(syncedSecrets, forKey: .syncedSecrets) }
            }
        }

        /// `status`.
        package var status: Status

        /// The patch that makes the stored status `status`.
        package init(_ status: SecretProviderClassStatus) {
            self.status = Status(
                conditions: status.conditions.map {
                    Condition(
                        type: $0.type,
                        status: $0.status,
                        reason: $0.reason,
                        message: $0.message,
                        lastTransitionTime: $0.lastTransitionTime,
                        observedGeneration: $0.observedGeneration
                    )
                },
                lastSyncTime: status.lastSyncTime,
                objects: status.objects,
                syncedSecrets: status.syncedSecrets
            )
        }
    }

    /// `authentication.k8s.io/v1` TokenRequest as the client sends it.
    package struct TokenRequest: Encodable, Sendable {
        /// `spec`.
        package struct Spec: Encodable, Sendable {
            /// `spec.audiences`.
            package var audiences: [String]
            /// `spec.expirationSeconds`.
            package var expirationSeconds: Int
        }
        /// `apiVersion`.
        package var apiVersion = "authentication.k8s.io/v1"
        /// `kind`.
        package var kind = "TokenRequest"
        /// `spec`.
        package var spec: Spec

        /// A request for one token for `audience`, valid `expirationSeconds`.
        package init(audience: String, expirationSeconds: Int) {
            self.spec = Spec(audiences: [audience], expirationSeconds: expirationSeconds)
        }
    }

    /// `authentication.k8s.io/v1` TokenRequest as the API server answers it: only `status`.
    ///
    /// Holds the token: never interpolate it into a log line or an error.
    package struct TokenRequestAnswer: Decodable, Sendable {
        /// `status`.
        package struct Status: Decodable, Sendable {
            /// `status.token`: a secret.
            package var token: String
            /// `status.expirationTimestamp` (RFC 3339).
            package var expirationTimestamp: String
        }
        /// `status`.
        package var status: Status
    }

    /// `storage.k8s.io/v1` CSIDriver, as far as the controller reads it: `spec.tokenRequests`.
    package struct CSIDriver: Codable, Sendable {
        /// `spec`.
        package struct Spec: Codable, Sendable {
            /// `spec.tokenRequests`.
            package var tokenRequests: [TokenRequestSpec]?
        }
        /// One `spec.tokenRequests[]` entry.
        package struct TokenRequestSpec: Codable, Sendable {
            /// `audience`.
            package var audience: String
            /// `expirationSeconds`.
            package var expirationSeconds: Int?
        }
        /// `spec`; `nil` when the body has none.
        package var spec: Spec?
    }

    /// `coordination.k8s.io/v1` Lease.
    package struct Lease: Codable, Sendable {
        /// `spec`.
        package struct Spec: Codable, Sendable, Equatable {
            /// `spec.holderIdentity`.
            package var holderIdentity: String?
            /// `spec.leaseDurationSeconds`.
            package var leaseDurationSeconds: Int?
            /// `spec.acquireTime` (`metav1.MicroTime`).
            package var acquireTime: String?
            /// `spec.renewTime` (`metav1.MicroTime`).
            package var renewTime: String?
            /// `spec.leaseTransitions`.
            package var leaseTransitions: Int?
        }
        /// `apiVersion`.
        package var apiVersion = "coordination.k8s.io/v1"
        /// `kind`.
        package var kind = "Lease"
        /// `metadata`: name, namespace and, for an update, the resourceVersion read.
        package var metadata: ObjectMeta
        /// `spec`; `nil` when the body has none.
        package var spec: Spec?

        /// The wire form of `record`; its resourceVersion is the update's precondition.
        package init(_ record: LeaseRecord) {
            var metadata = ObjectMeta(name: record.name, namespace: record.namespace)
            metadata.resourceVersion = record.resourceVersion
            self.metadata = metadata
            self.spec = Spec(
                holderIdentity: record.holderIdentity,
                leaseDurationSeconds: record.leaseDurationSeconds,
                acquireTime: record.acquireTime,
                renewTime: record.renewTime,
                leaseTransitions: record.leaseTransitions
            )
        }

        /// The domain value; `namespace` and `name` come from the request when the body lacks them.
        package func domainValue(namespace: String, name: String) -> LeaseRecord {
            LeaseRecord(
                namespace: metadata.namespace ?? namespace,
                name: metadata.name ?? name,
                holderIdentity: spec?.holderIdentity,
                leaseDurationSeconds: spec?.leaseDurationSeconds ?? 0,
                acquireTime: spec?.acquireTime,
                renewTime: spec?.renewTime,
                leaseTransitions: spec?.leaseTransitions ?? 0,
                resourceVersion: metadata.resourceVersion
            )
        }
    }
}
