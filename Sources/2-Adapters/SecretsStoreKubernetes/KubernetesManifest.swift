import Yams

/// One value of a Kubernetes manifest (YAML or JSON), typed the way the API server's YAML-to-JSON conversion
/// types it: a plain `false` or `5` is a boolean or a number, a quoted `"false"` is a string. That difference
/// matters because the CRD schemas say `additionalProperties: {type: string}` for `spec.parameters`, and an
/// unquoted `usePodIdentity: false` is refused by the API server.
///
/// Maps keep the order they were written in (for messages that follow the file).
package indirect enum ManifestValue: Sendable, Equatable {
    /// A map entry.
    package struct Entry: Sendable, Equatable {
        /// The key, as written.
        package var key: String
        /// The value.
        package var value: ManifestValue

        /// An entry `key: value`.
        package init(key: String, value: ManifestValue) {
            self.key = key
            self.value = value
        }
    }

    /// A string scalar (quoted, or plain text that resolves to no other type; timestamps count as strings).
    case string(String)
    /// A plain `true`/`false` (and the YAML 1.1 forms `yes`, `no`, `on`, `off`).
    case bool(Bool)
    /// A plain integer or floating-point number, as written.
    case number(String)
    /// `null`, `~` or an empty value.
    case null
    /// A sequence.
    case list([ManifestValue])
    /// A mapping, in the file's order.
    case map([Entry])

    /// The value under `key` when this is a map that has it.
    package subscript(key: String) -> ManifestValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first(where: { $0.key == key })?.value
    }

    /// The text of a string scalar; `nil` for anything else.
    package var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The JSON type name the API server's schema validation would report for this value (`string`,
    /// `boolean`, `number`, `null`, `array`, `object`).
    package var typeName: String {
        switch self {
        case .string: "string"
        case .bool: "boolean"
        case .number: "number"
        case .null: "null"
        case .list: "array"
        case .map: "object"
        }
    }
}

/// Reads Kubernetes manifests: one or more YAML documents (`---`-separated), or JSON (a YAML subset).
package enum KubernetesManifest {
    /// The text is not YAML; `description` says where (line and column) and why, and never repeats the
    /// document's values.
    package struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The parser's reason, with the position.
        package var description: String

        /// A problem described by `description`.
        package init(description: String) {
            self.description = description
        }
    }

    /// Every non-empty document of `text`, in order.
    package static func documents(_ text: String) throws(ParseError) -> [ManifestValue] {
        do {
            var result: [ManifestValue] = []
            var nodes = try Yams.compose_all(yaml: text)
            while let node = nodes.next() {
                let value = try value(of: node)
                if value != .null { result.append(value) }
            }
            // The sequence keeps the error that ended it instead of throwing.
            if let error = nodes.error { throw error }
            return result
        } catch let error as ParseError {
            throw error
        } catch let error as YamlError {
            throw ParseError(description: Self.describe(error))
        } catch {
            throw ParseError(description: "not YAML: \(type(of: error))")
        }
    }

    /// The `metadata.name` of every document of `text` that has one, in order.
    package static func names(in text: String) throws(ParseError) -> [String] {
        try documents(text).compactMap { $0["metadata"]?["name"]?.stringValue }
    }

    private static func value(of node: Node) throws -> ManifestValue {
        switch node {
        case .scalar(let scalar):
            switch node.tag.rawValue {
            case Tag.Name.bool.rawValue: return .bool(Bool.construct(from: scalar) ?? false)
            case Tag.Name.int.rawValue, Tag.Name.float.rawValue: return .number(scalar.string)
            case Tag.Name.null.rawValue: return .null
            default: return .string(scalar.string)
            }
        case .sequence(let sequence):
            return .list(try sequence.map { try value(of: $0) })
        case .mapping(let mapping):
            var entries: [ManifestValue.Entry] = []
            for (key, value) in mapping {
                guard case .scalar(let scalar) = key else {
                    throw ParseError(description: "a mapping key at line \(key.mark?.line ?? 0) is not a scalar")
                }
                entries.append(.init(key: scalar.string, value: try self.value(of: value)))
            }
            return .map(entries)
        case .alias:
            throw ParseError(description: "YAML aliases are not supported in manifests")
        }
    }

    /// The parser's problem and position, without the document text Yams quotes (it may hold values).
    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return "invalid YAML at line \(mark.line), column \(mark.column): \(problem)"
        case .composer(_, let problem, let mark, _):
            return "invalid YAML at line \(mark.line), column \(mark.column): \(problem)"
        case .reader(let problem, _, _, _):
            return "invalid YAML: \(problem)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            return "invalid YAML at line \(context.mark.line): duplicate keys \(duplicates.joined(separator: ", "))"
        default:
            return "invalid YAML"
        }
    }
}
