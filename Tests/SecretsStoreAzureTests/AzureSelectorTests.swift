import Foundation
import KeyVaultEmulator
import SecretsStoreAzure
import SecretsStoreCore
import Testing

/// Selectors (`objectNameRegex`, `objectTags`) and `objectJSONFields` against the Key Vault emulator over real
/// HTTPS: what is written, what is refused, and what a refresh costs in Key Vault requests.
@Suite("Azure selectors and JSON fields against the emulator", .timeLimit(.minutes(3)))
struct AzureSelectorTests {
    static let getOnlyClient = "wi-get-only"

    /// `objects` of the given entries (each the YAML lines of one `- |` item).
    static func objects(_ entries: [String]) -> String {
        AzureSelectionParametersTests.objects(entries)
    }

    /// The harness with `secrets` added to vault `kv1` (name → value, tags), and a workload identity
    /// (``getOnlyClient``) that may read kv1's secrets but not list them.
    static func withVault(
        _ secrets: [String: (value: String, tags: [String: String]?)],
        _ body: (AzureHarness) async throws -> Void
    ) async throws {
        try await AzureHarness.withHarness(adjustSeed: { seed, _ in
            for (name, secret) in secrets {
                seed.vaults?["kv1"]?.secrets?[name] = [.init(value: secret.value, tags: secret.tags)]
            }
            seed.vaults?["kv1"]?.secretPermissions = [Self.getOnlyClient: ["get"]]
            seed.clients?.append(
                .init(clientID: Self.getOnlyClient, federated: [.init(subject: AzureHarness.subject, audience: "api://AzureADTokenExchange")])
            )
        }, body)
    }

    static func text(_ response: ProviderResponse) -> [String: String] {
        Dictionary(uniqueKeysWithValues: response.files.map { ($0.path, String(decoding: $0.contents, as: UTF8.self)) })
    }

    @Test("a name regex writes every enabled match under its name, with the entry's mode, and records each match's version")
    func regex() async throws {
        try await Self.withVault(["sel-a": ("A", nil), "sel-b": ("B", nil), "selx": ("X", nil), "app-sel-c": ("C", nil)]) { harness in
            let response = try await harness.fetch(harness.request(objects: Self.objects([
                "objectNameRegex: \"^sel-\"\nobjectType: secret\nfilePermission: \"0440\"",
            ])))
            #expect(Self.text(response) == ["sel-a": "A", "sel-b": "B"])
            #expect(response.files.allSatisfy { $0.mode == 0o440 })
            let expected = try ["sel-a", "sel-b"].map { name in
                ObjectVersion(id: "secret/\(name)", version: try #require(harness.emulator.secretVersions(vault: "kv1", name: name).last))
            }
            #expect(Set(response.objectVersions) == Set(expected))
        }
    }

    @Test("tags: every listed tag must be there with its exact value; with a regex, both must match")
    func tags() async throws {
        try await Self.withVault([
            "web-prod": ("1", ["env": "prod", "team": "web"]),
            "web-prod-extra": ("2", ["env": "prod", "team": "web", "tier": "gold"]),
            "prod-only": ("3", ["env": "prod"]),
            "web-dev": ("4", ["env": "dev", "team": "web"]),
            "web-prod-case": ("5", ["env": "Prod", "team": "web"]),
            "untagged": ("6", nil),
        ]) { harness in
            let tagged = try await harness.fetch(harness.request(objects: Self.objects(["objectTags: \"env=prod, team=web\"\nobjectType: secret"])))
            #expect(Set(tagged.files.map(\.path)) == ["web-prod", "web-prod-extra"])
            let both = try await harness.fetch(harness.request(objects: Self.objects([
                "objectTags: \"env=prod\"\nobjectNameRegex: \"extra$\"\nobjectType: secret",
            ])))
            #expect(both.files.map(\.path) == ["web-prod-extra"])
        }
    }

    @Test("a disabled secret is skipped, without a read")
    func disabledSkipped() async throws {
        try await Self.withVault(["sel-on": ("on", nil), "sel-off": ("off", nil)]) { harness in
            harness.emulator.setSecretEnabled(vault: "kv1", name: "sel-off", enabled: false)
            harness.emulator.resetCounters()
            let response = try await harness.fetch(harness.request(objects: Self.objects(["objectNameRegex: \"^sel-\"\nobjectType: secret"])))
            #expect(Self.text(response) == ["sel-on": "on"])
            #expect(harness.emulator.requestCount(.getSecret, vault: "kv1") == 1)
        }
    }

    static func bulk(_ count: Int, prefix: String = "bulk") -> [String: (value: String, tags: [String: String]?)] {
        Dictionary(uniqueKeysWithValues: (0..<count).map { (String(format: "\(prefix)-%02d", $0), (value: "value-\($0)", tags: nil)) })
    }

    @Test("more than 25 secrets: every page is listed (one request per page), every match written")
    func paging() async throws {
        try await Self.withVault(Self.bulk(60)) { harness in
            harness.emulator.resetCounters()
            let response = try await harness.fetch(harness.request(objects: Self.objects(["objectNameRegex: \"^bulk-\"\nobjectType: secret"])))
            #expect(response.files.count == 60)
            #expect(Self.text(response)["bulk-59"] == "value-59")
            // 60 bulk secrets and the seed's own 4 (+1 certificate-backed): 65 in all, 3 pages of 25.
            #expect(harness.emulator.requestCount(.getSecrets, vault: "kv1") == 3)
            #expect(harness.emulator.requestCount(.getSecret, vault: "kv1") == 60)
        }
    }

    @Test("more matches than maxSelectedObjects fails before any read, giving the count and the cap")
    func overTheCap() async throws {
        try await Self.withVault(Self.bulk(6)) { harness in
            harness.emulator.resetCounters()
            let request = harness.request(
                objects: Self.objects(["objectName: db-pass\nobjectType: secret", "objectNameRegex: \"^bulk-\"\nobjectType: secret"]),
                extra: ["maxSelectedObjects": "5"]
            )
            await #expect(throws: ProviderFailure.misconfigured(
                "failed to mount objects, error: the selectors (objects[1]) match 6 secrets, more than maxSelectedObjects (5): narrow objectNameRegex or objectTags, or raise maxSelectedObjects (at most 1000)"
            )) {
                _ = try await harness.fetch(request)
            }
            #expect(harness.emulator.requestCount(.getSecret, vault: "kv1") == 0)
            let atTheCap = try await harness.fetch(harness.request(
                objects: Self.objects(["objectNameRegex: \"^bulk-0[0-4]\"\nobjectType: secret"]),
                extra: ["maxSelectedObjects": "5"]
            ))
            #expect(atTheCap.files.count == 5)
        }
    }

    @Test("an identity that may read but not list secrets: the list's 403 says it needs the list permission")
    func listForbidden() async throws {
        try await Self.withVault(["db-a": ("A", nil)]) { harness in
            let request = harness.request(
                objects: Self.objects(["objectName: db-pass\nobjectType: secret", "objectNameRegex: \"^db-\"\nobjectType: secret"]),
                extra: ["clientID": Self.getOnlyClient]
            )
            let error = await #expect(throws: ProviderFailure.self) { _ = try await harness.fetch(request) }
            guard case .permissionDenied(let message)? = error else {
                Issue.record("expected permissionDenied, got \(String(describing: error))")
                return
            }
            #expect(message.hasPrefix(
                "failed to mount objects, error: objects[1] (a selector): listing the secrets of vault kv1 failed: the identity needs the list permission on secrets (an access policy's secret permission List, or an Azure RBAC role with Microsoft.KeyVault/vaults/secrets/readMetadata/action such as Key Vault Secrets User): GET "
            ), "\(message)")
            #expect(message.contains("RESPONSE 403"))
            // The same identity reads a named secret.
            let named = try await harness.fetch(harness.request(objects: Self.objects(["objectName: db-a\nobjectType: secret"]), extra: ["clientID": Self.getOnlyClient]))
            #expect(Self.text(named) == ["db-a": "A"])
        }
    }

    @Test("between two fetches a new match appears and a vanished one disappears")
    func matchesChange() async throws {
        try await Self.withVault(["sel-a": ("A", nil), "sel-b": ("B", nil)]) { harness in
            let request = harness.request(objects: Self.objects(["objectNameRegex: \"^sel-\"\nobjectType: secret"]))
            #expect(Self.text(try await harness.fetch(request)) == ["sel-a": "A", "sel-b": "B"])
            harness.emulator.setSecret(vault: "kv1", name: "sel-c", value: "C")
            harness.emulator.deleteSecret(vault: "kv1", name: "sel-a")
            let second = try await harness.fetch(request)
            #expect(Self.text(second) == ["sel-b": "B", "sel-c": "C"])
            #expect(Set(second.objectVersions.map(\.id)) == ["secret/sel-b", "secret/sel-c"])
            // Disabling and re-tagging take a match out as well.
            harness.emulator.setSecretEnabled(vault: "kv1", name: "sel-b", enabled: false)
            #expect(Self.text(try await harness.fetch(request)) == ["sel-c": "C"])
        }
    }

    @Test("a refresh of a 50-match selector with 1 changed secret costs the list's pages and 1 read")
    func refreshCost() async throws {
        try await Self.withVault(Self.bulk(50, prefix: "cost")) { harness in
            let request = harness.request(objects: Self.objects(["objectNameRegex: \"^cost-\"\nobjectType: secret"]))
            harness.emulator.resetCounters()
            let first = try await harness.fetch(request)
            #expect(first.files.count == 50)
            let firstPages = harness.emulator.requestCount(.getSecrets, vault: "kv1")
            let firstReads = harness.emulator.requestCount(.getSecret, vault: "kv1")
            #expect(firstPages == 3)  // 55 secrets in the vault
            #expect(firstReads == 50)

            let changed = harness.emulator.setSecret(vault: "kv1", name: "cost-17", value: "rotated")
            harness.emulator.resetCounters()
            let second = try await harness.fetch(request)
            #expect(harness.emulator.requestCount(.getSecrets, vault: "kv1") == 3)
            #expect(harness.emulator.requestCount(.getSecret, vault: "kv1") == 1)
            let texts = Self.text(second)
            #expect(texts.count == 50)
            #expect(texts["cost-17"] == "rotated")
            #expect(texts["cost-18"] == "value-18")
            #expect(second.objectVersions.contains(ObjectVersion(id: "secret/cost-17", version: changed)))
            print("refresh of a 50-match selector: first fetch \(firstPages) pages + \(firstReads) reads; after 1 change \(harness.emulator.requestCount(.getSecrets, vault: "kv1")) pages + \(harness.emulator.requestCount(.getSecret, vault: "kv1")) read")
        }
    }

    @Test("a selector matching another entry's file fails naming both entries; no match at all fails as not found")
    func collisionsAndNothing() async throws {
        try await Self.withVault(["db-a": ("A", nil)]) { harness in
            await #expect(throws: ProviderFailure.misconfigured(
                "failed to mount objects, error: objects[1] (a selector) matches secret db-pass, whose file objects[0] also writes: narrow objectNameRegex or objectTags"
            )) {
                _ = try await harness.fetch(harness.request(objects: Self.objects(["objectName: db-pass\nobjectType: secret", "objectNameRegex: \"^db-\"\nobjectType: secret"])))
            }
            await #expect(throws: ProviderFailure.objectNotFound(
                "failed to mount objects, error: no enabled secret matches the selectors (objects[0]); refusing to publish an empty volume"
            )) {
                _ = try await harness.fetch(harness.request(objects: Self.objects(["objectNameRegex: \"^nothing-\"\nobjectType: secret"])))
            }
        }
    }

    // MARK: JSON fields

    static let creds = #"{"username":"app","password":"hunter2","db":{"host":"db.internal","port":5432}}"#

    @Test("JSON fields: one file each, nested and renamed; the whole secret only under its alias")
    func jsonFields() async throws {
        try await Self.withVault(["db-creds": (Self.creds, nil)]) { harness in
            let fields = try await harness.fetch(harness.request(objects: Self.objects([
                "objectName: db-creds\nobjectType: secret\nobjectJSONFields: \"username,password:db-pass,db.host,db.port\"",
            ])))
            #expect(Self.text(fields) == ["username": "app", "db-pass": "hunter2", "host": "db.internal", "port": "5432"])
            let version = try #require(harness.emulator.secretVersions(vault: "kv1", name: "db-creds").last)
            #expect(fields.objectVersions == [ObjectVersion(id: "secret/db-creds", version: version)])
            let aliased = try await harness.fetch(harness.request(objects: Self.objects([
                "objectName: db-creds\nobjectType: secret\nobjectAlias: creds.json\nobjectJSONFields: db",
            ])))
            #expect(Self.text(aliased) == ["db": #"{"host":"db.internal","port":5432}"#, "creds.json": Self.creds])
        }
    }

    @Test("JSON fields: a missing field or a value that is not JSON fails naming the object and the field, never the value; optional skips only a missing secret")
    func jsonFieldFailures() async throws {
        try await Self.withVault(["db-creds": (Self.creds, nil), "plain": ("hunter2", nil)]) { harness in
            await #expect(throws: ProviderFailure.misconfigured(
                "failed to mount objects, error: failed to get objectType:secret, objectName:db-creds, objectVersion:: objectJSONFields: the secret's JSON has no field db.user"
            )) {
                _ = try await harness.fetch(harness.request(objects: Self.objects([
                    "objectName: db-creds\nobjectType: secret\noptional: true\nobjectJSONFields: \"username,db.user\"",
                ])))
            }
            await #expect(throws: ProviderFailure.misconfigured(
                "failed to mount objects, error: failed to get objectType:secret, objectName:plain, objectVersion:: objectJSONFields: the secret's value is not JSON"
            )) {
                _ = try await harness.fetch(harness.request(objects: Self.objects(["objectName: plain\nobjectType: secret\nobjectJSONFields: user"])))
            }
            let skipped = try await harness.fetch(harness.request(objects: Self.objects([
                "objectName: absent\nobjectType: secret\noptional: true\nobjectJSONFields: user",
                "objectName: db-creds\nobjectType: secret\nobjectJSONFields: username",
            ])))
            #expect(Self.text(skipped) == ["username": "app"])
            #expect(skipped.missingOptionalObjects.map(\.id) == ["secret/absent"])
        }
    }

    // MARK: nextLink

    @Test(
        "nextLink is followed only on the vault's scheme, host, port and list path",
        arguments: [
            ("https://kv1.vault.azure.net/secrets?api-version=7.4&$skiptoken=x", true),
            ("https://KV1.vault.azure.net:443/secrets?$skiptoken=x", true),
            ("https://kv1.vault.azure.net/secrets/?$skiptoken=x", true),
            ("http://kv1.vault.azure.net/secrets?$skiptoken=x", false),
            ("https://kv1.vault.azure.net:8443/secrets?$skiptoken=x", false),
            ("https://evil.example/secrets?$skiptoken=x", false),
            ("https://kv1.vault.azure.net.evil.example/secrets", false),
            ("https://kv1.vault.azure.net@evil.example/secrets", false),
            ("https://kv1.vault.azure.net/keys?$skiptoken=x", false),
            ("https://kv1.vault.azure.net/secrets/../keys", false),
            ("/secrets?$skiptoken=x", false),
        ]
    )
    func nextLinkOrigin(link: String, followed: Bool) {
        #expect(SecretListing.isWithinVault(link, vaultURL: "https://kv1.vault.azure.net") == followed)
    }

    @Test("an emulator's vault path is part of the vault URL")
    func nextLinkPath() {
        #expect(SecretListing.isWithinVault("https://127.0.0.1:8443/kv1/secrets?$skiptoken=x", vaultURL: "https://127.0.0.1:8443/kv1"))
        #expect(!SecretListing.isWithinVault("https://127.0.0.1:8443/kv2/secrets?$skiptoken=x", vaultURL: "https://127.0.0.1:8443/kv1"))
    }
}
