/// Validation of the file paths a provider returns, before anything is written.
///
/// The rules are kubelet's (and the upstream driver's): a path is non-empty, relative, at most 4096
/// characters, each element at most 255, has no `..` element, does not start with `..` (which would collide
/// with the writer's own `..data` and timestamped directories), and is already clean: no `.` element, no
/// empty element (`a//b`) and no trailing slash.
package enum PayloadPath {
    /// The longest path accepted, in UTF-8 bytes.
    package static let maxPathLength = 4096
    /// The longest path element accepted, in UTF-8 bytes.
    package static let maxElementLength = 255

    /// Throws ``PublishError/invalidPayload(path:reason:)`` for the first rule `path` breaks.
    package static func validate(_ path: String) throws(PublishError) {
        func reject(_ reason: String) -> PublishError { .invalidPayload(path: path, reason: reason) }
        guard !path.isEmpty else { throw reject("the path is empty") }
        guard !path.hasPrefix("/") else { throw reject("the path must be relative") }
        guard path.utf8.count <= maxPathLength else {
            throw reject("the path is longer than \(maxPathLength) characters")
        }
        guard !path.utf8.contains(0) else { throw reject("the path contains a NUL byte") }
        let elements = path.split(separator: "/", omittingEmptySubsequences: false)
        for element in elements {
            guard element.utf8.count <= maxElementLength else {
                throw reject("an element is longer than \(maxElementLength) characters")
            }
            guard element != ".." else { throw reject("the path must not contain '..'") }
            guard !element.isEmpty, element != "." else { throw reject("the path is not clean") }
        }
        guard !path.hasPrefix("..") else { throw reject("the path must not start with '..'") }
    }

    /// The first element of a validated path: the name the writer links at the top of the volume.
    package static func topLevelName(of path: String) -> String {
        String(path.split(separator: "/", maxSplits: 1)[0])
    }
}
