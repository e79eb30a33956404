import Foundation
import NIOHTTP1
import SecretsStoreHTTPServer
import Synchronization

/// A Kubernetes API server stand-in that speaks the real REST protocol over HTTP on loopback, with the
/// semantics the driver relies on: objects stored as JSON, `resourceVersion` bumped on every write and checked
/// on update (409 Conflict), 409 AlreadyExists on create, 404 NotFound, `labelSelector` on list, `Status`
/// bodies shaped like the API server's, bearer-token checking, and injected failures.
///
/// `PATCH` takes `application/merge-patch+json` (RFC 7386) and `application/strategic-merge-patch+json`
/// (merged the same way: maps merge, `null` deletes, lists are replaced, which is what a strategic merge does
/// for the maps the driver patches), other patch types get 415. As the API server does, a
/// `metadata.resourceVersion` in the patch is a precondition (409 Conflict when stale), `uid`, `name`,
/// `namespace`, `creationTimestamp` and `generation` cannot be patched, a patch that changes nothing writes
/// nothing (same resourceVersion), and one that changes `spec` bumps `metadata.generation`.
///
/// Paths: `/api/v1/namespaces/<ns>/<resource>[/<name>]` and `/apis/<group>/<version>/namespaces/<ns>/<resource>[/<name>]`.
package final class FakeKubernetesAPIServer: Sendable {
    /// One request the server answered.
    package struct Request: Sendable, Equatable {
        /// `GET`, `POST`, `PUT`…
        package var method: String
        /// The path, with the query when there was one.
        package var path: String
        /// The `Authorization` header as sent.
        package var authorization: String?
        /// The request body as sent (empty for reads).
        package var body: String = ""
        /// The `Content-Type` header as sent.
        package var contentType: String? = nil
    }

    private struct Key: Hashable {
        var prefix: String  // "api/v1" or "apis/<group>/<version>"
        var namespace: String
        var resource: String
        var name: String
    }

    private struct State {
        var objects: [Key: [UInt8]] = [:]
        var nextVersion = 1
        var requests: [Request] = []
        var injected: [(matching: String, status: Int)] = []
    }

    private let state = Mutex<State>(State())
    private let requiredToken: String?
    private let server: LoopbackHTTPServer
    /// `http://127.0.0.1:<port>`.
    package let url: String

    /// Starts listening on an ephemeral loopback port.
    ///
    /// - Parameters:
    ///   - requiredToken: the bearer token every request must carry (401 otherwise); `nil` checks none.
    package init(requiredToken: String? = nil) async throws {
        self.requiredToken = requiredToken
        let holder = Box()
        server = try await LoopbackHTTPServer { request in
            guard let fake = holder.server.withLock({ $0 }) else { return .init(status: 503) }
            let uri = request.query.isEmpty ? request.path : request.path + "?" + request.query
            let (status, body) = fake.handle(
                method: request.method,
                uri: uri,
                authorization: request.headers.first(name: "Authorization"),
                contentType: request.headers.first(name: "Content-Type"),
                body: request.body
            )
            return .init(status: status, headers: [("Content-Type", "application/json")], body: body)
        }
        url = "http://127.0.0.1:\(server.port)"
        holder.server.withLock { $0 = self }
    }

    /// Stops serving: closes the listening socket and every open connection, so the API is unreachable.
    package func shutdown() async throws {
        try await server.shutdown()
    }

    // MARK: Test controls

    /// Every request answered so far, in order.
    package var requests: [Request] { state.withLock { $0.requests } }
    /// Forgets the recorded requests (long runs that measure memory).
    package func removeRecordedRequests() { state.withLock { $0.requests.removeAll() } }

    /// Answers the next request whose path contains `pathSubstring` with `status` and a matching Status body.
    package func injectFailure(status: Int, forPathContaining pathSubstring: String) {
        state.withLock { $0.injected.append((pathSubstring, status)) }
    }

    /// Stores `object` (a JSON object with `metadata.name`) as if created through the API.
    package func seed(path collectionPath: String, object: [String: Any]) {
        guard let (prefix, namespace, resource, _) = Self.parse(collectionPath),
            let metadata = object["metadata"] as? [String: Any], let name = metadata["name"] as? String
        else { preconditionFailure("bad seed path \(collectionPath)") }
        let bytes = Self.json(object)
        state.withLock { state in
            var object = Self.object(from: bytes) ?? [:]
            Self.stamp(&object, namespace: namespace, state: &state, create: true)
            state.objects[Key(prefix: prefix, namespace: namespace, resource: resource, name: name)] = Self.json(object)
        }
    }

    /// The stored object at `path` (`…/<resource>/<name>`), if any.
    package func object(at path: String) -> [String: Any]? {
        guard let (prefix, namespace, resource, name) = Self.parse(path), let name else { return nil }
        let bytes = state.withLock { $0.objects[Key(prefix: prefix, namespace: namespace, resource: resource, name: name)] }
        return bytes.flatMap(Self.object(from:))
    }

    // MARK: Request handling

    private func handle(method: String, uri: String, authorization: String?, contentType: String?, body: [UInt8]) -> (Int, [UInt8]) {
        let (path, query) = Self.split(uri)
        return state.withLock { state -> (Int, [UInt8]) in
            state.requests.append(
                Request(method: method, path: path, authorization: authorization, body: String(decoding: body, as: UTF8.self), contentType: contentType)
            )
            if let requiredToken, authorization != "Bearer \(requiredToken)" {
                return Self.status(401, reason: "Unauthorized", message: "Unauthorized")
            }
            if let index = state.injected.firstIndex(where: { path.contains($0.matching) }) {
                let injected = state.injected.remove(at: index)
                return Self.status(injected.status, reason: Self.reason(for: injected.status), message: "injected failure")
            }
            guard let (prefix, namespace, resource, name) = Self.parse(path) else {
                return Self.status(404, reason: "NotFound", message: "the server could not find the requested resource")
            }
            let kind = resource + (prefix.hasPrefix("apis/") ? "." + prefix.split(separator: "/")[1] : "")
            switch (method, name) {
            case ("GET", let name?):
                guard let object = state.objects[Key(prefix: prefix, namespace: namespace, resource: resource, name: name)] else {
                    return Self.status(404, reason: "NotFound", message: "\(kind) \"\(name)\" not found")
                }
                return (200, object)
            case ("GET", nil):
                let selector = Self.labelSelector(query)
                let items = state.objects
                    .filter { $0.key.prefix == prefix && $0.key.resource == resource && (namespace == "*" || $0.key.namespace == namespace) }
                    .sorted { $0.key.name < $1.key.name }
                    .compactMap { Self.object(from: $0.value) }
                    .filter { Self.matches($0, selector) }
                return (200, Self.json(["kind": "List", "apiVersion": "v1", "metadata": ["resourceVersion": "\(state.nextVersion)"], "items": items]))
            case ("POST", nil):
                guard var object = Self.object(from: body), let name = (object["metadata"] as? [String: Any])?["name"] as? String else {
                    return Self.status(400, reason: "BadRequest", message: "the request body is not a JSON object with metadata.name")
                }
                let key = Key(prefix: prefix, namespace: namespace, resource: resource, name: name)
                if state.objects[key] != nil {
                    return Self.status(409, reason: "AlreadyExists", message: "\(kind) \"\(name)\" already exists")
                }
                Self.stamp(&object, namespace: namespace, state: &state, create: true)
                state.objects[key] = Self.json(object)
                return (201, Self.json(object))
            case ("PUT", let name?):
                let key = Key(prefix: prefix, namespace: namespace, resource: resource, name: name)
                guard let existing = state.objects[key].flatMap(Self.object(from:)) else {
                    return Self.status(404, reason: "NotFound", message: "\(kind) \"\(name)\" not found")
                }
                guard var object = Self.object(from: body) else {
                    return Self.status(400, reason: "BadRequest", message: "the request body is not a JSON object")
                }
                let existingMeta = existing["metadata"] as? [String: Any] ?? [:]
                var meta = object["metadata"] as? [String: Any] ?? [:]
                if let given = meta["resourceVersion"] as? String, given != existingMeta["resourceVersion"] as? String {
                    return Self.status(
                        409,
                        reason: "Conflict",
                        message: "Operation cannot be fulfilled on \(kind) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again"
                    )
                }
                meta["uid"] = existingMeta["uid"]
                meta["creationTimestamp"] = existingMeta["creationTimestamp"]
                meta["generation"] = existingMeta["generation"]
                object["metadata"] = meta
                Self.stamp(&object, namespace: namespace, state: &state, create: false)
                state.objects[key] = Self.json(object)
                return (200, Self.json(object))
            case ("PATCH", let name?):
                let key = Key(prefix: prefix, namespace: namespace, resource: resource, name: name)
                return Self.patch(key, kind: kind, contentType: contentType, body: body, state: &state)
            case ("DELETE", let name?):
                guard state.objects.removeValue(forKey: Key(prefix: prefix, namespace: namespace, resource: resource, name: name)) != nil else {
                    return Self.status(404, reason: "NotFound", message: "\(kind) \"\(name)\" not found")
                }
                return Self.status(200, reason: "", message: "")
            default:
                return Self.status(405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
            }
        }
    }

    /// A merge patch of the object at `key`, with the API server's preconditions and bumps.
    private static func patch(_ key: Key, kind: String, contentType: String?, body: [UInt8], state: inout State) -> (Int, [UInt8]) {
        let mediaType = (contentType ?? "").split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        guard ["application/merge-patch+json", "application/strategic-merge-patch+json"].contains(mediaType) else {
            return status(415, reason: "UnsupportedMediaType", message: "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json")
        }
        guard let existing = state.objects[key].flatMap(object(from:)) else {
            return status(404, reason: "NotFound", message: "\(kind) \"\(key.name)\" not found")
        }
        guard let patch = object(from: body) else {
            return status(400, reason: "BadRequest", message: "the patch is not a JSON object")
        }
        let existingMeta = existing["metadata"] as? [String: Any] ?? [:]
        if let given = (patch["metadata"] as? [String: Any])?["resourceVersion"] as? String,
            given != existingMeta["resourceVersion"] as? String
        {
            return status(
                409,
                reason: "Conflict",
                message: "Operation cannot be fulfilled on \(kind) \"\(key.name)\": the object has been modified; please apply your changes to the latest version and try again"
            )
        }
        var merged = mergePatch(existing, patch) as? [String: Any] ?? [:]
        var meta = merged["metadata"] as? [String: Any] ?? [:]
        for field in ["uid", "name", "namespace", "creationTimestamp", "generation", "resourceVersion"] {
            meta[field] = existingMeta[field]
        }
        merged["metadata"] = meta
        let unchanged = json(merged) == json(existing)
        guard !unchanged else { return (200, json(existing)) }
        if json(["spec": merged["spec"] ?? NSNull()]) != json(["spec": existing["spec"] ?? NSNull()]) {
            meta["generation"] = ((existingMeta["generation"] as? Int) ?? 0) + 1
            merged["metadata"] = meta
        }
        stamp(&merged, namespace: key.namespace, state: &state, create: false)
        state.objects[key] = json(merged)
        return (200, json(merged))
    }

    /// RFC 7386: objects merge key by key, `null` removes a key, anything else replaces.
    private static func mergePatch(_ target: Any?, _ patch: Any) -> Any {
        guard let patch = patch as? [String: Any] else { return patch }
        var result = target as? [String: Any] ?? [:]
        for (key, value) in patch {
            if value is NSNull {
                result.removeValue(forKey: key)
            } else {
                result[key] = mergePatch(result[key], value)
            }
        }
        return result
    }

    private static func stamp(_ object: inout [String: Any], namespace: String, state: inout State, create: Bool) {
        var meta = object["metadata"] as? [String: Any] ?? [:]
        meta["namespace"] = namespace
        meta["resourceVersion"] = String(state.nextVersion)
        state.nextVersion += 1
        if create {
            meta["uid"] = UUID().uuidString.lowercased()
            meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
            meta["generation"] = 1
        }
        object["metadata"] = meta
    }

    private static func parse(_ path: String) -> (String, String, String, String?)? {
        let parts = path.split(separator: "/").map(String.init)
        let prefixCount: Int
        if parts.first == "api", parts.count >= 2 { prefixCount = 2 }
        else if parts.first == "apis", parts.count >= 3 { prefixCount = 3 }
        else { return nil }
        let rest = Array(parts.dropFirst(prefixCount))
        let prefixText = parts.prefix(prefixCount).joined(separator: "/")
        if rest.count == 1 { return (prefixText, "*", rest[0], nil) }  // a list across all namespaces
        guard rest.count == 3 || rest.count == 4, rest[0] == "namespaces" else { return nil }
        let prefix = parts.prefix(prefixCount).joined(separator: "/")
        return (prefix, rest[1], rest[2], rest.count == 4 ? rest[3].removingPercentEncoding : nil)
    }

    private static func split(_ uri: String) -> (String, String) {
        guard let question = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<question]), String(uri[uri.index(after: question)...]))
    }

    private static func labelSelector(_ query: String) -> [String: String] {
        var selector: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0] == "labelSelector", let decoded = parts[1].removingPercentEncoding else { continue }
            for term in decoded.split(separator: ",") {
                let kv = term.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2 { selector[kv[0]] = kv[1] }
            }
        }
        return selector
    }

    private static func matches(_ object: [String: Any], _ selector: [String: String]) -> Bool {
        let labels = (object["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
        return selector.allSatisfy { labels[$0.key] == $0.value }
    }

    private static func reason(for status: Int) -> String {
        switch status {
        case 403: return "Forbidden"
        case 404: return "NotFound"
        case 409: return "Conflict"
        case 500: return "InternalError"
        case 503: return "ServiceUnavailable"
        default: return "Unknown"
        }
    }

    private static func status(_ code: Int, reason: String, message: String) -> (Int, [UInt8]) {
        let body: [String: Any] = [
            "kind": "Status", "apiVersion": "v1", "metadata": [String: Any](),
            "status": code < 300 ? "Success" : "Failure", "message": message, "reason": reason, "code": code,
        ]
        return (code, json(body))
    }

    private static func object(from body: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    private static func json(_ value: Any) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data())
    }
}

/// Lets the channel handlers reach the server once it is initialised.
private final class Box: Sendable {
    let server = Mutex<FakeKubernetesAPIServer?>(nil)
}

