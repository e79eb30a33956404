import Foundation
import KeyVaultEmulator
import NIOHTTP1
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreTesting
import Testing

/// The emulator's "Get Secrets" (`GET <vault>/secrets`) answers as Key Vault does: pages of `SecretItem`s in a
/// stable order, an absolute `nextLink` with an opaque, checked `$skiptoken`, `null` on the last page;
/// `maxresults` 1 to 25; tags and attributes of each secret's current version; a 403 for an identity that may
/// read secrets but not list them; and counts of list pages and single-secret reads for tests.
@Suite("Key Vault emulator: the secret list, tags and secret permissions", .timeLimit(.minutes(3)))
struct EmulatorSecretListTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    static let reader = "reader-app"
    static let getOnly = "get-only-app"

    /// One Key Vault answer: status and JSON body.
    struct Answer {
        var status: Int
        var body: [String: Any]
        var items: [[String: Any]] { body["value"] as? [[String: Any]] ?? [] }
        var names: [String] { items.compactMap { ($0["id"] as? String)?.split(separator: "/").last.map(String.init) } }
        /// `nextLink` when it is a string; `nil` when JSON `null` or absent (see ``nextLinkIsNull``).
        var nextLink: String? { body["nextLink"] as? String }
        var nextLinkIsNull: Bool { body["nextLink"] is NSNull }
        var errorCode: String? { (body["error"] as? [String: Any])?["code"] as? String }
        var innerErrorCode: String? { ((body["error"] as? [String: Any])?["innererror"] as? [String: Any])?["code"] as? String }
        var errorMessage: String { (body["error"] as? [String: Any])?["message"] as? String ?? "" }
    }

    /// A running emulator and a way to ask it as a given client (client-secret credentials).
    struct Harness {
        let emulator: KeyVaultEmulator
        let http: AzureHTTP

        func token(_ client: String) async throws -> String {
            let response = try await http.send(
                .POST, emulator.baseURL + "/\(EmulatorSecretListTests.tenant)/oauth2/v2.0/token",
                headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: FormEncoding.encode([
                    ("grant_type", "client_credentials"), ("client_id", client), ("client_secret", "\(client)-secret"),
                    ("scope", "https://vault.azure.net/.default"),
                ])
            )
            let json = (try JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
            return try #require(json?["access_token"] as? String, "token for \(client): \(response.status)")
        }

        /// `GET` of `pathOrURL` (a path after the base URL, or an absolute URL such as a `nextLink`).
        func get(_ pathOrURL: String, as client: String = EmulatorSecretListTests.reader) async throws -> Answer {
            let url = pathOrURL.hasPrefix("https://") ? pathOrURL : emulator.baseURL + pathOrURL
            let token = try await token(client)
            let response = try await http.send(.GET, url, headers: [("Authorization", "Bearer \(token)")])
            let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
            return Answer(status: response.status, body: json)
        }

        /// Every page of the list from `firstPath`, following `nextLink` (at most 50 pages).
        func allPages(_ firstPath: String, as client: String = EmulatorSecretListTests.reader) async throws -> [Answer] {
            var pages = [try await get(firstPath, as: client)]
            while let next = pages.last?.nextLink, pages.count < 50 {
                pages.append(try await get(next, as: client))
            }
            return pages
        }
    }

    static func withEmulator(vaults: [String: EmulatorSeed.Vault], _ body: (Harness) async throws -> Void) async throws {
        let clients = [reader, getOnly].map { EmulatorSeed.Client(clientID: $0, secret: "\($0)-secret") }
        try await withKeyVaultEmulator(seed: EmulatorSeed(tenantID: tenant, clients: clients, vaults: vaults)) { emulator, http in
            try await body(Harness(emulator: emulator, http: http))
        }
    }

    /// `count` plain secrets named `secret-00`…, in mixed case every third one to exercise the ordering.
    static func manySecrets(_ count: Int) -> [String: [EmulatorSeed.SecretVersion]] {
        var secrets: [String: [EmulatorSeed.SecretVersion]] = [:]
        for index in 0..<count {
            let name = String(format: "secret-%02d", index)
            secrets[index % 3 == 0 ? name.uppercased() : name] = [.init(value: "value-\(index)")]
        }
        return secrets
    }

    static func caseInsensitiveOrder(_ names: [String]) -> [String] {
        names.sorted { $0.uppercased() < $1.uppercased() }
    }

    @Test("thirty secrets list as a page of 25 and a last page of 5, each once, in case-insensitive name order")
    func defaultPages() async throws {
        var secrets = Self.manySecrets(29)
        secrets["web-cert"] = [.init(pem: "-----BEGIN CERTIFICATE-----\n...")]
        try await Self.withEmulator(vaults: ["kv1": .init(secrets: secrets)]) { harness in
            let pages = try await harness.allPages("/kv1/secrets?api-version=7.4")
            #expect(pages.map(\.status) == [200, 200])
            #expect(pages.map(\.items.count) == [25, 5])
            let first = try #require(pages.first?.nextLink)
            #expect(first.hasPrefix(harness.emulator.baseURL + "/kv1/secrets?api-version=7.4&$skiptoken="), "\(first)")
            #expect(!first.contains("maxresults"), "a nextLink carries maxresults only when the request did")
            #expect(pages.last?.nextLinkIsNull == true, "the last page says nextLink: null")
            let names = pages.flatMap(\.names)
            #expect(names == Self.caseInsensitiveOrder(Array(secrets.keys)))

            let items = pages.flatMap(\.items)
            for item in items {
                let id = try #require(item["id"] as? String)
                #expect(id.hasPrefix(harness.emulator.baseURL + "/kv1/secrets/") && id.split(separator: "/").count == 5, "no version in \(id)")
                #expect(item["value"] == nil && item["kid"] == nil, "a SecretItem carries no value and no kid")
                let attributes = try #require(item["attributes"] as? [String: Any])
                #expect(attributes["enabled"] as? Bool == true)
                #expect(attributes["created"] is Int && attributes["updated"] is Int)
                #expect(attributes["recoveryLevel"] as? String == "Recoverable+Purgeable")
            }
            let certificate = try #require(items.first { ($0["id"] as? String)?.hasSuffix("/web-cert") == true })
            #expect(certificate["managed"] as? Bool == true)
            #expect(certificate["contentType"] as? String == "application/x-pem-file")
            #expect(items.filter { $0["managed"] != nil }.count == 1, "only the certificate-backed secret is managed")
        }
    }

    @Test("maxresults sets the page size and every nextLink repeats it")
    func maxResults() async throws {
        try await Self.withEmulator(vaults: ["kv1": .init(secrets: Self.manySecrets(16)), "kv2": .init()]) { harness in
            let pages = try await harness.allPages("/kv1/secrets?maxresults=7&api-version=7.4")
            #expect(pages.map(\.items.count) == [7, 7, 2])
            #expect(pages.dropLast().allSatisfy { $0.nextLink?.hasSuffix("&maxresults=7") == true })
            #expect(pages.flatMap(\.names) == Self.caseInsensitiveOrder(Array(Self.manySecrets(16).keys)))

            let exact = try await harness.allPages("/kv1/secrets?maxresults=8&api-version=7.4")
            #expect(exact.map(\.items.count) == [8, 8], "no empty page after a full last one")
            #expect(exact.last?.nextLinkIsNull == true)

            let empty = try await harness.get("/kv2/secrets?api-version=7.4")
            #expect(empty.status == 200 && empty.items.isEmpty && empty.nextLinkIsNull, "an empty vault: \(empty.body)")
        }
    }

    @Test("maxresults outside 1…25 and a skiptoken the emulator did not make are 400 BadParameter")
    func badParameters() async throws {
        try await Self.withEmulator(vaults: ["kv1": .init(secrets: Self.manySecrets(30))]) { harness in
            for size in ["0", "26", "-1", "ten", ""] {
                let answer = try await harness.get("/kv1/secrets?maxresults=\(size)&api-version=7.4")
                #expect(answer.status == 400 && answer.errorCode == "BadParameter", "maxresults=\(size): \(answer.body)")
            }
            for size in ["1", "25"] {
                #expect(try await harness.get("/kv1/secrets?maxresults=\(size)&api-version=7.4").status == 200)
            }
            let next = try #require(try await harness.get("/kv1/secrets?api-version=7.4").nextLink)
            let token = try #require(next.components(separatedBy: "$skiptoken=").last)
            let garbage = ["garbage", "", "eyJ9", String(token.dropLast(3)), String(token.reversed())]
            for skipToken in garbage {
                let answer = try await harness.get("/kv1/secrets?api-version=7.4&$skiptoken=\(skipToken)")
                #expect(answer.status == 400 && answer.errorCode == "BadParameter", "$skiptoken=\(skipToken): \(answer.body)")
            }
            #expect(try await harness.get("/kv1/secrets?api-version=7.4&$skiptoken=\(token)").status == 200)
        }
    }

    @Test("a nextLink continues from the name it marks: secrets added or deleted between pages, the marked one too, move no other")
    func stableAcrossChanges() async throws {
        try await Self.withEmulator(vaults: ["kv1": .init(secrets: Self.manySecrets(10))]) { harness in
            let first = try await harness.get("/kv1/secrets?maxresults=4&api-version=7.4")
            #expect(first.names == Array(Self.caseInsensitiveOrder(Array(Self.manySecrets(10).keys)).prefix(4)))
            harness.emulator.deleteSecret(vault: "kv1", name: first.names[1])
            harness.emulator.deleteSecret(vault: "kv1", name: "secret-04")  // the next name, the one the token marks
            harness.emulator.setSecret(vault: "kv1", name: "a-before-everything", value: "x")
            harness.emulator.setSecret(vault: "kv1", name: "secret-04a", value: "x")
            var pages = [first]
            while let next = pages.last?.nextLink, pages.count < 10 { pages.append(try await harness.get(next)) }
            #expect(pages.last?.nextLinkIsNull == true, "the list ends")
            let names = pages.flatMap(\.names)
            #expect(Set(names).count == names.count, "no name twice: \(names)")
            #expect(names.contains("secret-04a"), "a secret added after the marker is listed")
            #expect(!names.contains("a-before-everything"), "one added before the marker is not (it sorts on a page already read)")
            #expect(!names.contains("secret-04"), "a secret deleted before its page is not listed")
            #expect(names.count == 10, "4 read, 5 after the deleted marker, 1 added: \(names)")
        }
    }

    static func item(_ name: String, in answer: Answer) throws -> [String: Any] {
        try #require(answer.items.first { ($0["id"] as? String)?.hasSuffix("/secrets/\(name)") == true }, "\(name) in \(answer.names)")
    }

    static func attributes(_ item: [String: Any]) throws -> (enabled: Bool, created: Int, updated: Int) {
        let attributes = try #require(item["attributes"] as? [String: Any])
        return (try #require(attributes["enabled"] as? Bool), try #require(attributes["created"] as? Int), try #require(attributes["updated"] as? Int))
    }

    @Test("the list shows the current version's tags and attributes; updated advances with every change, created with a new version")
    func tagsAndUpdated() async throws {
        let vault = EmulatorSeed.Vault(secrets: [
            "db-host": [.init(value: "old", tags: ["env": "dev"]), .init(value: "db.internal", tags: ["env": "prod", "team": "web"])],
            "plain": [.init(value: "x")],
            "off": [.init(value: "x", enabled: false, tags: ["env": "prod"])],
        ])
        try await Self.withEmulator(vaults: ["kv1": vault]) { harness in
            let emulator = harness.emulator
            let list = "/kv1/secrets?api-version=7.4"
            let seeded = try await harness.get(list)
            let dbHost = try Self.item("db-host", in: seeded)
            #expect(dbHost["tags"] as? [String: String] == ["env": "prod", "team": "web"], "the current (newest) version's tags")
            #expect(try Self.item("plain", in: seeded)["tags"] == nil, "no tags, no tags member")
            let off = try Self.attributes(try Self.item("off", in: seeded))
            #expect(!off.enabled)
            let start = try Self.attributes(dbHost)
            #expect(start.updated == start.created)
            let versions = emulator.secretVersionProperties(vault: "kv1", name: "db-host")
            #expect(versions.count == 2 && versions.last?.created == start.created && versions.last?.tags == ["env": "prod", "team": "web"])

            emulator.setSecretTags(vault: "kv1", name: "db-host", tags: ["env": "prod", "team": "payments"])
            let retagged = try Self.item("db-host", in: try await harness.get(list))
            let afterTags = try Self.attributes(retagged)
            #expect(retagged["tags"] as? [String: String] == ["env": "prod", "team": "payments"])
            #expect(afterTags.created == start.created && afterTags.updated > start.updated, "\(afterTags) after \(start)")
            let bundle = try await harness.get("/kv1/secrets/db-host?api-version=7.4")
            #expect(bundle.body["tags"] as? [String: String] == ["env": "prod", "team": "payments"], "the bundle agrees with the list")
            #expect((bundle.body["attributes"] as? [String: Any])?["updated"] as? Int == afterTags.updated)

            emulator.setSecretTags(vault: "kv1", name: "db-host", version: versions[0].version, tags: ["env": "old"])
            let olderChanged = try Self.attributes(try Self.item("db-host", in: try await harness.get(list)))
            #expect(olderChanged.updated == afterTags.updated, "a change to an older version leaves the listed (current) version alone")

            emulator.setSecretEnabled(vault: "kv1", name: "db-host", enabled: false)
            let disabled = try Self.attributes(try Self.item("db-host", in: try await harness.get(list)))
            #expect(!disabled.enabled && disabled.updated > afterTags.updated && disabled.created == start.created)
            emulator.setSecretEnabled(vault: "kv1", name: "db-host", enabled: true)
            let enabled = try Self.attributes(try Self.item("db-host", in: try await harness.get(list)))
            #expect(enabled.enabled && enabled.updated > disabled.updated)

            emulator.setSecret(vault: "kv1", name: "db-host", value: "db2.internal", tags: ["env": "prod"])
            let renewedItem = try Self.item("db-host", in: try await harness.get(list))
            let renewed = try Self.attributes(renewedItem)
            #expect(renewed.created > enabled.updated && renewed.updated == renewed.created, "a new version: new created and updated")
            #expect(renewedItem["tags"] as? [String: String] == ["env": "prod"], "the new version's own tags")
            emulator.setSecret(vault: "kv1", name: "db-host", value: "db3.internal")
            #expect(try Self.item("db-host", in: try await harness.get(list))["tags"] == nil, "a version set without tags has none")
        }
    }

    @Test("PUT and PATCH over REST carry tags, contentType and enabled, and PATCH advances updated", arguments: [true, false])
    func restWrites(withVersion: Bool) async throws {
        try await Self.withEmulator(vaults: ["kv1": .init(secrets: ["s": [.init(value: "v1")]])]) { harness in
            let token = try await harness.token(Self.reader)
            func send(_ method: HTTPMethod, _ path: String, _ json: String) async throws -> [String: Any] {
                let response = try await harness.http.send(
                    method, harness.emulator.baseURL + path,
                    headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")], body: Array(json.utf8)
                )
                #expect(response.status == 200, "\(method) \(path): \(String(decoding: response.body, as: UTF8.self))")
                return (try JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
            }
            let put = try await send(.PUT, "/kv1/secrets/s?api-version=7.4", #"{"value":"v2","contentType":"text/plain","tags":{"env":"prod"}}"#)
            #expect(put["tags"] as? [String: String] == ["env": "prod"] && put["contentType"] as? String == "text/plain")
            let version = try #require((put["id"] as? String)?.split(separator: "/").last.map(String.init))
            let created = try Self.attributes(put).created
            let path = withVersion ? "/kv1/secrets/s/\(version)?api-version=7.4" : "/kv1/secrets/s/?api-version=7.4"
            let patched = try await send(.PATCH, path, #"{"tags":{"env":"dev"},"attributes":{"enabled":false}}"#)
            #expect((patched["id"] as? String)?.hasSuffix(version) == true, "without a version PATCH changes the current one")
            let item = try Self.item("s", in: try await harness.get("/kv1/secrets?api-version=7.4"))
            #expect(item["tags"] as? [String: String] == ["env": "dev"] && item["contentType"] as? String == "text/plain")
            let attributes = try Self.attributes(item)
            #expect(!attributes.enabled && attributes.created == created && attributes.updated > created)
            #expect(harness.emulator.requestCount(.setSecret) == 1 && harness.emulator.requestCount(.updateSecret) == 1)
        }
    }

    @Test("an identity with secret get only reads secrets and is refused the list: AccessDenied with access policies, ForbiddenByRbac with RBAC", arguments: [false, true])
    func getOnlyIdentity(rbac: Bool) async throws {
        let vault = EmulatorSeed.Vault(
            secrets: ["db-pass": [.init(value: "p")], "other": [.init(value: "o")]],
            secretPermissions: [Self.getOnly: ["get"]],
            enableRbacAuthorization: rbac
        )
        try await Self.withEmulator(vaults: ["kv1": vault]) { harness in
            let secret = try await harness.get("/kv1/secrets/db-pass?api-version=7.4", as: Self.getOnly)
            #expect(secret.status == 200 && secret.body["value"] as? String == "p")
            for path in ["/kv1/secrets?api-version=7.4", "/kv1/secrets?maxresults=5&api-version=7.4", "/kv1/secrets/db-pass/versions?api-version=7.4"] {
                let refused = try await harness.get(path, as: Self.getOnly)
                #expect(refused.status == 403 && refused.errorCode == "Forbidden", "\(path): \(refused.body)")
                #expect(refused.items.isEmpty && refused.body["value"] == nil, "a refusal lists nothing")
                if rbac {
                    #expect(refused.innerErrorCode == "ForbiddenByRbac")
                    #expect(refused.errorMessage.hasPrefix("Caller is not authorized to perform action on resource.\r\n"), "\(refused.errorMessage)")
                    #expect(refused.errorMessage.contains("Action: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'"))
                    #expect(refused.errorMessage.contains("Caller: appid=\(Self.getOnly);"))
                } else {
                    #expect(refused.innerErrorCode == "AccessDenied")
                    #expect(refused.errorMessage.hasPrefix("The user, group or application 'appid=\(Self.getOnly);' does not have secrets list permission on key vault 'kv1;location=emulator'."), "\(refused.errorMessage)")
                }
            }
            let everyone = try await harness.get("/kv1/secrets?api-version=7.4", as: Self.reader)
            #expect(everyone.status == 200 && everyone.names == ["db-pass", "other"], "clients not named keep every permission")
        }
    }

    @Test("a seed naming an unknown secret permission is refused at start")
    func unknownPermission() async throws {
        let seed = EmulatorSeed(vaults: ["kv1": .init(secretPermissions: ["app": ["get", "lsit"]])])
        await #expect(throws: (any Error).self) { _ = try await KeyVaultEmulator(seed: seed) }
    }

    @Test("request counts by operation: list pages and single-secret reads, per vault and in all, refused ones included, zeroed by resetCounters")
    func requestCounts() async throws {
        let vaults: [String: EmulatorSeed.Vault] = [
            "kv1": .init(secrets: Self.manySecrets(30), secretPermissions: [Self.getOnly: ["get"]]),
            "kv2": .init(secrets: ["only-kv2": [.init(value: "x")]]),
        ]
        try await Self.withEmulator(vaults: vaults) { harness in
            let emulator = harness.emulator
            _ = try await harness.allPages("/kv1/secrets?maxresults=10&api-version=7.4")
            _ = try await harness.get("/kv1/secrets/secret-01?api-version=7.4")
            _ = try await harness.get("/kv1/secrets/secret-02/\(emulator.secretVersions(vault: "kv1", name: "secret-02")[0])?api-version=7.4")
            _ = try await harness.get("/KV2/secrets/only-kv2?api-version=7.4")
            _ = try await harness.get("/kv2/secrets?api-version=7.4")
            _ = try await harness.get("/kv1/secrets?api-version=7.4", as: Self.getOnly)
            _ = try await harness.get("/kv1/secrets/secret-01/versions?api-version=7.4")
            #expect(emulator.requestCount(.getSecrets, vault: "kv1") == 4, "3 pages and 1 refused")
            #expect(emulator.requestCount(.getSecrets, vault: "kv2") == 1)
            #expect(emulator.requestCount(.getSecrets) == 5)
            #expect(emulator.requestCount(.getSecret, vault: "kv1") == 2)
            #expect(emulator.requestCount(.getSecret, vault: "kv2") == 1, "vault names compare case-insensitively")
            #expect(emulator.requestCount(.getSecret) == 3)
            #expect(emulator.requestCount(.getSecretVersions) == 1)
            #expect(emulator.requestCount(.getKey) == 0)
            #expect(emulator.keyVaultRequestCount == 9)
            emulator.resetCounters()
            #expect(Operation.allCases.allSatisfy { emulator.requestCount($0) == 0 })
        }
    }

    typealias Operation = KeyVaultEmulator.Operation
}
