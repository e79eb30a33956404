import Foundation
import NIOHTTP1
import SecretsStoreHTTPServer
import Synchronization

/// A Kubernetes API server stand-in that speaks the real REST protocol (JSON) over HTTP on loopback, with the
/// semantics the driver and its sync controller rely on, kept honest against the real `kubectl`
/// (Tests/FakeAPIServerTests).
///
/// When to use it: a test that only needs an API server that works uses the real one
/// (``RealKubernetesAPIServer``: etcd + kube-apiserver, our CRDs, HTTPS, RBAC). This fake is for what a real
/// server cannot be made to do on demand, and for programs that must run without one:
///
/// - Injected answers (``injectFailure(status:forPathContaining:)``): 5xx (retries, the `unavailable`
///   mapping), a 409 at a chosen request (conflict handling), a 403 on one path only, or a 200 standing in for a
///   write. Used by ControllerWatchFaultTests (403/503 on a watch), RESTKubernetesClientFaultTests (500, 403,
///   409 during a pod status apply), CRDApplyTests (503 retried `attempts` times) and the end-to-end suites
///   (FaultTests, UnixSocketTests, RestartOnRotationEndToEndTests, RenderEndToEndTests).
/// - Watch faults at will: ``closeWatches()`` (a dropped watch), ``expireHistory()`` (compaction: 410 Expired
///   for any older resourceVersion), bookmarks every few milliseconds (`bookmarkInterval`), and
///   ``openWatchCount`` (whether a cancelled consumer closed its connection). Used by ControllerWatchFaultTests
///   and FakeAPIServerTests.
/// - Request recording (``requests``): what went over the wire (method, path, content type, body, the
///   `Authorization` header), e.g. that a cached read makes no request, which events were posted, that no
///   secret value is in any body. Used by CRDApplyTests (request count), the end-to-end suites
///   (SecrecyAndLeakTests, AzureObjectsAndSyncEndToEndTests, RestartOnRotationEndToEndTests,
///   SyncControllerEndToEndTests, RotationEndToEndTests) and KubectlTests.
/// - A bearer token the test chooses, checked on every request (`requiredToken`: a sentinel the leak tests
///   search logs and bodies for), and TokenRequest tokens it chooses (`tokenIssuer`, with ``tokenRequests``
///   recorded): SyncControllerEndToEndTests, SecrecyAndLeakTests, FakeAPIServerTests.
/// - No binaries and no start-up cost: the demo (`secrets-store-csi-demo`), the benchmark (`csi-bench`) and the
///   in-process end-to-end driver harness (DriverHarness) run against it.
///
/// Where it is not the real server: no schema validation, pruning or defaulting, no RBAC, no server-side apply,
/// strategic merge treated as a merge patch, and list items keep the `apiVersion`/`kind` they were stored with
/// (the real server leaves them out of the items of a built-in type's list).
///
/// What it implements:
///
/// - Storage: objects stored as JSON, `resourceVersion` from one counter bumped on every write and checked on
///   update (409 Conflict), 409 AlreadyExists on create, 404 NotFound, `labelSelector` (`k=v,…`) and
///   `fieldSelector=metadata.name=…` on list and watch, lists carrying the collection's `resourceVersion`,
///   `Status` bodies shaped like the API server's, bearer-token checking, injected failures.
/// - Paths: `/api/v1/namespaces/<ns>/<resource>[/<name>[/<subresource>]]`,
///   `/apis/<group>/<version>/namespaces/<ns>/<resource>[/<name>[/<subresource>]]`, `<prefix>/<resource>` (a
///   list across namespaces), and `<prefix>/<resource>[/<name>[/status]]` for the cluster-scoped resources
///   (``clusterScopedResources``: csidrivers, customresourcedefinitions, namespaces).
/// - `PATCH` takes `application/merge-patch+json` (RFC 7386) and `application/strategic-merge-patch+json`
///   (merged the same way: maps merge, `null` deletes, lists are replaced, `$`-directives are dropped), other
///   patch types get 415. A `metadata.resourceVersion` in a patch or PUT body is a precondition (409 when
///   stale); `uid`, `name`, `namespace`, `creationTimestamp` and `generation` cannot be changed; a write that
///   changes nothing writes nothing (same resourceVersion); one that changes `spec` bumps `metadata.generation`.
/// - Status subresource for ``statusSubresources`` (by default SecretProviderClasses): `GET|PUT|PATCH
///   …/<name>/status` reads or changes only `.status` (generation not bumped), and main-resource writes keep
///   the stored `.status` whatever the body says.
/// - Watch (`?watch=true|1`): a chunked stream of `{"type":…,"object":…}` lines from `resourceVersion` (absent
///   or `"0"`: ADDED for every current object first), from a history of the last ``historyLimit`` changes
///   (older: HTTP 410 Expired, or an ERROR event with a 410 Status once streaming); BOOKMARK events every
///   `bookmarkInterval` with `allowWatchBookmarks=true`; `timeoutSeconds` ends the stream; at most
///   ``maximumOpenWatches`` streams (429 beyond). ``closeWatches()`` and ``expireHistory()`` simulate
///   connection loss and compaction.
/// - Deletes answer a Success Status, emit DELETED with the object's last state (resourceVersion bumped), then
///   garbage-collect, cascading, every object whose `ownerReferences` all name UIDs that no longer exist.
/// - `POST …/serviceaccounts/<sa>/token` (TokenRequest): 404 without the ServiceAccount, else 201 with
///   `status.token` from the `tokenIssuer` closure and `status.expirationTimestamp`.
/// - Discovery for clients such as kubectl: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`
///   (legacy, non-aggregated) for the resources in ``catalog``; `/openapi/*` is 404 (kubectl falls back).
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

    /// One TokenRequest answered with a token (the token itself is not kept).
    package struct IssuedTokenRequest: Sendable, Equatable {
        package var namespace: String
        package var serviceAccount: String
        package var audiences: [String]
        package var expirationSeconds: Int

        package init(namespace: String, serviceAccount: String, audiences: [String], expirationSeconds: Int) {
            self.namespace = namespace
            self.serviceAccount = serviceAccount
            self.audiences = audiences
            self.expirationSeconds = expirationSeconds
        }
    }

    /// Issues the token of a TokenRequest: namespace, service account, audiences, expiration seconds.
    package typealias TokenIssuer = @Sendable (String, String, [String], Int) -> String

    /// One resource the discovery documents list.
    package struct CatalogEntry: Sendable {
        package var groupVersion: String
        package var resource: String
        package var kind: String
        package var namespaced: Bool
        package var verbs: [String]
    }

    /// The resources of the discovery documents (others are still stored, just not listed).
    package static let catalog: [CatalogEntry] = {
        let all = ["create", "delete", "get", "list", "patch", "update", "watch"]
        return [
            .init(groupVersion: "v1", resource: "namespaces", kind: "Namespace", namespaced: false, verbs: all),
            .init(groupVersion: "v1", resource: "secrets", kind: "Secret", namespaced: true, verbs: all),
            .init(groupVersion: "v1", resource: "configmaps", kind: "ConfigMap", namespaced: true, verbs: all),
            .init(groupVersion: "v1", resource: "pods", kind: "Pod", namespaced: true, verbs: all),
            .init(groupVersion: "v1", resource: "events", kind: "Event", namespaced: true, verbs: all),
            .init(groupVersion: "v1", resource: "serviceaccounts", kind: "ServiceAccount", namespaced: true, verbs: all),
            .init(groupVersion: "v1", resource: "serviceaccounts/token", kind: "TokenRequest", namespaced: true, verbs: ["create"]),
            .init(groupVersion: "apps/v1", resource: "deployments", kind: "Deployment", namespaced: true, verbs: all),
            .init(groupVersion: "apps/v1", resource: "statefulsets", kind: "StatefulSet", namespaced: true, verbs: all),
            .init(groupVersion: "apps/v1", resource: "daemonsets", kind: "DaemonSet", namespaced: true, verbs: all),
            .init(groupVersion: "apps/v1", resource: "replicasets", kind: "ReplicaSet", namespaced: true, verbs: all),
            .init(groupVersion: "storage.k8s.io/v1", resource: "csidrivers", kind: "CSIDriver", namespaced: false, verbs: all),
            .init(groupVersion: "apiextensions.k8s.io/v1", resource: "customresourcedefinitions", kind: "CustomResourceDefinition", namespaced: false, verbs: all),
            .init(groupVersion: "coordination.k8s.io/v1", resource: "leases", kind: "Lease", namespaced: true, verbs: all),
            .init(groupVersion: "secrets-store.csi.x-k8s.io/v1", resource: "secretproviderclasses", kind: "SecretProviderClass", namespaced: true, verbs: all),
            .init(groupVersion: "secrets-store.csi.x-k8s.io/v1", resource: "secretproviderclasses/status", kind: "SecretProviderClass", namespaced: true, verbs: ["get", "patch", "update"]),
            .init(groupVersion: "secrets-store.csi.x-k8s.io/v1", resource: "secretproviderclasspodstatuses", kind: "SecretProviderClassPodStatus", namespaced: true, verbs: all),
        ]
    }()

    /// Resources served without a namespace in the path.
    package static let clusterScopedResources: Set<String> = ["csidrivers", "customresourcedefinitions", "namespaces"]
    /// How many changes the watch history keeps.
    package static let historyLimit = 1000
    /// How many watch streams may be open at once.
    package static let maximumOpenWatches = 256

    struct Key: Hashable {
        var prefix: String  // "api/v1" or "apis/<group>/<version>"
        var namespace: String  // "" for cluster-scoped objects
        var resource: String
        var name: String
    }

    /// What a request addresses.
    struct Target {
        var prefix: String
        /// `"*"`: every namespace (a list); `""`: cluster-scoped.
        var namespace: String
        var resource: String
        var name: String?
        var subresource: String?

        func key(_ name: String) -> Key { Key(prefix: prefix, namespace: namespace, resource: resource, name: name) }
    }

    /// One recorded change.
    struct Change {
        var version: Int
        var type: String
        var key: Key
        var object: [UInt8]
    }

    /// One open watch stream.
    struct Watcher {
        var target: Target
        var labels: [String: String]
        var fieldName: String?
        var bookmarks: Bool
        var stream: ResponseStream
    }

    struct State {
        var objects: [Key: [UInt8]] = [:]
        var nextVersion = 1
        var requests: [Request] = []
        var injected: [(matching: String, status: Int)] = []
        var history: [Change] = []
        /// Every change after this version is in `history`.
        var historyStart = 0
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        var tokenRequests: [IssuedTokenRequest] = []
    }

    let state = Mutex<State>(State())
    private let requiredToken: String?
    private let server: RunningHTTPListener
    private let tokenIssuer: TokenIssuer
    let statusSubresources: Set<String>
    private let bookmarkTask: Task<Void, Never>
    /// `http://127.0.0.1:<port>`.
    package let url: String

    /// Starts listening on an ephemeral loopback port.
    ///
    /// - Parameters:
    ///   - requiredToken: the bearer token every request must carry (401 otherwise); `nil` checks none.
    ///   - bookmarkInterval: how often open watches with `allowWatchBookmarks=true` get a BOOKMARK.
    ///   - statusSubresources: `<group>/<resource>` (`""` group for the core API) with a status subresource.
    ///   - tokenIssuer: makes the token of each TokenRequest; by default an opaque random string.
    package init(
        requiredToken: String? = nil,
        bookmarkInterval: Duration = .seconds(1),
        statusSubresources: Set<String> = ["secrets-store.csi.x-k8s.io/secretproviderclasses"],
        tokenIssuer: @escaping TokenIssuer = { _, _, _, _ in
            (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 36) }.joined()
        }
    ) async throws {
        self.requiredToken = requiredToken
        self.tokenIssuer = tokenIssuer
        self.statusSubresources = statusSubresources
        let holder = Box()
        server = try await RunningHTTPListener { request in
            guard let fake = holder.server.withLock({ $0 }) else { return .init(status: 503) }
            let uri = request.query.isEmpty ? request.path : request.path + "?" + request.query
            let answer = fake.handle(
                method: request.method,
                uri: uri,
                authorization: request.headers.first(name: "Authorization"),
                contentType: request.headers.first(name: "Content-Type"),
                body: request.body
            )
            switch answer {
            case .plain(let answer):
                return .init(status: answer.0, headers: [("Content-Type", "application/json")], body: answer.1)
            case .watch(let watch):
                return .streaming(status: 200, headers: [("Content-Type", "application/json")]) { stream in
                    fake.startWatch(watch, stream: stream)
                }
            }
        }
        url = "http://127.0.0.1:\(server.port)"
        bookmarkTask = Task { [weak holder] in
            while !Task.isCancelled {
                try? await Task.sleep(for: bookmarkInterval)
                guard let fake = holder?.server.withLock({ $0 }) else { return }
                fake.sendBookmarks()
            }
        }
        holder.server.withLock { $0 = self }
    }

    /// Stops serving: ends every watch, closes the listening socket and every open connection.
    package func shutdown() async throws {
        bookmarkTask.cancel()
        closeWatches()
        try await server.shutdown()
    }

    // MARK: Test controls

    /// Every request answered so far, in order.
    package var requests: [Request] { state.withLock { $0.requests } }
    /// Forgets the recorded requests (long runs that measure memory).
    package func removeRecordedRequests() { state.withLock { $0.requests.removeAll() } }
    /// Every TokenRequest answered with a token, in order.
    package var tokenRequests: [IssuedTokenRequest] { state.withLock { $0.tokenRequests } }
    /// How many watch streams are open.
    package var openWatchCount: Int { state.withLock { $0.watchers.count } }

    /// Answers the next request whose path contains `pathSubstring` with `status` and a matching Status body.
    package func injectFailure(status: Int, forPathContaining pathSubstring: String) {
        state.withLock { $0.injected.append((pathSubstring, status)) }
    }

    /// Ends every open watch stream (as a dropped connection would): clients must watch again.
    package func closeWatches() {
        let streams = state.withLock { state -> [ResponseStream] in
            defer { state.watchers.removeAll() }
            return state.watchers.values.map(\.stream)
        }
        for stream in streams { stream.finish() }
    }

    /// Forgets the watch history: every resourceVersion before now is 410 Expired.
    package func expireHistory() {
        state.withLock { state in
            state.history.removeAll()
            state.historyStart = state.nextVersion - 1
        }
    }

    /// Stores `object` (a JSON object with `metadata.name`) as if created through the API (an ADDED event).
    package func seed(path collectionPath: String, object: [String: Any]) {
        guard let target = Self.parse(collectionPath),
            let metadata = object["metadata"] as? [String: Any], let name = metadata["name"] as? String
        else { preconditionFailure("bad seed path \(collectionPath)") }
        let bytes = Self.json(object)
        state.withLock { state in
            var object = Self.object(from: bytes) ?? [:]
            let key = target.key(name)
            Self.stamp(&object, namespace: target.namespace, state: &state, create: true)
            let type = state.objects[key] == nil ? "ADDED" : "MODIFIED"
            state.objects[key] = Self.json(object)
            Self.record(type, key: key, object: object, state: &state)
        }
    }

    /// The stored object at `path` (`…/<resource>/<name>`), if any.
    package func object(at path: String) -> [String: Any]? {
        guard let target = Self.parse(path), let name = target.name else { return nil }
        let bytes = state.withLock { $0.objects[target.key(name)] }
        return bytes.flatMap(Self.object(from:))
    }

    // MARK: Request handling

    enum Answer {
        case plain((Int, [UInt8]))
        case watch(WatchRequest)
    }

    private func handle(method: String, uri: String, authorization: String?, contentType: String?, body: [UInt8]) -> Answer {
        let (path, query) = Self.split(uri)
        return state.withLock { state -> Answer in
            state.requests.append(
                Request(method: method, path: path, authorization: authorization, body: String(decoding: body, as: UTF8.self), contentType: contentType)
            )
            if let requiredToken, authorization != "Bearer \(requiredToken)" {
                return .plain(Self.status(401, reason: "Unauthorized", message: "Unauthorized"))
            }
            if let index = state.injected.firstIndex(where: { path.contains($0.matching) }) {
                let injected = state.injected.remove(at: index)
                return .plain(Self.status(injected.status, reason: Self.reason(for: injected.status), message: "injected failure"))
            }
            if method == "GET", let document = discovery(path) {
                return .plain((200, Self.json(document)))
            }
            guard let target = Self.parse(path) else {
                return .plain(Self.status(404, reason: "NotFound", message: "the server could not find the requested resource"))
            }
            let parameters = Self.parameters(query)
            if method == "GET", target.subresource == nil, ["true", "1"].contains(parameters["watch"] ?? "") {
                return watchRequest(target, parameters: parameters, state: &state)
            }
            return .plain(handle(method: method, target: target, parameters: parameters, contentType: contentType, body: body, state: &state))
        }
    }

    private func handle(method: String, target: Target, parameters: [String: String], contentType: String?, body: [UInt8], state: inout State) -> (Int, [UInt8]) {
        let kind = target.resource + (target.prefix.hasPrefix("apis/") ? "." + target.prefix.split(separator: "/")[1] : "")
        let hasStatus = statusSubresources.contains(Self.group(of: target.prefix) + "/" + target.resource)
        switch (method, target.name, target.subresource) {
        case ("POST", let name?, "token") where target.resource == "serviceaccounts":
            return tokenRequest(namespace: target.namespace, serviceAccount: name, body: body, state: &state)
        case (_, _, let subresource?) where subresource != "status" || !hasStatus:
            return Self.status(404, reason: "NotFound", message: "the server could not find the requested resource")
        case ("GET", let name?, _):
            guard let object = state.objects[target.key(name)] else {
                return Self.status(404, reason: "NotFound", message: "\(kind) \"\(name)\" not found")
            }
            return (200, object)
        case ("GET", nil, _):
            let items = Self.matching(target, labels: Self.labelSelector(parameters), fieldName: Self.fieldName(parameters), state: state)
                .map(\.1)
            let entry = Self.catalog.first { $0.resource == target.resource && Self.prefix(of: $0.groupVersion) == target.prefix }
            return (
                200,
                Self.json([
                    "kind": entry.map { $0.kind + "List" } ?? "List",
                    "apiVersion": entry?.groupVersion ?? "v1",
                    "metadata": ["resourceVersion": "\(state.nextVersion - 1)"],
                    "items": items,
                ])
            )
        case ("POST", nil, nil):
            guard target.namespace != "*" else {
                return Self.status(405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
            }
            guard var object = Self.object(from: body), let name = (object["metadata"] as? [String: Any])?["name"] as? String else {
                return Self.status(400, reason: "BadRequest", message: "the request body is not a JSON object with metadata.name")
            }
            let key = target.key(name)
            if state.objects[key] != nil {
                return Self.status(409, reason: "AlreadyExists", message: "\(kind) \"\(name)\" already exists")
            }
            Self.stamp(&object, namespace: target.namespace, state: &state, create: true)
            state.objects[key] = Self.json(object)
            Self.record("ADDED", key: key, object: object, state: &state)
            return (201, Self.json(object))
        case ("PUT", let name?, let subresource):
            guard let existing = state.objects[target.key(name)].flatMap(Self.object(from:)) else {
                return Self.status(404, reason: "NotFound", message: "\(kind) \"\(name)\" not found")
            }
            guard let object = Self.object(from: body) else {
                return Self.status(400, reason: "BadRequest", message: "the request body is not a JSON object")
            }
            if let given = (object["metadata"] as? [String: Any])?["resourceVersion"] as? String,
                given != (existing["metadata"] as? [String: Any])?["resourceVersion"] as? String
            {
                return Self.conflict(kind, name)
            }
            return write(object, over: existing, key: target.key(name), statusOnly: subresource != nil, keepStatus: hasStatus, state: &state)
        case ("PATCH", let name?, let subresource):
            let mediaType = (contentType ?? "").split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
            guard ["application/merge-patch+json", "application/strategic-merge-patch+json"].contains(mediaType) else {
                return Self.status(415, reason: "UnsupportedMediaType", message: "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json")
            }
            guard let existing = state.objects[target.key(name)].flatMap(Self.object(from:)) else {
                return Self.status(404, reason: "NotFound", message: "\(kind) \"\(name)\" not found")
            }
            guard let patch = Self.object(from: body) else {
                return Self.status(400, reason: "BadRequest", message: "the patch is not a JSON object")
            }
            if let given = (patch["metadata"] as? [String: Any])?["resourceVersion"] as? String,
                given != (existing["metadata"] as? [String: Any])?["resourceVersion"] as? String
            {
                return Self.conflict(kind, name)
            }
            let merged = Self.mergePatch(existing, patch, strategic: mediaType.contains("strategic")) as? [String: Any] ?? [:]
            return write(merged, over: existing, key: target.key(name), statusOnly: subresource != nil, keepStatus: hasStatus, state: &state)
        case ("DELETE", let name?, nil):
            guard let bytes = state.objects.removeValue(forKey: target.key(name)), var object = Self.object(from: bytes) else {
                return Self.status(404, reason: "NotFound", message: "\(kind) \"\(name)\" not found")
            }
            Self.stamp(&object, namespace: target.namespace, state: &state, create: false)
            Self.record("DELETED", key: target.key(name), object: object, state: &state)
            Self.collectGarbage(state: &state)
            return Self.status(200, reason: "", message: "")
        default:
            return Self.status(405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
        }
    }

    /// Stores `proposed` over `existing` with the API server's rules: immutable metadata kept, `.status` only
    /// (status subresource) or everything but `.status` (main resource of a type with one), generation bumped
    /// when `spec` changed on the main resource, nothing written when nothing changed.
    private func write(_ proposed: [String: Any], over existing: [String: Any], key: Key, statusOnly: Bool, keepStatus: Bool, state: inout State) -> (Int, [UInt8]) {
        var object: [String: Any]
        if statusOnly {
            object = existing
            object["status"] = proposed["status"]
        } else {
            object = proposed
            if keepStatus { object["status"] = existing["status"] }
            let existingMeta = existing["metadata"] as? [String: Any] ?? [:]
            var meta = object["metadata"] as? [String: Any] ?? [:]
            for field in ["uid", "name", "namespace", "creationTimestamp", "generation", "resourceVersion"] {
                meta[field] = existingMeta[field]
            }
            object["metadata"] = meta
        }
        guard Self.json(object) != Self.json(existing) else { return (200, Self.json(existing)) }
        if !statusOnly, Self.json(["spec": object["spec"] ?? NSNull()]) != Self.json(["spec": existing["spec"] ?? NSNull()]) {
            var meta = object["metadata"] as? [String: Any] ?? [:]
            meta["generation"] = ((meta["generation"] as? Int) ?? 0) + 1
            object["metadata"] = meta
        }
        Self.stamp(&object, namespace: key.namespace, state: &state, create: false)
        state.objects[key] = Self.json(object)
        Self.record("MODIFIED", key: key, object: object, state: &state)
        return (200, Self.json(object))
    }

    /// A TokenRequest for `serviceAccount`.
    private func tokenRequest(namespace: String, serviceAccount: String, body: [UInt8], state: inout State) -> (Int, [UInt8]) {
        guard state.objects[Key(prefix: "api/v1", namespace: namespace, resource: "serviceaccounts", name: serviceAccount)] != nil else {
            return Self.status(404, reason: "NotFound", message: "serviceaccounts \"\(serviceAccount)\" not found")
        }
        // kubectl sends TokenRequests as Kubernetes protobuf (`k8s\0` + runtime.Unknown); clients may send JSON.
        let decoded = KubernetesProtobuf.tokenRequestSpec(body).map { spec -> [String: Any] in
            var fields: [String: Any] = ["audiences": spec.audiences]
            if let seconds = spec.expirationSeconds { fields["expirationSeconds"] = seconds }
            return ["spec": fields]
        }
        guard let request = decoded ?? Self.object(from: body) else {
            return Self.status(400, reason: "BadRequest", message: "the request body is not a JSON object")
        }
        let spec = request["spec"] as? [String: Any] ?? [:]
        let audiences = spec["audiences"] as? [String] ?? []
        let expirationSeconds = (spec["expirationSeconds"] as? Int) ?? 3600
        let token = tokenIssuer(namespace, serviceAccount, audiences, expirationSeconds)
        state.tokenRequests.append(.init(namespace: namespace, serviceAccount: serviceAccount, audiences: audiences, expirationSeconds: expirationSeconds))
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        var answer = request
        answer["apiVersion"] = "authentication.k8s.io/v1"
        answer["kind"] = "TokenRequest"
        answer["metadata"] = ["name": serviceAccount, "namespace": namespace, "creationTimestamp": formatter.string(from: Date())]
        var answerSpec = spec
        answerSpec["audiences"] = audiences
        answerSpec["expirationSeconds"] = expirationSeconds
        answer["spec"] = answerSpec
        answer["status"] = ["token": token, "expirationTimestamp": formatter.string(from: Date().addingTimeInterval(TimeInterval(expirationSeconds)))]
        return (201, Self.json(answer))
    }

    /// Deletes, until none is left, every object whose owner references all name objects that no longer exist.
    private static func collectGarbage(state: inout State) {
        while true {
            let uids = Set(state.objects.values.compactMap { (object(from: $0)?["metadata"] as? [String: Any])?["uid"] as? String })
            let orphans = state.objects.compactMap { key, bytes -> (Key, [String: Any])? in
                guard let object = object(from: bytes),
                    let owners = (object["metadata"] as? [String: Any])?["ownerReferences"] as? [[String: Any]], !owners.isEmpty,
                    owners.allSatisfy({ !uids.contains($0["uid"] as? String ?? "") })
                else { return nil }
                return (key, object)
            }
            guard !orphans.isEmpty else { return }
            for (key, var object) in orphans.sorted(by: { $0.0.name < $1.0.name }) {
                state.objects.removeValue(forKey: key)
                stamp(&object, namespace: key.namespace, state: &state, create: false)
                record("DELETED", key: key, object: object, state: &state)
            }
        }
    }

    /// RFC 7386: objects merge key by key, `null` removes a key, anything else replaces. A strategic merge
    /// drops its `$`-directives.
    private static func mergePatch(_ target: Any?, _ patch: Any, strategic: Bool = false) -> Any {
        guard let patch = patch as? [String: Any] else { return patch }
        var result = target as? [String: Any] ?? [:]
        for (key, value) in patch {
            if strategic, key.hasPrefix("$") { continue }
            if value is NSNull {
                result.removeValue(forKey: key)
            } else {
                result[key] = mergePatch(result[key], value, strategic: strategic)
            }
        }
        return result
    }

    static func stamp(_ object: inout [String: Any], namespace: String, state: inout State, create: Bool) {
        var meta = object["metadata"] as? [String: Any] ?? [:]
        if namespace.isEmpty || namespace == "*" {
            meta.removeValue(forKey: "namespace")
        } else {
            meta["namespace"] = namespace
        }
        meta["resourceVersion"] = String(state.nextVersion)
        state.nextVersion += 1
        if create {
            meta["uid"] = UUID().uuidString.lowercased()
            meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
            meta["generation"] = 1
        }
        object["metadata"] = meta
    }

    static func parse(_ path: String) -> Target? {
        let parts = path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        let prefixCount: Int
        if parts.first == "api", parts.count >= 2 { prefixCount = 2 }
        else if parts.first == "apis", parts.count >= 3 { prefixCount = 3 }
        else { return nil }
        let rest = Array(parts.dropFirst(prefixCount))
        let prefix = parts.prefix(prefixCount).joined(separator: "/")
        guard let resource = rest.first else { return nil }
        if clusterScopedResources.contains(resource), !(resource == "namespaces" && rest.count >= 3 && rest.count <= 5 && rest[2] != "status") {
            guard rest.count <= 3 else { return nil }
            return Target(prefix: prefix, namespace: "", resource: resource, name: rest.count > 1 ? rest[1] : nil, subresource: rest.count > 2 ? rest[2] : nil)
        }
        if rest.count == 1 { return Target(prefix: prefix, namespace: "*", resource: resource) }  // every namespace
        guard (3...5).contains(rest.count), rest[0] == "namespaces" else { return nil }
        return Target(prefix: prefix, namespace: rest[1], resource: rest[2], name: rest.count > 3 ? rest[3] : nil, subresource: rest.count > 4 ? rest[4] : nil)
    }

    static func split(_ uri: String) -> (String, String) {
        guard let question = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<question]), String(uri[uri.index(after: question)...]))
    }

    static func parameters(_ query: String) -> [String: String] {
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            let value = parts.count == 2 ? parts[1].replacingOccurrences(of: "+", with: " ") : ""
            parameters[parts[0]] = value.removingPercentEncoding ?? value
        }
        return parameters
    }

    static func labelSelector(_ parameters: [String: String]) -> [String: String] {
        var selector: [String: String] = [:]
        for term in (parameters["labelSelector"] ?? "").split(separator: ",") {
            let kv = term.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .init(charactersIn: "= ")) }
            if kv.count == 2 { selector[kv[0]] = kv[1] }
        }
        return selector
    }

    static func fieldName(_ parameters: [String: String]) -> String? {
        guard let field = parameters["fieldSelector"], field.hasPrefix("metadata.name=") else { return nil }
        return String(field.dropFirst("metadata.name=".count))
    }

    /// The stored objects `target` (a collection) addresses that match the selectors, by namespace and name.
    static func matching(_ target: Target, labels: [String: String], fieldName: String?, state: State) -> [(Key, [String: Any])] {
        state.objects
            .filter { covers(target, $0.key) && (fieldName == nil || $0.key.name == fieldName) }
            .sorted { ($0.key.namespace, $0.key.name) < ($1.key.namespace, $1.key.name) }
            .compactMap { key, bytes in object(from: bytes).map { (key, $0) } }
            .filter { matches($0.1, labels) }
    }

    static func covers(_ target: Target, _ key: Key) -> Bool {
        key.prefix == target.prefix && key.resource == target.resource && (target.namespace == "*" || key.namespace == target.namespace)
    }

    static func matches(_ object: [String: Any], _ selector: [String: String]) -> Bool {
        let labels = (object["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
        return selector.allSatisfy { labels[$0.key] == $0.value }
    }

    static func group(of prefix: String) -> String {
        prefix.hasPrefix("apis/") ? String(prefix.split(separator: "/")[1]) : ""
    }

    static func prefix(of groupVersion: String) -> String {
        groupVersion.contains("/") ? "apis/" + groupVersion : "api/" + groupVersion
    }

    static func conflict(_ kind: String, _ name: String) -> (Int, [UInt8]) {
        status(
            409,
            reason: "Conflict",
            message: "Operation cannot be fulfilled on \(kind) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again"
        )
    }

    private static func reason(for status: Int) -> String {
        switch status {
        case 403: return "Forbidden"
        case 404: return "NotFound"
        case 409: return "Conflict"
        case 410: return "Expired"
        case 429: return "TooManyRequests"
        case 500: return "InternalError"
        case 503: return "ServiceUnavailable"
        default: return "Unknown"
        }
    }

    static func statusObject(_ code: Int, reason: String, message: String) -> [String: Any] {
        [
            "kind": "Status", "apiVersion": "v1", "metadata": [String: Any](),
            "status": code < 300 ? "Success" : "Failure", "message": message, "reason": reason, "code": code,
        ]
    }

    static func status(_ code: Int, reason: String, message: String) -> (Int, [UInt8]) {
        (code, json(statusObject(code, reason: reason, message: message)))
    }

    static func object(from body: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    static func json(_ value: Any) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data())
    }
}

/// Lets the channel handlers reach the server once it is initialised.
private final class Box: Sendable {
    let server = Mutex<FakeKubernetesAPIServer?>(nil)
}

/// Just enough of Kubernetes' protobuf encoding to read a TokenRequest: the `k8s\0` magic, the
/// `runtime.Unknown` envelope (field 2: the raw object) and `TokenRequestSpec` (field 1 `audiences`, field 4
/// `expirationSeconds`) inside `TokenRequest` field 2.
enum KubernetesProtobuf {
    static let magic: [UInt8] = [0x6B, 0x38, 0x73, 0x00]

    /// The audiences and expiration of a protobuf TokenRequest; `nil` when `body` is not one.
    static func tokenRequestSpec(_ body: [UInt8]) -> (audiences: [String], expirationSeconds: Int?)? {
        guard body.count > 4, Array(body.prefix(4)) == magic,
            let raw = fields(body[4...]).first(where: { $0.number == 2 })?.bytes,
            let spec = fields(raw).first(where: { $0.number == 2 })?.bytes
        else { return nil }
        var audiences: [String] = []
        var expiration: Int?
        for field in fields(spec) {
            switch field.number {
            case 1: if let bytes = field.bytes { audiences.append(String(decoding: bytes, as: UTF8.self)) }
            case 4: expiration = field.varint.map { Int($0) }
            default: break
            }
        }
        return (audiences, expiration)
    }

    struct Field {
        var number: Int
        var varint: UInt64?
        var bytes: ArraySlice<UInt8>?
    }

    /// The fields of one message; stops at the first malformed one.
    static func fields(_ message: ArraySlice<UInt8>) -> [Field] {
        var result: [Field] = []
        var index = message.startIndex
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < message.endIndex, shift < 64 {
                let byte = message[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        while index < message.endIndex {
            guard let key = varint() else { break }
            let number = Int(key >> 3)
            switch key & 7 {
            case 0:
                guard let value = varint() else { return result }
                result.append(Field(number: number, varint: value))
            case 2:
                guard let length = varint(), length <= UInt64(message.endIndex - index) else { return result }
                let end = index + Int(length)
                result.append(Field(number: number, bytes: message[index..<end]))
                index = end
            case 1:
                guard message.endIndex - index >= 8 else { return result }
                index += 8
            case 5:
                guard message.endIndex - index >= 4 else { return result }
                index += 4
            default:
                return result
            }
        }
        return result
    }
}
