import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import SecretsStoreCore

extension RESTKubernetesClient {
    /// How many decoded events wait for the consumer before the producer stops reading the body.
    static let watchBufferLimit = 64

    /// Streams `GET <collection>?watch=true&resourceVersion=<rv>&allowWatchBookmarks=true&timeoutSeconds=<n>`
    /// (plus `extraQuery`), each line decoded as a `Wire` object and turned into its domain value.
    ///
    /// The stream finishes when the server closes the watch and throws ``KubernetesClientError``: as ``send``
    /// maps HTTP errors (410 is `.rejected(status: 410, …)`), an `ERROR` event as
    /// ``WatchEventDecoder``, a read failure or an event over 16 MiB as `.unavailable`. Ending the consumer's
    /// iteration (or cancelling its task) cancels the HTTP request. The consumer is not outrun: at most
    /// ``watchBufferLimit`` events wait, then the body is not read until it catches up.
    func watch<Wire: Decodable & Sendable, Object: Sendable>(
        collection: String,
        resourceVersion: String,
        extraQuery: [String] = [],
        as wire: Wire.Type,
        domainValue: @escaping @Sendable (Wire) -> Object?,
        logger: Logger
    ) -> WatchStream<Object> {
        let timeoutSeconds = Int.random(in: Self.watchTimeoutSeconds)
        let query = [
            "watch=true",
            "resourceVersion=\(Self.escape(resourceVersion))",
            "allowWatchBookmarks=true",
        ] + extraQuery + ["timeoutSeconds=\(timeoutSeconds)"]
        let path = collection + "?" + query.joined(separator: "&")
        let (stream, continuation) = WatchStream<Object>.makeStream(bufferingPolicy: .bufferingOldest(Self.watchBufferLimit))
        let producer = Task {
            do throws(KubernetesClientError) {
                try await self.streamWatch(path: path, decoder: WatchEventDecoder(domainValue: domainValue), logger: logger) { event in
                    await Self.deliver(event, to: continuation)
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in producer.cancel() }
        return stream
    }

    /// Yields `event`, waiting while the buffer is full; returns without yielding once the stream has ended.
    private static func deliver<Object>(_ event: WatchEvent<Object>, to continuation: WatchStream<Object>.Continuation) async {
        var backoff = Duration.milliseconds(1)
        while true {
            switch continuation.yield(event) {
            case .enqueued, .terminated: return
            case .dropped:
                // The consumer is behind: wait for it rather than lose the event (watch events cannot be dropped).
                do { try await Task.sleep(for: backoff) } catch { return }
                backoff = min(backoff * 2, .milliseconds(100))
            @unknown default: return
            }
        }
    }

    /// Sends the watch request and hands each decoded event to `deliver` until the body ends or the task is
    /// cancelled.
    private func streamWatch<Wire: Decodable, Object: Sendable>(
        path: String,
        decoder: WatchEventDecoder<Wire, Object>,
        logger: Logger,
        deliver: (WatchEvent<Object>) async -> Void
    ) async throws(KubernetesClientError) {
        let request = try makeRequest(.GET, path)
        let response: HTTPClientResponse
        do {
            // The deadline bounds the wait for the response head only; the body streams for as long as the
            // server keeps the watch open (`timeoutSeconds`), each read bounded by ``watchTimeouts``.
            response = try await watchHTTP.execute(request, deadline: .now() + requestTimeout)
        } catch {
            throw .unavailable("GET \(path): \(error)", cause: ErrorCause(error))
        }
        let status = Int(response.status.code)
        logger.trace("kubernetes API watch", metadata: ["http.method": "GET", "http.path": "\(path)", "http.status": "\(status)"])
        guard (200..<300).contains(status) else {
            let body = (try? await response.body.collect(upTo: 1 << 20)).map { Array(buffer: $0) } ?? []
            throw Self.error(.GET, path, status: status, body: body)
        }
        var lines = WatchLineBuffer()
        do {
            for try await chunk in response.body {
                for line in try lines.append(chunk.readableBytesView) {
                    if let event = try decoder.decode(line) { await deliver(event) }
                }
                if Task.isCancelled { return }
            }
        } catch let error as KubernetesClientError {
            throw error
        } catch {
            if Task.isCancelled { return }
            throw .unavailable("GET \(path): watch interrupted: \(error)", cause: ErrorCause(error))
        }
        if let last = lines.finish() {
            // The connection ended inside an event: it was not applied, so watching again from the last
            // resourceVersion seen loses nothing.
            do {
                if let event = try decoder.decode(last) { await deliver(event) }
            } catch {
                guard case .rejected(status: 200, _) = error else { throw error }
                logger.debug("watch ended inside an event", metadata: ["http.path": "\(path)"])
            }
        }
    }
}
