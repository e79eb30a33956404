import CSIProtocol
import SecretsStoreCSI
import SecretsStoreCore
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension FuzzTarget {
    /// An external provider's `MountResponse` wire bytes, through the generated decoder,
    /// ``ExternalProvider/providerResponse(from:)`` and ``NodePublisher/validate(_:providerName:)``: the checks
    /// between a provider's answer and the atomic writer.
    ///
    /// Properties, for every answer that passes: at least one object version; every path is relative, non-empty,
    /// without NUL, without empty, `.` or `..` elements, and not starting with `..` (so never `..data` or a
    /// timestamped directory); every mode is within 0o777; no path repeats or is the directory of another.
    package static let mountResponse = FuzzTarget(
        name: "mount-response",
        summary: "v1alpha1 MountResponse bytes through ExternalProvider.providerResponse and NodePublisher.validate",
        seeds: MountResponseSeeds.responses.map(MountResponseSeeds.serialized),
        dictionary: MountResponseSeeds.tokens,
        maxInputLength: 64 * 1024,
        check: checkMountResponse
    )

    private static func checkMountResponse(_ bytes: [UInt8]) -> FuzzOutcome {
        let name = "mount-response"
        let message: V1alpha1_MountResponse
        do {
            message = try V1alpha1_MountResponse(serializedBytes: bytes)
        } catch {
            return .rejected("protobuf: \(error)")
        }
        let response: ProviderResponse
        do {
            response = try ExternalProvider.providerResponse(from: message)
        } catch {
            return .rejected(error.description)
        }
        do {
            try NodePublisher.validate(response, providerName: "fuzz")
        } catch {
            return .rejected(error.description)
        }

        require(!response.objectVersions.isEmpty, "passed without object versions", target: name, input: bytes)
        var paths = Set<String>()
        for file in response.files {
            let path = file.path
            let elements = path.split(separator: "/", omittingEmptySubsequences: false)
            require(!path.isEmpty, "passed an empty path", target: name, input: bytes)
            require(!path.hasPrefix("/"), "passed an absolute path \(path.debugDescription)", target: name, input: bytes)
            require(!path.utf8.contains(0), "passed a path with NUL \(path.debugDescription)", target: name, input: bytes)
            require(!path.hasPrefix(".."), "passed a path into the writer's own entries \(path.debugDescription)", target: name, input: bytes)
            require(!elements.contains(".."), "passed a path with a '..' element \(path.debugDescription)", target: name, input: bytes)
            require(!elements.contains(""), "passed a path with an empty element \(path.debugDescription)", target: name, input: bytes)
            require(!elements.contains("."), "passed a path with a '.' element \(path.debugDescription)", target: name, input: bytes)
            require(file.mode <= 0o777, "passed mode \(String(file.mode, radix: 8)) for \(path.debugDescription)", target: name, input: bytes)
            require(paths.insert(path).inserted, "passed \(path.debugDescription) twice", target: name, input: bytes)
        }
        for path in paths {
            var prefix = Substring(path)
            while let slash = prefix.lastIndex(of: "/") {
                prefix = prefix[..<slash]
                require(!paths.contains(String(prefix)), "passed \(prefix.debugDescription) as a file and a directory", target: name, input: bytes)
            }
        }
        return .accepted
    }
}

/// Realistic provider answers: several files, nested paths, per-file modes, object versions.
enum MountResponseSeeds {
    struct File {
        var path: String
        var mode: Int32
        var contents: String
    }

    static let responses: [(files: [File], versions: [(String, String)])] = [
        (
            files: [
                File(path: "DB_PASSWORD", mode: 0o644, contents: "s3cr3t-p@ss"),
                File(path: "tls.crt", mode: 0o644, contents: FuzzMaterial.pemBundle),
                File(path: "api-key/0", mode: 0o600, contents: "key-version-two"),
                File(path: "api-key/1", mode: 0o600, contents: "key-version-one"),
            ],
            versions: [
                ("secret/db-pass", "6a2a0b1c8f8d4e5a9c0b1d2e3f405162"),
                ("cert/web", "0c1d2e3f405162738495a6b7c8d9eaf1"),
                ("secret/api-key/0", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
                ("secret/api-key/1", "1a2b3c4d5e6f708192a3b4c5d6e7f809"),
            ]
        ),
        (
            files: [
                File(path: "config/app.json", mode: 0o440, contents: #"{"feature":true,"replicas":3}"#),
                File(path: "config/nested/deeper/token", mode: 0o400, contents: "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
                File(path: "a.b..c", mode: 0o777, contents: ""),
            ],
            versions: [("secret/app-config", "v1"), ("secret/token", "v7")]
        ),
        (
            files: [],
            versions: [("secret/written-by-provider", "2024-01-01T00:00:00Z")]
        ),
    ]

    static func serialized(_ response: (files: [File], versions: [(String, String)])) -> [UInt8] {
        var message = V1alpha1_MountResponse()
        message.files = response.files.map { file in
            var entry = V1alpha1_File()
            entry.path = file.path
            entry.mode = file.mode
            entry.contents = Data(file.contents.utf8)
            return entry
        }
        message.objectVersion = response.versions.map { id, version in
            var entry = V1alpha1_ObjectVersion()
            entry.id = id
            entry.version = version
            return entry
        }
        return encoded(message)
    }

    /// Whole `files` and `object_version` fields with boundary values, and varints, lengths and tags that make
    /// the decoder work: inserted at a field boundary they give well-formed answers with hostile content.
    static let tokens: [[UInt8]] = {
        var tokens: [[UInt8]] = []
        let hostilePaths = [
            "../escape", "..data/x", "..data", "..2024_01_01_00_00_00.000000000/x", "/etc/passwd", "a//b", "a/./b", "a/",
            "./a", ".", "a/..", "", "a\u{0}b", "DB_PASSWORD", "api-key", "api-key/0/x", String(repeating: "x", count: 256),
            String(repeating: "a/", count: 2100) + "a", "é/ü", "\u{FEFF}bom",
        ]
        for path in hostilePaths {
            var response = V1alpha1_MountResponse()
            var file = V1alpha1_File()
            file.path = path
            file.mode = 0o644
            file.contents = Data("x".utf8)
            response.files = [file]
            tokens.append(encoded(response))
        }
        for mode: Int32 in [-1, 0o1000, 0o4755, Int32.max, Int32.min, 0o777, 0] {
            var response = V1alpha1_MountResponse()
            var file = V1alpha1_File()
            file.path = "mode-\(mode)"
            file.mode = mode
            response.files = [file]
            tokens.append(encoded(response))
        }
        var version = V1alpha1_MountResponse()
        version.objectVersion = [V1alpha1_ObjectVersion()]
        tokens.append(encoded(version))
        var failure = V1alpha1_MountResponse()
        failure.error.code = "GRPCProviderError"
        tokens.append(encoded(failure))
        var emptyError = V1alpha1_MountResponse()
        emptyError.error = V1alpha1_Error()
        tokens.append(encoded(emptyError))
        tokens += [
            [0x0A], [0x12], [0x1A], [0x10], [0x08], [0x22], [0x7A], [0x0A, 0x00], [0x1A, 0x00], [0x12, 0x00],
            [0xFF, 0xFF, 0xFF, 0xFF, 0x0F], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            [0x80, 0x80, 0x80, 0x80, 0x10], [0xFF, 0xFF, 0xFF, 0xFF, 0x07], [0x7F], [0x80, 0x01],
            [0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], [0x10, 0x80, 0x08],
            [0x0B], [0x0C], [0x0D, 0x00, 0x00, 0x00, 0x00], [0x09, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
        return tokens
    }()

    static func encoded(_ message: V1alpha1_MountResponse) -> [UInt8] {
        do {
            return try message.serializedBytes()
        } catch {
            preconditionFailure("a MountResponse always encodes: \(error)")
        }
    }
}
