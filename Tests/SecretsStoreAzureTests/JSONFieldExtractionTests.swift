import SecretsStoreAzure
import Testing

/// `objectJSONFields`' reading of a secret's value: strings as their characters, everything else as compact
/// JSON text as written; refusals that name the field and never the value.
@Suite("Azure JSON fields: reading a secret's value")
struct JSONFieldExtractionTests {
    static func field(_ dotted: String) -> JSONField {
        let path = dotted.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        return JSONField(path: path, fileName: path.last!)
    }

    func extract(_ fields: [String], from json: String) throws(JSONFieldExtraction.Failure) -> [String] {
        try JSONFieldExtraction.extract(fields.map(Self.field), from: Array(json.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("a string is its characters, escapes resolved; other values are compact JSON as written")
    func values() throws {
        let json = #"""
            {
              "username": "app\"user\\\n\u00e9\ud83d\ude00",
              "port": 5432, "big": 123456789012345678901234567890, "ratio": -1.50e+3,
              "on": true, "off": false, "none": null,
              "db": { "host" : "db.internal", "opts": [ 1, "two" , { "x" : null } ] },
              "list": [ ],
              "empty": ""
            }
            """#
        let values = try extract(["username", "port", "big", "ratio", "on", "off", "none", "db", "db.host", "db.opts", "list", "empty"], from: json)
        #expect(values == [
            "app\"user\\\n\u{e9}\u{1F600}", "5432", "123456789012345678901234567890", "-1.50e+3", "true", "false", "null",
            #"{"host":"db.internal","opts":[1,"two",{"x":null}]}"#, "db.internal", #"[1,"two",{"x":null}]"#, "[]", "",
        ])
    }

    @Test("a nested string with characters JSON must escape is re-escaped in compact text")
    func reescapes() throws {
        #expect(try extract(["a"], from: #"{"a":{"k\"":"line\nbreak\u0001"}}"#) == [#"{"k\"":"line\nbreak\u0001"}"#])
    }

    @Test("a repeated key: the last one counts")
    func repeatedKey() throws {
        #expect(try extract(["a"], from: #"{"a":"first","a":"second"}"#) == ["second"])
    }

    @Test(
        "not JSON, JSON that is not an object, and missing fields fail naming the field, never the value",
        arguments: [
            ("hunter2-not-json", ["a"], JSONFieldExtraction.Failure.notJSON, "objectJSONFields: the secret's value is not JSON"),
            (#"{"a":"hunter2",}"#, ["a"], .notJSON, "objectJSONFields: the secret's value is not JSON"),
            (#"{"a":"hunter2"} trailing"#, ["a"], .notJSON, "objectJSONFields: the secret's value is not JSON"),
            (#"{"a":01}"#, ["a"], .notJSON, "objectJSONFields: the secret's value is not JSON"),
            (#"{"a":"hunter2\x"}"#, ["a"], .notJSON, "objectJSONFields: the secret's value is not JSON"),
            (#"["hunter2"]"#, ["a"], .notAnObject, "objectJSONFields: the secret's value is JSON but not an object"),
            (#""hunter2""#, ["a"], .notAnObject, "objectJSONFields: the secret's value is JSON but not an object"),
            (#"{"user":"hunter2"}"#, ["password"], .missingField(field("password")), "objectJSONFields: the secret's JSON has no field password"),
            (#"{"a":"hunter2"}"#, ["a.b"], .missingField(field("a.b")), "objectJSONFields: the secret's JSON has no field a.b"),
            (#"{"a":{"c":"hunter2"}}"#, ["a.b"], .missingField(field("a.b")), "objectJSONFields: the secret's JSON has no field a.b"),
        ]
    )
    func failures(json: String, fields: [String], expected: JSONFieldExtraction.Failure, message: String) {
        let error = #expect(throws: JSONFieldExtraction.Failure.self) { try extract(fields, from: json) }
        #expect(error == expected)
        #expect(error?.message == message)
        #expect(error?.message.contains("hunter2") == false)
    }

    @Test("nesting past the bound is not JSON (no stack overflow)")
    func deepNesting() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONFieldExtraction.Failure.notJSON) { try extract(["a"], from: #"{"a":"# + deep + "}") }
    }
}
