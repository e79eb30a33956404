/// The checks a provider's answer passes before anything of it is written.
package enum ProviderResponseValidation {
    /// Accepts `response` only if it is safe to write: it names at least one object version, every file path
    /// passes ``PayloadPath/validate(_:)``, and no path repeats or is also the directory of another path.
    package static func validate(_ response: ProviderResponse, providerName: String) throws(PublishError) {
        guard !response.objectVersions.isEmpty else {
            throw .provider(name: providerName, .invalidResponse("missing object versions"))
        }
        for file in response.files {
            try PayloadPath.validate(file.path)
        }
        try checkForDuplicatePaths(response.files)
    }

    private static func checkForDuplicatePaths(_ files: [SecretFile]) throws(PublishError) {
        var seen = Set<String>()
        for file in files where !seen.insert(file.path).inserted {
            throw .invalidPayload(path: file.path, reason: "the provider returned this path twice")
        }
        // A file may not also be a directory of another file (`a` and `a/b`).
        for file in files {
            var prefix = Substring(file.path)
            while let slash = prefix.lastIndex(of: "/") {
                prefix = prefix[..<slash]
                if seen.contains(String(prefix)) {
                    throw .invalidPayload(path: file.path, reason: "\(prefix) is both a file and a directory")
                }
            }
        }
    }
}
