import SecretsStoreCore
import Testing

@Suite("Provider file paths")
struct PayloadPathTests {
    @Test(arguments: ["a", "secret1", "dir/file", "a/b/c", "x..y", ".hidden", "a/..b", "a.b/c"])
    func accepts(path: String) throws {
        try PayloadPath.validate(path)
    }

    @Test(arguments: [
        "", "/etc/passwd", "..", "../etc", "../../etc", "a/../b", "a/..", "..data", "..2020_01_01", "./a", "a/./b",
        "a//b", "a/", String(repeating: "x", count: 256), String(repeating: "a/", count: 2100) + "a", "a\u{0}b",
    ])
    func rejects(path: String) {
        #expect(throws: PublishError.self) { try PayloadPath.validate(path) }
    }

    @Test func topLevelName() {
        #expect(PayloadPath.topLevelName(of: "dir/file") == "dir")
        #expect(PayloadPath.topLevelName(of: "file") == "file")
    }
}
