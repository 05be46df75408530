import Foundation

/// Any JSON value, for the open-ended `jsonb` columns (options, metadata, content parts).
public enum JSONValue: Codable, Hashable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// The number as an Int when it is one exactly (nil for fractions and for numbers past Int's
    /// range, which `Int(_:)` would trap on: a producer's `1e19` must not crash a worker).
    public var intValue: Int? { if case .number(let n) = self { return Int(exactly: n) }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }

    /// Parses JSON text (a `jsonb` column read as text) with `JSONParser`, straight into this enum.
    /// Nesting deeper than `Limits.jsonDepth` is refused as it is met.
    public static func parse(_ text: String) throws -> JSONValue {
        try JSONParser.parse(text)
    }

    /// Throws when arrays and objects nest deeper than `Limits.jsonDepth` (counted over the bytes,
    /// outside strings), so no recursive parse or walk meets a hostile depth.
    static func checkDepth(_ text: String) throws {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in text.utf8 {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > Limits.jsonDepth { throw JSONDepthError() }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
    }

    /// The object merged with `other`: keys of `other` win (one level deep, as option precedence wants).
    public func merging(_ other: JSONValue?) -> JSONValue {
        guard case .object(var mine) = self, case .object(let theirs)? = other else { return other ?? self }
        for (k, v) in theirs { mine[k] = v }
        return .object(mine)
    }
}

/// JSON nested deeper than `Limits.jsonDepth`.
public struct JSONDepthError: Error, CustomStringConvertible, Sendable {
    public var description: String { "the JSON is nested more than \(Limits.jsonDepth) levels deep" }
}

extension Encodable {
    /// This value as JSON text, to bind as `jsonb`.
    public func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
