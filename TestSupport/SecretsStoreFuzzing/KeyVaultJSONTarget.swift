import SecretsStoreAzure
import SecretsStoreCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension FuzzTarget {
    /// Key Vault response bodies through ``AzureKeyVaultProvider/objectContents(from:object:)`` for every object
    /// type, format and encoding, and through ``AzureKeyVaultProvider/versionEntries(from:)``.
    ///
    /// Properties: a key becomes exactly one PEM `PUBLIC KEY` block and a certificate one `CERTIFICATE` block; a
    /// secret that is not certificate-backed keeps its value byte for byte (utf-8) or decodes it exactly (hex);
    /// a certificate-backed PKCS#12 read as PEM starts with the private key followed by its certificates; a
    /// version is the id's last path element; a version page never yields more entries than it lists and never
    /// an empty next link. The body is accepted when any decoder accepts it.
    package static let keyVaultJSON = FuzzTarget(
        name: "keyvault-json",
        summary: "Key Vault secret/key/certificate bundles and version lists through the provider's static decoders",
        seeds: KeyVaultSeeds.bodies.map { Array($0.utf8) },
        dictionary: KeyVaultSeeds.tokens.map { Array($0.utf8) },
        maxInputLength: 32 * 1024,
        check: checkKeyVaultBody
    )

    private static func checkKeyVaultBody(_ bytes: [UInt8]) -> FuzzOutcome {
        let name = "keyvault-json"
        let secret = try? JSONDecoder().decode(KeyVaultSeeds.SecretOracle.self, from: Data(bytes))
        let key = try? JSONDecoder().decode(KeyVaultSeeds.KeyOracle.self, from: Data(bytes))
        let certificate = try? JSONDecoder().decode(KeyVaultSeeds.CertificateOracle.self, from: Data(bytes))
        var accepted = false
        var firstError: String?

        for object in KeyVaultSeeds.objects {
            let contents: [UInt8]
            let version: String
            do {
                (contents, version) = try AzureKeyVaultProvider.objectContents(from: bytes, object: object)
            } catch {
                if firstError == nil { firstError = KeyVaultSeeds.describe(error) }
                continue
            }
            accepted = true
            let described = "\(object.type.rawValue) as \(object.format.rawValue)/\(object.encoding.rawValue)"
            let id: String?
            switch object.type {
            case .secret: id = secret?.id
            case .key: id = key?.key?.kid
            case .cert: id = certificate?.id
            }
            guard let id else {
                require(false, "\(described) accepted a body without a readable id", target: name, input: bytes)
                continue
            }
            require(
                version == KeyVaultSeeds.lastElement(of: id),
                "\(described) reported version \(version.debugDescription) for id \(id.debugDescription)",
                target: name,
                input: bytes
            )
            let text = String(decoding: contents, as: UTF8.self)
            switch object.type {
            case .key:
                require(KeyVaultSeeds.isSinglePEMBlock(text, type: "PUBLIC KEY"), "a key is not one PUBLIC KEY block", target: name, input: bytes)
            case .cert:
                require(KeyVaultSeeds.isSinglePEMBlock(text, type: "CERTIFICATE"), "a certificate is not one CERTIFICATE block", target: name, input: bytes)
            case .secret:
                guard let secret else { continue }
                let value = secret.value ?? ""
                if secret.kid == nil {
                    switch object.encoding {
                    case .utf8:
                        require(contents == Array(value.utf8), "\(described) changed the secret value", target: name, input: bytes)
                    case .hex:
                        require(
                            KeyVaultSeeds.hex(contents) == value.lowercased(),
                            "\(described) decoded \(value.debugDescription) to other bytes",
                            target: name,
                            input: bytes
                        )
                    case .base64:
                        require(contents.count <= value.utf8.count, "\(described) grew the secret value", target: name, input: bytes)
                    }
                } else if secret.contentType == "application/x-pkcs12", object.format == .pem, object.encoding == .utf8 {
                    require(
                        text.hasPrefix("-----BEGIN PRIVATE KEY-----\n") && text.contains("-----BEGIN CERTIFICATE-----\n")
                            && text.hasSuffix("-----END CERTIFICATE-----\n"),
                        "a PKCS#12 read as PEM is not a private key followed by certificates",
                        target: name,
                        input: bytes
                    )
                }
            }
        }

        do {
            let page = try AzureKeyVaultProvider.versionEntries(from: bytes)
            let listed = (try? JSONDecoder().decode(KeyVaultSeeds.ListOracle.self, from: Data(bytes)))?.value?.count ?? 0
            require(page.entries.count <= listed, "a version page yielded \(page.entries.count) of \(listed) entries", target: name, input: bytes)
            require(page.nextLink.map { !$0.isEmpty } ?? true, "a version page gave an empty next link", target: name, input: bytes)
            if !page.entries.isEmpty { accepted = true }
        } catch {
            if firstError == nil { firstError = KeyVaultSeeds.describe(error) }
        }

        return accepted ? .accepted : .rejected(firstError ?? "no decoder accepted the body")
    }
}

/// Realistic Key Vault bodies (api-version 7.4) and the objects they are read as.
enum KeyVaultSeeds {
    /// The fields the properties are checked against, decoded independently of the provider.
    struct SecretOracle: Decodable {
        var id: String?
        var value: String?
        var contentType: String?
        var kid: String?
    }

    struct KeyOracle: Decodable {
        struct Key: Decodable { var kid: String? }
        var key: Key?
    }

    struct CertificateOracle: Decodable {
        var id: String?
    }

    struct ListOracle: Decodable {
        struct Item: Decodable {}
        var value: [Item]?
    }

    /// Every type, format and encoding an SPC can ask for, parsed by the production parser.
    static let objects: [KeyVaultObject] = {
        let text = """
            array:
              - |
                objectName: plain
                objectType: secret
              - |
                objectName: pfx
                objectType: secret
                objectFormat: pfx
              - |
                objectName: b64
                objectType: secret
                objectEncoding: base64
              - |
                objectName: hex
                objectType: secret
                objectEncoding: hex
              - |
                objectName: signing
                objectType: key
              - |
                objectName: web
                objectType: cert
            """
        do {
            return try AzureMountParameters.parseObjects(text)
        } catch {
            preconditionFailure("the fuzz target's own objects must parse: \(error)")
        }
    }()

    static let vault = "https://kv-fuzz-01.vault.azure.net"
    static let attributes =
        #""attributes":{"enabled":true,"created":1700000001,"updated":1700000001,"recoveryLevel":"Recoverable+Purgeable","recoverableDays":90}"#

    static func jsonString(_ text: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(text), as: UTF8.self)
        } catch {
            preconditionFailure("a string always encodes: \(error)")
        }
    }

    static let bodies: [String] = [
        // A plain secret.
        #"{"value":"s3cr3t-p@ss","id":"\#(vault)/secrets/db-pass/6a2a0b1c8f8d4e5a9c0b1d2e3f405162",\#(attributes),"tags":{"env":"prod"}}"#,
        // Secrets meant for objectEncoding hex and base64.
        #"{"value":"48656c6c6f2c204b6579205661756c7421","contentType":"text/plain","id":"\#(vault)/secrets/hex/0c1d2e3f405162738495a6b7c8d9eaf1",\#(attributes)}"#,
        #"{"value":"SGVsbG8sIEtleSBWYXVsdCE=","id":"\#(vault)/secrets/b64/1a2b3c4d5e6f708192a3b4c5d6e7f809",\#(attributes)}"#,
        // A certificate's secret as PKCS#12, and one imported as PEM.
        #"{"value":"\#(FuzzMaterial.pkcs12Base64)","contentType":"application/x-pkcs12","id":"\#(vault)/secrets/web/9f8e7d6c5b4a39281706f5e4d3c2b1a0","managed":true,"kid":"\#(vault)/keys/web/9f8e7d6c5b4a39281706f5e4d3c2b1a0",\#(attributes)}"#,
        #"{"value":\#(jsonString(FuzzMaterial.pemBundle)),"contentType":"application/x-pem-file","id":"\#(vault)/secrets/web-pem/2b3c4d5e6f708192a3b4c5d6e7f8091a","managed":true,"kid":"\#(vault)/keys/web-pem/2b3c4d5e6f708192a3b4c5d6e7f8091a",\#(attributes)}"#,
        // Keys: RSA, EC P-256 (HSM), EC P-384.
        #"{"key":{"kid":"\#(vault)/keys/signing/3c4d5e6f708192a3b4c5d6e7f8091a2b","kty":"RSA","key_ops":["sign","verify","wrapKey","unwrapKey","encrypt","decrypt"],"n":"\#(FuzzMaterial.rsaModulus)","e":"\#(FuzzMaterial.rsaExponent)"},\#(attributes)}"#,
        #"{"key":{"kid":"\#(vault)/keys/signing-ec/4d5e6f708192a3b4c5d6e7f8091a2b3c","kty":"EC-HSM","key_ops":["sign","verify"],"crv":"P-256","x":"\#(FuzzMaterial.p256X)","y":"\#(FuzzMaterial.p256Y)"},\#(attributes)}"#,
        #"{"key":{"kid":"\#(vault)/keys/signing-384/5e6f708192a3b4c5d6e7f8091a2b3c4d","kty":"EC","crv":"P-384","x":"\#(FuzzMaterial.p384X)","y":"\#(FuzzMaterial.p384Y)"},\#(attributes)}"#,
        // A certificate bundle.
        #"{"id":"\#(vault)/certificates/web/9f8e7d6c5b4a39281706f5e4d3c2b1a0","kid":"\#(vault)/keys/web/9f8e7d6c5b4a39281706f5e4d3c2b1a0","sid":"\#(vault)/secrets/web/9f8e7d6c5b4a39281706f5e4d3c2b1a0","x5t":"fLi3U52HunIVNXubkEnf8tP6Wbo","cer":"\#(FuzzMaterial.leafCertificateBase64)",\#(attributes),"policy":{"id":"\#(vault)/certificates/web/policy","key_props":{"exportable":true,"kty":"EC","crv":"P-256","reuse_key":false},"secret_props":{"contentType":"application/x-pkcs12"}}}"#,
        // Version lists: secrets with a next page, keys (by kid) on the last page.
        #"{"value":[{"id":"\#(vault)/secrets/api-key/9f8e7d6c5b4a39281706f5e4d3c2b1a0","attributes":{"enabled":true,"created":1700000003,"updated":1700000003}},{"id":"\#(vault)/secrets/api-key/1a2b3c4d5e6f708192a3b4c5d6e7f809","attributes":{"enabled":false,"created":1700000002,"updated":1700000002}},{"id":"\#(vault)/secrets/api-key/6a2a0b1c8f8d4e5a9c0b1d2e3f405162","attributes":{"enabled":true,"created":1700000001,"updated":1700000001},"contentType":"text/plain"}],"nextLink":"\#(vault)/secrets/api-key/versions?api-version=7.4&$skiptoken=eyJOZXh0TWFya2VyIjoiMiExMDQhTURBd01ERTRJWE5sWTNKbGRDOUJVRWt0UzBWWkx6SWhNREF3TURJNElUazVPVGt0TVRJdE16RlVNak02TlRrNk5Ua3VPVGs1T1RrNU9Wb2gifQ&maxresults=3"}"#,
        #"{"value":[{"kid":"\#(vault)/keys/signing/3c4d5e6f708192a3b4c5d6e7f8091a2b","attributes":{"enabled":true,"created":1700000010,"updated":1700000010,"exportable":false}},{"kid":"\#(vault)/keys/signing/4d5e6f708192a3b4c5d6e7f8091a2b3c","attributes":{"enabled":true,"created":1700000020}}],"nextLink":null}"#,
    ]

    static let tokens: [String] = [
        "\"value\"", "\"id\"", "\"kid\"", "\"contentType\"", "\"application/x-pkcs12\"", "\"application/x-pem-file\"",
        "\"key\"", "\"kty\"", "\"RSA\"", "\"RSA-HSM\"", "\"EC\"", "\"EC-HSM\"", "\"oct\"", "\"crv\"", "\"P-256\"", "\"P-384\"",
        "\"P-521\"", "\"P-256K\"", "\"n\"", "\"e\"", "\"x\"", "\"y\"", "\"cer\"", "\"nextLink\"", "\"attributes\"",
        "\"enabled\"", "\"created\"", "null", "\"AQAB\"", "\"AA\"", "\"\"", "-----BEGIN CERTIFICATE-----",
        "-----END CERTIFICATE-----", "-----BEGIN PRIVATE KEY-----", "\\n", "MII", "==", "=", "-", "_", "+", "/",
        "{\"value\":[]}", "\"/\"", "\"//\"",
    ]

    static func describe(_ error: AzureKeyVaultProvider.FetchError) -> String {
        switch error {
        case .keyVault(let failure): return failure.message
        case .contents(let failure): return failure.message
        case .decoding(let message, _): return message
        case .jsonFields(let failure): return failure.message
        }
    }

    /// The last non-empty `/`-separated element, or the whole id when it has none (as upstream reads versions).
    static func lastElement(of id: String) -> String {
        id.split(separator: "/").last.map(String.init) ?? id
    }

    static func isSinglePEMBlock(_ text: String, type: String) -> Bool {
        let begin = "-----BEGIN \(type)-----\n"
        let end = "-----END \(type)-----\n"
        guard text.hasPrefix(begin), text.hasSuffix(end) else { return false }
        let body = text.dropFirst(begin.count).dropLast(end.count)
        return !body.contains("-----")
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
