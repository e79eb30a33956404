import Logging

/// A ``KubernetesClient`` whose ``secretProviderClass(namespace:name:logger:)`` lets concurrent reads of the same
/// class (`namespace/name`) share one GET through the client it wraps (``SharedFlights``); every other verb is
/// the wrapped client's own. The node plugin reads classes through it instead of watching them: what it costs
/// grows with the classes its own pods use, not with the classes in the cluster.
///
/// Promises:
/// - reads of one class that overlap in time send one GET (a burst of pods of one class starting together:
///   about one GET, not one per pod); reads of different classes never share;
/// - nothing is kept once a GET returns: a read that starts after the last one returned sends a new GET, so it
///   sees any change made before it asked. A read that joins a GET in flight gets that GET's answer, which can
///   be as old as the moment that GET was sent (at most one round trip);
/// - every joined read gets the GET's class, or its ``KubernetesClientError`` unchanged (a
///   ``KubernetesClientError/notFound(_:)`` stays one);
/// - each read keeps its own cancellation: a cancelled read stops waiting at once and gets
///   ``KubernetesClientError/unavailable(_:cause:)`` with a `CancellationError` cause (what a cancelled GET of
///   the REST client gives), while the others keep waiting; the GET is cancelled only when no read waits for it.
///   It is sent with the logger of the read that started it.
package struct SharedSecretProviderClassReads: ForwardingKubernetesClient {
    /// The client the GETs and every other verb go to.
    package let wrapped: any KubernetesClient
    private let reads = SharedFlights<SecretProviderClass, KubernetesClientError>(
        cancelled: .unavailable("the read of the SecretProviderClass was cancelled", cause: ErrorCause(CancellationError()))
    )

    /// Shares the class reads sent through `base`.
    package init(_ base: any KubernetesClient) {
        self.wrapped = base
    }

    /// How many reads so far were answered by a GET another read started.
    package var joinedReadCount: Int { reads.joinedCount }

    /// The class, from the GET in flight for it or from one sent now.
    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass {
        try await reads.share("\(namespace)/\(name)") { [wrapped] () async throws(KubernetesClientError) -> SecretProviderClass in
            try await wrapped.secretProviderClass(namespace: namespace, name: name, logger: logger)
        }
    }
}
