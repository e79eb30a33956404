import SecretsStoreAzure
import SecretsStoreTemplates
import Testing

/// What the fuzz targets of issue #24's parsers found, pinned as plain tests of the production code: each broke
/// a property of its target before the fix, and each input is also among that target's regressions.
@Suite("Fuzzing findings")
struct FuzzFindingsTests {
    static func render(_ text: String) throws -> String {
        let template = try ValueTemplate(text)
        return String(decoding: try template.render { Array("<\($0)>".utf8) }, as: UTF8.self)
    }

    @Test("a template's last line of only spaces and tabs is kept (swift-mustache's parser dropped it)")
    func trailingBlankLineIsKept() throws {
        #expect(try Self.render("a\n  ") == "a\n  ")
        #expect(try Self.render(" \t ") == " \t ")
        #expect(try Self.render("{{a}}\r\n\t") == "<a>\r\n\t")
        #expect(try Self.render("a  ") == "a  ")
    }

    @Test("a template ending in '{' renders it (swift-mustache's parser refused it as an overflow)")
    func trailingBraceIsKept() throws {
        #expect(try Self.render("a{") == "a{")
        #expect(try Self.render("{{a}}{") == "<a>{")
        #expect(try Self.render("x\n  {") == "x\n  {")
        #expect(try Self.render("{") == "{")
    }

    @Test("a next link the client would not take as absolute (an upper-case scheme) is not within the vault")
    func nextLinkSchemeAsTheClientReadsIt() {
        let vault = "https://kv-fuzz-01.vault.azure.net"
        // KeyVaultClient.get would request "https://kv-fuzz-01.vault.azure.netHTTPS://…": another host.
        #expect(!SecretListing.isWithinVault("HTTPS://kv-fuzz-01.vault.azure.net/secrets?$skiptoken=a", vaultURL: vault))
        #expect(!SecretListing.isWithinVault("Http://127.0.0.1:8443/secrets", vaultURL: "http://127.0.0.1:8443"))
        #expect(SecretListing.isWithinVault("https://KV-FUZZ-01.vault.azure.net:443/secrets?$skiptoken=a", vaultURL: vault))
    }
}
