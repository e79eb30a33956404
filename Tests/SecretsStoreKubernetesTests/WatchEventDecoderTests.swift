import Foundation
import SecretsStoreCore
@testable import SecretsStoreKubernetes
import Testing

@Suite("Watch line buffer, event decoder, RFC 3339 and the status patch")
struct WatchEventDecoderTests {
    static let decoder = WatchEventDecoder<Resources.SecretProviderClass, SecretProviderClass> { wire in
        wire.metadata.name.map { wire.domainValue(namespace: wire.metadata.namespace ?? "", name: $0) }
    }

    static func line(_ type: String, name: String, resourceVersion: String) -> String {
        #"{"type":"\#(type)","object":{"apiVersion":"secrets-store.csi.x-k8s.io/v1","kind":"SecretProviderClass","metadata":{"name":"\#(name)","namespace":"ns","uid":"u-\#(name)","resourceVersion":"\#(resourceVersion)"},"spec":{"provider":"azure","refreshInterval":"30s","sync":{"serviceAccountName":"sa","nodePublishSecretRef":{"name":"creds"}}}}}"#
    }

    @Test func splitsEventsCutAcrossChunks() throws {
        let bytes = Array((Self.line("ADDED", name: "a", resourceVersion: "5") + "\n").utf8)
        var buffer = WatchLineBuffer()
        var lines: [[UInt8]] = []
        for start in stride(from: 0, to: bytes.count, by: 7) {
            lines += try buffer.append(bytes[start..<min(start + 7, bytes.count)])
        }
        #expect(lines.count == 1)
        #expect(buffer.finish() == nil)
        guard case .added(let spc)? = try Self.decoder.decode(lines[0]) else {
            Issue.record("expected ADDED")
            return
        }
        #expect(spc.name == "a")
        #expect(spc.namespace == "ns")
        #expect(spc.uid == "u-a")
        #expect(spc.resourceVersion == "5")
        #expect(spc.refreshInterval == "30s")
        #expect(spc.sync == .init(serviceAccountName: "sa", nodePublishSecretRefName: "creds"))
    }

    @Test func splitsSeveralEventsInOneChunk() throws {
        let text = Self.line("ADDED", name: "a", resourceVersion: "5") + "\n\n"
            + Self.line("MODIFIED", name: "a", resourceVersion: "6") + "\r\n"
            + Self.line("DELETED", name: "a", resourceVersion: "7") + "\n"
            + #"{"type":"BOOKMARK","object":{"kind":"SecretProviderClass","apiVersion":"secrets-store.csi.x-k8s.io/v1","metadata":{"resourceVersion":"9"}}}"#
        var buffer = WatchLineBuffer()
        var lines = try buffer.append(Array(text.utf8))
        #expect(lines.count == 3)
        if let last = buffer.finish() { lines.append(last) }
        let events = try lines.map { try Self.decoder.decode($0) }
        guard events.count == 4,
            case .added(let added)? = events[0], case .modified(let modified)? = events[1],
            case .deleted(let deleted)? = events[2], case .bookmark(let version)? = events[3]
        else {
            Issue.record("unexpected events \(events)")
            return
        }
        #expect(added.resourceVersion == "5")
        #expect(modified.resourceVersion == "6")
        #expect(deleted.resourceVersion == "7")
        #expect(version == "9")
    }

    @Test func anErrorEventThrowsItsStatusCode() throws {
        let line = #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 3 (10)","reason":"Expired","code":410}}"#
        #expect(throws: KubernetesClientError.rejected(status: 410, message: "too old resource version: 3 (10)")) {
            try Self.decoder.decode(Array(line.utf8))
        }
    }

    @Test func anOverlongLineFailsWithoutGrowing() throws {
        var buffer = WatchLineBuffer(maximumLineBytes: 16)
        #expect(try buffer.append(Array("0123456789\n".utf8)) == [Array("0123456789".utf8)])
        #expect(throws: KubernetesClientError.unavailable("watch event longer than 16 bytes; the stream was abandoned")) {
            _ = try buffer.append(Array("0123456789".utf8))
            _ = try buffer.append(Array("0123456789".utf8))
        }
        var exact = WatchLineBuffer(maximumLineBytes: 4)
        #expect(try exact.append(Array("abcd\nef".utf8)) == [Array("abcd".utf8)])
        #expect(exact.finish() == Array("ef".utf8))
        #expect(WatchLineBuffer.defaultMaximumLineBytes == 16 << 20)
    }

    @Test func aBadLineIsRejectedWithoutQuotingIt() throws {
        let line = #"{"type":"ADDED","object":{"metadata":"s3cr3t-value"}}"#
        do {
            _ = try Self.decoder.decode(Array(line.utf8))
            Issue.record("expected a failure")
        } catch {
            guard case .rejected(status: 200, let message) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(!message.contains("s3cr3t"))
        }
        #expect(throws: KubernetesClientError.self) { try Self.decoder.decode(Array("not json".utf8)) }
        #expect(try Self.decoder.decode(Array(#"{"type":"SOMETHING","object":{}}"#.utf8)) == nil)
    }

    @Test func parsesRFC3339() {
        #expect(RFC3339.epochSeconds("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.epochSeconds("2026-12-01T23:00:00Z") == 1_796_166_000)
        #expect(RFC3339.epochSeconds("2026-12-01T23:00:00.123456Z") == 1_796_166_000)
        #expect(RFC3339.epochSeconds("2026-12-02T01:00:00+02:00") == 1_796_166_000)
        #expect(RFC3339.epochSeconds("2026-12-01T20:30:00-02:30") == 1_796_166_000)
        #expect(RFC3339.epochSeconds("2024-02-29t12:00:00z") == 1_709_208_000)
        #expect(RFC3339.epochSeconds("2023-02-29T12:00:00Z") == nil)
        #expect(RFC3339.epochSeconds("2026-12-01 23:00:00Z") == nil)
        #expect(RFC3339.epochSeconds("2026-12-01T23:00:00") == nil)
        #expect(RFC3339.epochSeconds("2026-12-01T23:00:00.Z") == nil)
        #expect(RFC3339.epochSeconds("2026-12-01T23:00:00Zjunk") == nil)
        #expect(RFC3339.epochSeconds("") == nil)
        for seconds: Int64 in [0, 951_782_400, 1_709_208_000, 4_102_444_800] {
            #expect(RFC3339.epochSeconds(UTCTimestamp.rfc3339(epochSeconds: seconds)) == seconds)
        }
    }

    @Test func statusPatchWritesNullForEmptyFields() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let empty = String(decoding: try encoder.encode(Resources.SecretProviderClassStatusPatch(SecretProviderClassStatus())), as: UTF8.self)
        #expect(empty == #"{"status":{"conditions":null,"lastSyncTime":null,"objects":null,"syncedSecrets":null}}"#)
        let status = SecretProviderClassStatus(
            conditions: [.init(type: "Ready", status: "True", reason: "Synced", message: "ok", lastTransitionTime: "2026-01-01T00:00:00Z", observedGeneration: 2)],
            lastSyncTime: "2026-01-01T00:00:01Z",
            objects: [ObjectVersion(id: "secret/b", version: "2"), ObjectVersion(id: "secret/a", version: "1")],
            syncedSecrets: ["y", "x"]
        )
        let full = String(decoding: try encoder.encode(Resources.SecretProviderClassStatusPatch(status)), as: UTF8.self)
        #expect(full == #"{"status":{"conditions":[{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"ok","observedGeneration":2,"reason":"Synced","status":"True","type":"Ready"}],"lastSyncTime":"2026-01-01T00:00:01Z","objects":[{"id":"secret\/a","version":"1"},{"id":"secret\/b","version":"2"}],"syncedSecrets":["x","y"]}}"#)
    }
}
