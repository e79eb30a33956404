import SecretsStoreCommandLine
import SecretsStoreCore
import SecretsStoreApplication
import Testing

@Suite("Command line compatibility with the Go driver")
struct CommandLineTests {
    let booleans: Set<String> = ["enable-secret-rotation", "log-format-json"]

    @Test func rewritesGoForms() {
        let input = [
            "-endpoint=unix:///csi/csi.sock", "--nodeid=$(KUBE_NODE_NAME)", "-v=5", "--enable-secret-rotation=true",
            "--log-format-json=false", "--rotation-poll-interval", "30s", "-v", "3",
        ]
        #expect(
            GoFlags.normalize(input, booleanFlags: booleans) == [
                "--endpoint=unix:///csi/csi.sock", "--nodeid=$(KUBE_NODE_NAME)", "--v=5", "--enable-secret-rotation",
                "--rotation-poll-interval", "30s", "-v", "3",
            ]
        )
    }

    @Test("The last occurrence of a boolean wins, as in Go: a chart's --x=true then a user's --x=false is off")
    func lastBooleanWins() {
        #expect(
            GoFlags.normalize(["--enable-secret-rotation=true", "--nodeid=n", "--enable-secret-rotation=false"], booleanFlags: booleans)
                == ["--nodeid=n"]
        )
        #expect(
            GoFlags.normalize(["--enable-secret-rotation=false", "--enable-secret-rotation=true"], booleanFlags: booleans)
                == ["--enable-secret-rotation"]
        )
        #expect(
            GoFlags.normalize(["-log-format-json", "-log-format-json=0", "--", "--log-format-json"], booleanFlags: booleans)
                == ["--", "--log-format-json"]
        )
    }

    @Test("Go booleans are strconv.ParseBool's exact spellings, read the same by both rewrites")
    func goBooleanSpellings() {
        for text in ["1", "t", "T", "TRUE", "true", "True"] { #expect(GoFlags.parseBool(text) == true, "\(text)") }
        for text in ["0", "f", "F", "FALSE", "false", "False"] { #expect(GoFlags.parseBool(text) == false, "\(text)") }
        for text in ["tRuE", "fAlSe", "yes", "no", "", "2", " true"] { #expect(GoFlags.parseBool(text) == nil, "\(text)") }
        // A spelling Go refuses is left for the parser to refuse, by the plain and the inverted rewrite alike.
        #expect(GoFlags.normalize(["--log-format-json=tRuE"], booleanFlags: booleans) == ["--log-format-json=tRuE"])
        #expect(
            GoFlags.normalize(["--construct-pem-chain=fALSE"], booleanFlags: booleans, invertedBooleanFlags: ["construct-pem-chain"])
                == ["--construct-pem-chain=fALSE"]
        )
        #expect(GoFlags.normalize(["--log-format-json=True"], booleanFlags: booleans) == ["--log-format-json"])
        #expect(GoFlags.normalize(["--log-format-json=T", "--log-format-json=F"], booleanFlags: booleans) == [])
    }

    @Test func keepsSubcommandsAndPositionals() {
        #expect(GoFlags.normalize(["provider", "azure", "--", "-x"], booleanFlags: booleans) == ["provider", "azure", "--", "-x"])
    }

    @Test(arguments: [
        ("2m", Duration.seconds(120)), ("30s", .seconds(30)), ("1h30m", .seconds(5400)), ("500ms", .milliseconds(500)),
        ("1.5s", .milliseconds(1500)), ("0", .zero), ("2m0s", .seconds(120)),
    ])
    func parsesGoDurations(text: String, expected: Duration) {
        #expect(GoDuration.parse(text) == expected)
    }

    @Test(arguments: ["", "2", "m", "2x", "-1s", "1s2", "9999999999h", "3000000h", "1e400h", "100000000000000000000ns"])
    func rejectsBadDurations(text: String) {
        #expect(GoDuration.parse(text) == nil)
    }

    @Test func endpoints() throws {
        #expect(try Endpoint.socketPath(from: "unix:///csi/csi.sock") == "/csi/csi.sock")
        #expect(try Endpoint.socketPath(from: "unix://tmp/csi.sock") == "/tmp/csi.sock")
        #expect(throws: Endpoint.ParseError.self) { try Endpoint.socketPath(from: "tcp://127.0.0.1:10000") }
        #expect(throws: Endpoint.ParseError.self) { try Endpoint.socketPath(from: "unix://" + String(repeating: "a", count: 120)) }
    }

    @Test func timestamps() {
        #expect(UTCTimestamp.format(epochSeconds: 0) == "1970_01_01_00_00_00")
        #expect(UTCTimestamp.format(epochSeconds: 1_795_919_943) == "2026_11_29_02_39_03")
        #expect(UTCTimestamp.format(epochSeconds: 951_782_400) == "2000_02_29_00_00_00")
        #expect(UTCTimestamp.iso8601(nanosecondsSinceEpoch: 1_500_000_000) == "1970-01-01T00:00:01.500Z")
    }
}
