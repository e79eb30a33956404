import Foundation
import SecretsStoreHTTPServer
import Synchronization

/// Watch streams, the change history and the discovery documents of ``FakeKubernetesAPIServer``.
extension FakeKubernetesAPIServer {
    /// A watch accepted by the request handler, started once the response head is out.
    struct WatchRequest {
        var target: Target
        var labels: [String: String]
        var fieldName: String?
        /// `nil`: send every current object as ADDED first.
        var fromVersion: Int?
        var bookmarks: Bool
        var timeout: Duration?
    }

    /// Checks a watch request; a 4xx answer when it cannot be served.
    func watchRequest(_ target: Target, parameters: [String: String], state: inout State) -> Answer {
        guard target.name == nil else {
            return .plain(Self.status(405, reason: "MethodNotAllowed", message: "watch a collection, with fieldSelector=metadata.name=<name>"))
        }
        var fromVersion: Int?
        if let given = parameters["resourceVersion"], !given.isEmpty, given != "0" {
            guard let version = Int(given) else {
                return .plain(Self.status(400, reason: "BadRequest", message: "invalid resourceVersion \"\(given)\""))
            }
            guard version >= state.historyStart else {
                return .plain(Self.status(410, reason: "Expired", message: "too old resource version: \(version) (\(state.historyStart))"))
            }
            fromVersion = version
        }
        guard state.watchers.count < Self.maximumOpenWatches else {
            return .plain(Self.status(429, reason: "TooManyRequests", message: "too many open watches"))
        }
        let timeout = parameters["timeoutSeconds"].flatMap(Int.init).map { Duration.seconds(max(0, $0)) }
        return .watch(
            WatchRequest(
                target: target,
                labels: Self.labelSelector(parameters),
                fieldName: Self.fieldName(parameters),
                fromVersion: fromVersion,
                bookmarks: ["true", "1"].contains(parameters["allowWatchBookmarks"] ?? ""),
                timeout: timeout
            )
        )
    }

    /// Sends the initial events of `watch` and registers it for later changes, all under the lock (no gap).
    func startWatch(_ watch: WatchRequest, stream: ResponseStream) {
        let id = state.withLock { state -> Int? in
            if let from = watch.fromVersion {
                guard from >= state.historyStart else {
                    stream.write(Self.eventLine("ERROR", Self.statusObject(410, reason: "Expired", message: "too old resource version: \(from) (\(state.historyStart))")))
                    return nil
                }
                for change in state.history where change.version > from && Self.covers(watch.target, change.key) {
                    if let object = Self.object(from: change.object), Self.passes(watch, change.key, object) {
                        stream.write(Self.eventLine(change.type, object))
                    }
                }
            } else {
                for (_, object) in Self.matching(watch.target, labels: watch.labels, fieldName: watch.fieldName, state: state) {
                    stream.write(Self.eventLine("ADDED", object))
                }
            }
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[id] = Watcher(target: watch.target, labels: watch.labels, fieldName: watch.fieldName, bookmarks: watch.bookmarks, stream: stream)
            return id
        }
        guard let id else {
            stream.finish()
            return
        }
        stream.onTermination { [weak self] in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
        }
        if let timeout = watch.timeout {
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                let stream = self?.state.withLock { $0.watchers.removeValue(forKey: id)?.stream }
                stream?.finish()
            }
        }
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch that allows them.
    func sendBookmarks() {
        state.withLock { state in
            let version = String(state.nextVersion - 1)
            for watcher in state.watchers.values where watcher.bookmarks {
                let entry = Self.catalog.first { $0.resource == watcher.target.resource && Self.prefix(of: $0.groupVersion) == watcher.target.prefix }
                let groupVersion = watcher.target.prefix.split(separator: "/").dropFirst().joined(separator: "/")
                let object: [String: Any] = [
                    "kind": entry?.kind ?? watcher.target.resource,
                    "apiVersion": groupVersion,
                    "metadata": ["resourceVersion": version],
                ]
                watcher.stream.write(Self.eventLine("BOOKMARK", object))
            }
        }
    }

    /// Records a change in the bounded history and sends it to every watch it matches.
    static func record(_ type: String, key: Key, object: [String: Any], state: inout State) {
        let version = Int((object["metadata"] as? [String: Any])?["resourceVersion"] as? String ?? "") ?? state.nextVersion - 1
        state.history.append(Change(version: version, type: type, key: key, object: json(object)))
        if state.history.count > historyLimit {
            let dropCount = state.history.count - historyLimit
            state.historyStart = state.history[dropCount - 1].version
            state.history.removeFirst(dropCount)
        }
        let line = eventLine(type, object)
        for watcher in state.watchers.values where covers(watcher.target, key) {
            let watch = WatchRequest(target: watcher.target, labels: watcher.labels, fieldName: watcher.fieldName, fromVersion: nil, bookmarks: false, timeout: nil)
            if passes(watch, key, object) { watcher.stream.write(line) }
        }
    }

    private static func passes(_ watch: WatchRequest, _ key: Key, _ object: [String: Any]) -> Bool {
        (watch.fieldName == nil || key.name == watch.fieldName) && matches(object, watch.labels)
    }

    static func eventLine(_ type: String, _ object: [String: Any]) -> [UInt8] {
        json(["type": type, "object": object]) + [10]
    }

    // MARK: Discovery

    /// The discovery document at `path`, if it is one.
    func discovery(_ path: String) -> [String: Any]? {
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        let groupVersions = Self.catalog.reduce(into: [String]()) { if !$0.contains($1.groupVersion) { $0.append($1.groupVersion) } }
        switch trimmed {
        case "/version":
            return [
                "major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "gitCommit": "", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64",
            ]
        case "/api":
            return ["kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [["clientCIDR": "0.0.0.0/0", "serverAddress": String(url.dropFirst("http://".count))]]]
        case "/apis":
            let groups = groupVersions.filter { $0.contains("/") }.map { groupVersion -> [String: Any] in
                let parts = groupVersion.split(separator: "/").map(String.init)
                let version: [String: Any] = ["groupVersion": groupVersion, "version": parts[1]]
                return ["name": parts[0], "versions": [version], "preferredVersion": version]
            }
            return ["kind": "APIGroupList", "apiVersion": "v1", "groups": groups]
        default:
            let parts = trimmed.split(separator: "/").map(String.init)
            let groupVersion: String
            if parts.count == 2, parts[0] == "api" { groupVersion = parts[1] }
            else if parts.count == 3, parts[0] == "apis" { groupVersion = parts[1] + "/" + parts[2] }
            else { return nil }
            guard groupVersions.contains(groupVersion) else { return nil }
            let resources = Self.catalog.filter { $0.groupVersion == groupVersion }.map { entry -> [String: Any] in
                var resource: [String: Any] = [
                    "name": entry.resource, "singularName": entry.resource.contains("/") ? "" : entry.kind.lowercased(),
                    "namespaced": entry.namespaced, "kind": entry.kind, "verbs": entry.verbs,
                ]
                if entry.resource == "serviceaccounts/token" {
                    resource["group"] = "authentication.k8s.io"
                    resource["version"] = "v1"
                }
                return resource
            }
            return ["kind": "APIResourceList", "apiVersion": "v1", "groupVersion": groupVersion, "resources": resources]
        }
    }
}
