import SecretsStoreCommandLine
import SecretsStoreApplication
import Testing

/// Go booleans whose default is `true` (`--construct-pem-chain`): `=false` must reach the parser as `--no-…`.
@Suite("Go-style booleans that default to true")
struct GoFlagsInvertedTests {
    let booleans: Set<String> = ["write-cert-and-key-in-separate-files", "dry-run"]
    let inverted: Set<String> = ["construct-pem-chain"]

    @Test func rewritesFalseToTheInversion() {
        let input = [
            "provider", "azure", "--construct-pem-chain=false", "-construct-pem-chain=0", "--construct-pem-chain=True",
            "--construct-pem-chain", "--write-cert-and-key-in-separate-files=true", "--dry-run=false", "-v=5",
            "--construct-pem-chain=maybe", "--", "--construct-pem-chain=false",
        ]
        #expect(
            GoFlags.normalize(input, booleanFlags: booleans, invertedBooleanFlags: inverted) == [
                "provider", "azure", "--no-construct-pem-chain", "--no-construct-pem-chain", "--construct-pem-chain",
                "--construct-pem-chain", "--write-cert-and-key-in-separate-files", "--v=5",
                "--construct-pem-chain=maybe", "--", "--construct-pem-chain=false",
            ]
        )
    }

    @Test func leavesEverythingElseAsTheBaseRewrite() {
        let input = ["-endpoint=unix:///csi/csi.sock", "--enable-secret-rotation=true", "--custom-user-agent=aks/1.0"]
        #expect(
            GoFlags.normalize(input, booleanFlags: ["enable-secret-rotation"], invertedBooleanFlags: inverted)
                == GoFlags.normalize(input, booleanFlags: ["enable-secret-rotation"])
        )
    }
}
