import SecretsStoreAzure
import SecretsStoreCore
import Testing

@Suite("Percent-encoding and trimming shared by the Azure provider and the Kubernetes client")
struct EncodingTests {
    @Test("RFC 3986 unreserved bytes pass, every other UTF-8 byte is %XX in upper-case hex")
    func percentEncoding() {
        #expect(PercentEncoding.escape("AZaz09-._~") == "AZaz09-._~")
        #expect(PercentEncoding.escape("a b/c?d=e&f+g%") == "a%20b%2Fc%3Fd%3De%26f%2Bg%25")
        #expect(PercentEncoding.escape("é\u{1}") == "%C3%A9%01")
        #expect(PercentEncoding.escape("") == "")
    }

    @Test("escapingTilde encodes `~` as well (the Kubernetes client's set) and changes nothing else")
    func tilde() {
        #expect(PercentEncoding.escape("a~b", escapingTilde: true) == "a%7Eb")
        #expect(PercentEncoding.escape("a~b") == "a~b")
        let sample = "x-y_z.0 /é"
        #expect(PercentEncoding.escape(sample, escapingTilde: true) == PercentEncoding.escape(sample))
    }

    @Test("form bodies: fields in order, names and values escaped, a space is %20")
    func formEncoding() {
        let body = FormEncoding.encode([("grant_type", "client_credentials"), ("scope", "https://vault.azure.net/.default"), ("a b", "c~d")])
        #expect(String(decoding: body, as: UTF8.self) == "grant_type=client_credentials&scope=https%3A%2F%2Fvault.azure.net%2F.default&a%20b=c~d")
    }

    @Test("trimming removes every leading and trailing match and keeps the middle")
    func trimming() {
        #expect("\"https://vault.azure.net\"".trimming(["\""]) == "https://vault.azure.net")
        #expect("[[::1]]".trimming(["[", "]"]) == "::1")
        #expect("  a b \n".trimmingWhitespace() == "a b")
        #expect("\t\n ".trimmingWhitespace() == "")
        #expect("xxaxbxx".trimming(where: { $0 == "x" }) == "axb")
        #expect("".trimming(["x"]) == "")
    }
}
