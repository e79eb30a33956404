/// Lets concurrent first publishes that would send a provider the same request share one provider fetch
/// (``SharedFlights``, keyed by the request): the first caller starts it, callers that arrive while it is in
/// flight wait for its answer (or its error), and nothing is kept once it finishes.
///
/// Every caller keeps its own cancellation (and so its own deadline, which GRPCCore enforces by cancelling
/// the call): a cancelled caller stops waiting at once and gets ``PublishError/cancelled``, while the others
/// keep waiting. The shared work is cancelled only when no caller waits for it any more. The provider request
/// carries the deadline of the caller that started it.
package typealias SharedFetches = SharedFlights<ProviderResponse, PublishError>

extension SharedFlights where Value == ProviderResponse, Failure == PublishError {
    /// Shared provider fetches; a cancelled caller gets ``PublishError/cancelled``.
    package convenience init() {
        self.init(cancelled: .cancelled)
    }
}
