import SecretsStoreAzure
import SecretsStoreCore

extension FuzzTarget {
    /// The SecretProviderClass `objects` parameter, through ``AzureMountParameters/parseObjects(_:)`` and the whole
    /// ``AzureMountParameters`` init.
    ///
    /// Properties: every accepted object has a name and a usable file name (non-empty, relative, no `..`), a mode
    /// within 0o777 and only the format and encoding its type allows; the init accepts exactly when the parser
    /// accepts a non-empty text, and then holds the same objects.
    package static let objectsYAML = FuzzTarget(
        name: "objects-yaml",
        summary: "SecretProviderClass `objects` YAML through AzureMountParameters.parseObjects and init",
        seeds: ObjectsYAMLSeeds.texts.map { Array($0.utf8) },
        regressions: ObjectsYAMLSeeds.regressions.map { Array($0.utf8) },
        dictionary: ObjectsYAMLSeeds.tokens.map { Array($0.utf8) },
        maxInputLength: 32 * 1024,
        check: checkObjectsYAML
    )

    private static func checkObjectsYAML(_ bytes: [UInt8]) -> FuzzOutcome {
        let name = "objects-yaml"
        let text = String(decoding: bytes, as: UTF8.self)
        let trimmed = text.trimmingWhitespace()

        var parsed: [KeyVaultObject]?
        var outcome: FuzzOutcome
        do {
            let objects = try AzureMountParameters.parseObjects(trimmed)
            for object in objects {
                require(!object.name.isEmpty, "accepted an object without a name: \(object)", target: name, input: bytes)
                require(!object.fileName.isEmpty, "accepted an empty file name: \(object)", target: name, input: bytes)
                require(!object.fileName.hasPrefix("/"), "accepted an absolute file name: \(object)", target: name, input: bytes)
                require(!object.fileName.contains(".."), "accepted a file name with '..': \(object)", target: name, input: bytes)
                require((object.filePermission ?? 0) <= 0o777, "accepted mode beyond 0777: \(object)", target: name, input: bytes)
                require(object.format == .pem || object.type == .secret, "accepted PFX for a non-secret: \(object)", target: name, input: bytes)
                require(object.encoding == .utf8 || object.type == .secret, "accepted an encoding for a non-secret: \(object)", target: name, input: bytes)
            }
            parsed = objects
            outcome = .accepted
        } catch {
            require(!error.message.isEmpty, "rejected with an empty message", target: name, input: bytes)
            outcome = .rejected(error.message)
        }

        var attributes = ObjectsYAMLSeeds.attributes
        attributes["objects"] = text
        do {
            let parameters = try AzureMountParameters(attributes: attributes, secrets: [:], defaultFilePermission: 0o644)
            require(parsed == parameters.objects, "the init holds other objects than the parser returned", target: name, input: bytes)
            require(parameters.keyVaultName == "kv-fuzz-01", "the vault name changed", target: name, input: bytes)
        } catch {
            require(!error.message.isEmpty, "the init rejected with an empty message", target: name, input: bytes)
            require(
                parsed == nil || trimmed.isEmpty,
                "the init rejected objects the parser accepted: \(error.message)",
                target: name,
                input: bytes
            )
        }
        return outcome
    }
}

/// Realistic `objects` texts and the attributes around them.
enum ObjectsYAMLSeeds {
    /// Everything but `objects` that a workload-identity volume sends.
    static let attributes: [String: String] = [
        VolumeContextKey.podName: "web-7d9c6b5f4-x2x9q",
        VolumeContextKey.podNamespace: "default",
        "keyvaultName": "kv-fuzz-01",
        "tenantID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "clientID": "5c2a1f8e-0b7d-4a0e-9f65-3c1d2b4e6a70",
        VolumeContextKey.serviceAccountTokens:
            #"{"api://AzureADTokenExchange":{"token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#,
    ]

    static let texts: [String] = [
        """
        array:
          - |
            objectName: db-pass
            objectType: secret
            objectAlias: DB_PASSWORD
          - |
            objectName: web
            objectType: secret
          - |
            objectName: web
            objectType: cert
            objectAlias: tls.crt
          - |
            objectName: signing
            objectType: key
          - |
            objectName: api-key
            objectType: secret
            objectVersionHistory: 2
        """,
        """
        array:
          - |
            objectName: web
            objectType: secret
            objectFormat: PFX
            objectEncoding: base64
            objectAlias: web.pfx
            filePermission: "0600"
          - |
            objectName: db-pass
            objectType: secret
            objectVersion: 6a2a0b1c8f8d4e5a9c0b1d2e3f405162
            objectEncoding: hex
        """,
        """
        array:
          - |
            objectName: "config/app.json"
            objectType: secret
            objectEncoding: utf-8
            filePermission: 0440
          - |
            objectName: 'signing-ec'
            objectType: key
            objectVersion: ""
            objectVersionHistory: 3
        """,
        "array: [\"objectName: one\\nobjectType: secret\", \"{objectName: two, objectType: cert}\"]",
        """
        array:
        - |-
          objectName: tls
          objectType: cert
          objectFormat: pem
        """,
    ]

    /// Inputs that once broke a property.
    static let regressions: [String] = [
        // An alias but no objectName was accepted as an object with an empty name (found by seed 0x5EC2E750FC51).
        """
        array:
          - |
            objectType: secret
            objectFormat: PFX
            objectEncoding: base64
            objectAlias: web.pfx
            filePermission: "0600"
          - |
            objectName: db-pass
            objectType: secret
            objectVersion: 6a2a0b1c8f8d4e5a9c0b1d2e3f405162
            objectEncoding: hex
        """,
    ]

    static let tokens: [String] = [
        "array:", "array: []", "objectName: ", "objectType: ", "objectAlias: ", "objectVersion: ", "objectVersionHistory: ",
        "objectFormat: ", "objectEncoding: ", "filePermission: ", "secret", "key", "cert", "pem", "PFX", "hex", "base64",
        "utf-8", "UTF-8", "0644", "0777", "0o777", "\n  - |\n    ", "\n    ",
    ]
}
