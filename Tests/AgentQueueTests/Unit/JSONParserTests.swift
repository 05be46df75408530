import Foundation
import Testing

@testable import AgentQueue

/// `JSONValue.parse` (our own parser) agrees with Foundation's JSONSerialization on valid JSON and
/// refuses what JSON's grammar refuses.
@Suite struct JSONParserTests {
    /// What JSONSerialization reads, as a JSONValue (numbers as Double, booleans told apart).
    static func foundation(_ text: String) throws -> JSONValue {
        func convert(_ object: Any) -> JSONValue {
            switch object {
            case let s as String: return .string(s)
            case let b as Bool where type(of: object) == Bool.self: return .bool(b)
            case let i as Int where type(of: object) == Int.self: return .number(Double(i))
            case let d as Double where type(of: object) == Double.self: return .number(d)
            case let n as NSNumber: return String(cString: n.objCType) == "c" ? .bool(n.boolValue) : .number(n.doubleValue)
            case let a as [Any]: return .array(a.map(convert))
            case let o as [String: Any]: return .object(o.mapValues(convert))
            default: return .null
            }
        }
        return convert(try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]))
    }

    @Test(arguments: [
        "null", "true", "false", "0", "-0", "12", "-3.25", "1e19", "1.5E-3", "2e+2", "123456789012345678",
        #""""#, #""plain""#, #""tab\there \"quoted\" back\\slash \/ slash""#, #""\u00e9t\u00E9 \ud83d\ude00 \u0000 end""#,
        "\"h\u{e9}llo w\u{f6}rld \u{1F600}\"", "[]", "{}", " [ 1 , 2 ,\n\t3 ] ", #"{"a": {"b": [true, null, {"c": "d"}]}, "e": -1}"#,
        #"[{"type":"tool-call","tool_call_id":"call_1","tool_name":"lookup","args":{"sku":"sku-7"}}]"#,
        #"{"choices":[{"delta":{"content":" word"},"finish_reason":null}],"usage":null}"#
    ])
    func agreesWithFoundation(_ text: String) throws {
        #expect(try JSONValue.parse(text) == Self.foundation(text))
    }

    @Test(arguments: [
        "", "   ", "nul", "tru", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\": 1,}", "{a: 1}", "01", "1.", ".5", "+1", "-", "1e",
        "1e400", "\"unterminated", "\"bad \\x escape\"", "\"short \\u12\"", "\"lone \\ud83d surrogate\"", "\"lone \\ude00\"",
        "\"raw\ncontrol\"", "[1] 2", "{\"a\": 1}}", "["
    ])
    func refusesWhatJSONRefuses(_ text: String) {
        #expect(throws: (any Error).self) { try JSONValue.parse(text) }
    }

    @Test func theLastOfDuplicateKeysWinsAsInJsonb() throws {
        #expect(try JSONValue.parse(#"{"a": 1, "a": 2}"#) == .object(["a": .number(2)]))
    }

    @Test func nestingIsRefusedPastTheLimitAsItIsMet() throws {
        let deepest = String(repeating: "[", count: Limits.jsonDepth) + String(repeating: "]", count: Limits.jsonDepth)
        #expect(throws: Never.self) { try JSONValue.parse(deepest) }
        let tooDeep = "{\"a\": " + String(repeating: "[", count: Limits.jsonDepth) + String(repeating: "]", count: Limits.jsonDepth) + "}"
        #expect(throws: JSONDepthError.self) { try JSONValue.parse(tooDeep) }
        // Unclosed and hostile: refused at the limit, not after reading a million brackets.
        #expect(throws: JSONDepthError.self) { try JSONValue.parse(String(repeating: "[", count: 1_000_000)) }
    }
}
