import SecretsStoreTemplates
import Testing

/// The template language on its own: names, transforms, escaping, and every error, none of which may show a
/// value or an output.
@Suite("Value templates (Mustache over a class's files)")
struct ValueTemplateTests {
    static let files: [String: [UInt8]] = [
        "username": Array("admin".utf8),
        "db-pass": Array("p<a>&\"ss'".utf8),
        "host": Array("db.internal".utf8),
        "tls.crt": Array("CERT".utf8),
        "ca.pem": Array("CA".utf8),
        "tls": Array("not the certificate".utf8),
        "name/0": Array("latest".utf8),
        "name/1": Array("previous".utf8),
        "padded": Array("  \t value with spaces \r\n".utf8),
        "encoded": Array("aGVsbG8gd29ybGQ=\n".utf8),
        "mixed": Array("MiXeD Ünïcode".utf8),
        "binary": [0xFF, 0x00, 0xFE],
        "broken-base64": Array("not base64!".utf8),
    ]

    static func render(_ text: String) throws(TemplateProblem) -> String {
        let template = try ValueTemplate(text)
        return String(decoding: try template.render { files[$0] }, as: UTF8.self)
    }

    @Test("names are replaced by their files' values; the text around them is kept as written")
    func rendersAConnectionString() throws {
        #expect(try Self.render("postgres://{{username}}:{{db-pass}}@{{host}}/app") == "postgres://admin:p<a>&\"ss'@db.internal/app")
        #expect(try Self.render("no tags at all\n") == "no tags at all\n")
        #expect(try Self.render("") == "")
        #expect(try Self.render("\nstarts with a newline") == "\nstarts with a newline")
        #expect(try Self.render("{{ username }} {{\nhost\n}}") == "admin db.internal")
        #expect(try Self.render("{\"auths\":{\"r\":{\"auth\":\"{{username}}\"}}}") == "{\"auths\":{\"r\":{\"auth\":\"admin\"}}}")
        #expect(try Self.render("a {{! a comment }}b") == "a b")
    }

    @Test("values are never HTML-escaped, in any of the three value tags")
    func noHTMLEscaping() throws {
        #expect(try Self.render("{{db-pass}}") == "p<a>&\"ss'")
        #expect(try Self.render("{{{db-pass}}}") == "p<a>&\"ss'")
        #expect(try Self.render("{{&db-pass}}") == "p<a>&\"ss'")
        #expect(try Self.render("{{trim(db-pass)}}") == "p<a>&\"ss'")
    }

    @Test("file names with dots, dashes and slashes are matched exactly (no nested lookup)")
    func dottedDashedAndSlashedNames() throws {
        #expect(try Self.render("{{tls.crt}}|{{ca.pem}}|{{tls}}") == "CERT|CA|not the certificate")
        #expect(try Self.render("{{name/0}} then {{name/1}}") == "latest then previous")
        #expect(try Self.render("{{db-pass}}") == "p<a>&\"ss'")
        #expect(try ValueTemplate("{{tls.crt}}{{username}}{{tls.crt}}").references == ["tls.crt", "username"])
    }

    @Test("every transform, and transforms of transforms (innermost first)")
    func transforms() throws {
        #expect(try Self.render("{{base64Encode(username)}}") == "YWRtaW4=")
        #expect(try Self.render("{{base64Encode(binary)}}") == "/wD+")
        #expect(try Self.render("{{base64Decode(encoded)}}") == "hello world")
        #expect(try Self.render("[{{trim(padded)}}]") == "[value with spaces]")
        #expect(try Self.render("{{uppercased(mixed)}}") == "MIXED ÜNÏCODE")
        #expect(try Self.render("{{lowercased(mixed)}}") == "mixed ünïcode")
        #expect(try Self.render("{{uppercased(trim(padded))}}") == "VALUE WITH SPACES")
    }

    @Test("base64 decoding is strict: padding, alphabet and trailing bits")
    func base64Strictness() throws {
        for valid in ["", "YQ==", "YQ", "YWI=", "YWI", "YWJj", " YWJj\n"] {
            #expect(throws: Never.self, "\(valid)") { try ValueTemplate("{{base64Decode(v)}}").render { _ in Array(valid.utf8) } }
        }
        for invalid in ["Y", "YQ=", "YQ===", "YR==", "YW J", "YWJj=", "YW_j", "YWJj\u{0}"] {
            #expect(throws: TemplateProblem.notBase64(file: "v"), "\(invalid)") {
                try ValueTemplate("{{base64Decode(v)}}").render { _ in Array(invalid.utf8) }
            }
        }
    }

    @Test("a value that is not text cannot be written into the output: it must be base64Encoded")
    func binaryValues() throws {
        #expect(throws: TemplateProblem.notText(file: "binary")) { try Self.render("{{binary}}") }
        #expect(throws: TemplateProblem.notText(file: "binary")) { try Self.render("{{uppercased(binary)}}") }
        #expect(throws: TemplateProblem.notText(file: "binary")) { try Self.render("{{base64Decode(base64Encode(binary))}}") }
    }

    @Test("a name the files do not hold is an error, not an empty string")
    func unknownName() throws {
        let template = try ValueTemplate("{{username}}:{{passwrod}}")
        #expect(template.references == ["username", "passwrod"])
        #expect(template.unknownReferences { Self.files[$0] != nil } == ["passwrod"])
        #expect(throws: TemplateProblem.unknownFile("passwrod")) { try template.render { Self.files[$0] } }
    }

    @Test(
        "syntax errors name the tag's position",
        arguments: [
            ("{{username", TemplateProblem.unterminatedTag(line: 1, column: 1)),
            ("a\nbc {{username}", .unterminatedTag(line: 2, column: 4)),
            ("{{{username}}", .unterminatedTag(line: 1, column: 1)),
            ("{{}}", .malformedTag(line: 1, column: 1)),
            ("x {{user name}}", .malformedTag(line: 1, column: 3)),
            ("{{trim(username}}", .malformedTag(line: 1, column: 1)),
            ("{{trim(username))}}", .malformedTag(line: 1, column: 1)),
            ("{{trim()}}", .malformedTag(line: 1, column: 1)),
            ("{{reversed(username)}}", .unknownTransform("reversed", line: 1, column: 1)),
            ("{{#username}}x{{/username}}", .unsupportedTag(.section, line: 1, column: 1)),
            ("{{^username}}x{{/username}}", .unsupportedTag(.section, line: 1, column: 1)),
            ("{{/username}}", .unsupportedTag(.section, line: 1, column: 1)),
            ("{{>partial}}", .unsupportedTag(.partial, line: 1, column: 1)),
            ("{{<parent}}{{/parent}}", .unsupportedTag(.partial, line: 1, column: 1)),
            ("{{$block}}{{/block}}", .unsupportedTag(.block, line: 1, column: 1)),
            ("{{=<% %>=}}<%username%>", .unsupportedTag(.delimiterChange, line: 1, column: 1)),
            ("{{% CONTENT_TYPE: HTML}}{{username}}", .unsupportedTag(.pragma, line: 1, column: 1)),
        ] as [(String, TemplateProblem)]
    )
    func syntaxErrors(text: String, expected: TemplateProblem) {
        #expect(throws: expected) { try ValueTemplate(text) }
    }

    @Test("no message holds a value, an output or the template's text")
    func messagesHoldNoValue() throws {
        let secretish = "hunter2-SECRET"
        let files: [String: [UInt8]] = ["pw": Array(secretish.utf8), "bin": [0xC3]]
        var messages: [String] = []
        for text in ["{{base64Decode(pw)}}", "{{bin}}", "{{pw}}{{nope}}", "\(secretish){{pw", "{{pw}}{{#pw}}"] {
            do {
                _ = try ValueTemplate(text).render { files[$0] }
                Issue.record("\(text) rendered")
            } catch {
                messages.append("\(error)")
                messages.append("\(TemplateError(.secretObjectKey(secretName: "db", key: "URL"), error))")
            }
        }
        #expect(messages.count == 10)
        for message in messages { #expect(!message.contains("hunter2"), "\(message)") }
    }

    @Test("fileTemplates: a YAML map of file name to template, sorted; anything else is refused")
    func fileTemplatesParameter() throws {
        let parsed = try FileTemplatesParameter.entries([
            "fileTemplates": "db.url: \"postgres://{{username}}@{{host}}\"\napp.ini: |\n  [db]\n  password = {{trim(db-pass)}}\n"
        ])
        #expect(parsed.map(\.name) == ["app.ini", "db.url"])
        let template = try ValueTemplate(parsed[0].template)
        #expect(template.references == ["db-pass"])
        #expect(String(decoding: try template.render { Self.files[$0] }, as: UTF8.self) == "[db]\npassword = p<a>&\"ss'\n")
        #expect(try FileTemplatesParameter.entries([:]).isEmpty)
        #expect(try FileTemplatesParameter.entries(["fileTemplates": "  \n"]).isEmpty)
        for bad in ["- a\n- b\n", "just text", "a:\n  nested: map\n", "a:\n", "a: ~\n", "a: [1]\n", "a: {{x}}\n", "a: \"x\"\na: \"y\"\n"] {
            #expect(throws: TemplateError(.fileTemplates, .notAMapOfStrings), "\(bad)") { try FileTemplatesParameter.entries(["fileTemplates": bad]) }
        }
    }
}
