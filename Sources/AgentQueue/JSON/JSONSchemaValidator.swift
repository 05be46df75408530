/// Checks a JSON value against a JSON Schema: the keywords structured output uses (`type`,
/// `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`, `oneOf`,
/// `allOf`, string lengths and `pattern`, array lengths, numeric bounds (inclusive and exclusive)
/// and `multipleOf`). Hand-written: no JSON Schema package is available here; unknown keywords are
/// ignored, as the specification asks. Pure.
public struct JSONSchemaValidator: Sendable {
    public let schema: JSONValue

    public init(schema: JSONValue) {
        self.schema = schema
    }

    /// The problems found, each naming its path (`$.items[2].name`); empty when the value matches.
    public func problems(in value: JSONValue) -> [String] {
        var out: [String] = []
        check(value, against: schema, path: "$", into: &out)
        return out
    }

    private func check(_ value: JSONValue, against schema: JSONValue, path: String, into out: inout [String]) {
        guard case .object = schema else { return }  // `true` / `{}`: anything goes
        if let c = schema["const"], c != value { out.append("\(path) must be \(c.jsonString)") }
        if case .array(let options)? = schema["enum"], !options.contains(value) {
            out.append("\(path) must be one of \(JSONValue.array(options).jsonString)")
        }
        if let types = typeNames(schema["type"]), !types.contains(where: { matches(value, type: $0) }) {
            out.append("\(path) must be \(types.joined(separator: " or ")), got \(typeName(of: value))")
            return
        }
        if case .array(let all)? = schema["allOf"] { for s in all { check(value, against: s, path: path, into: &out) } }
        for key in ["anyOf", "oneOf"] {
            if case .array(let options)? = schema[key] {
                let passing = options.filter { option in
                    var sub: [String] = []
                    check(value, against: option, path: path, into: &sub)
                    return sub.isEmpty
                }.count
                if passing == 0 || (key == "oneOf" && passing > 1) {
                    out.append("\(path) must match \(key == "oneOf" ? "exactly one" : "at least one") of the \(key) schemas")
                }
            }
        }
        switch value {
        case .object(let object):
            let properties = schema["properties"]?.objectValue ?? [:]
            if case .array(let required)? = schema["required"] {
                for case .string(let name) in required where object[name] == nil { out.append("\(path).\(name) is required") }
            }
            for (name, v) in object {
                if let p = properties[name] {
                    check(v, against: p, path: "\(path).\(name)", into: &out)
                } else if schema["additionalProperties"] == .bool(false) {
                    out.append("\(path).\(name) is not allowed (additionalProperties is false)")
                } else if let extra = schema["additionalProperties"], case .object = extra {
                    check(v, against: extra, path: "\(path).\(name)", into: &out)
                }
            }
        case .array(let items):
            if let min = schema["minItems"]?.intValue, items.count < min { out.append("\(path) needs at least \(min) items") }
            if let max = schema["maxItems"]?.intValue, items.count > max { out.append("\(path) allows at most \(max) items") }
            if let itemSchema = schema["items"] {
                for (i, item) in items.enumerated() { check(item, against: itemSchema, path: "\(path)[\(i)]", into: &out) }
            }
        case .string(let s):
            if let min = schema["minLength"]?.intValue, s.count < min { out.append("\(path) must be at least \(min) characters") }
            if let max = schema["maxLength"]?.intValue, s.count > max { out.append("\(path) must be at most \(max) characters") }
            if let pattern = schema["pattern"]?.stringValue {
                if let regex = try? Regex(pattern) {
                    if (try? regex.firstMatch(in: s)) == nil { out.append("\(path) must match the pattern \(pattern)") }
                } else {
                    out.append("\(path) has a schema pattern that is not a valid regular expression: \(pattern)")
                }
            }
        case .number(let n):
            if case .number(let min)? = schema["minimum"], n < min { out.append("\(path) must be >= \(JSONValue.number(min).jsonString)") }
            if case .number(let max)? = schema["maximum"], n > max { out.append("\(path) must be <= \(JSONValue.number(max).jsonString)") }
            if case .number(let min)? = schema["exclusiveMinimum"], n <= min {
                out.append("\(path) must be > \(JSONValue.number(min).jsonString)")
            }
            if case .number(let max)? = schema["exclusiveMaximum"], n >= max {
                out.append("\(path) must be < \(JSONValue.number(max).jsonString)")
            }
            // Within rounding of a whole quotient (0.3 is a multiple of 0.1).
            if case .number(let step)? = schema["multipleOf"], step > 0, abs(n / step - (n / step).rounded()) > 1e-9 * max(1, abs(n / step))
            {
                out.append("\(path) must be a multiple of \(JSONValue.number(step).jsonString)")
            }
        default:
            break
        }
    }

    private func typeNames(_ type: JSONValue?) -> [String]? {
        switch type {
        case .string(let t)?: return [t]
        case .array(let ts)?: return ts.compactMap(\.stringValue)
        default: return nil
        }
    }

    private func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null), ("number", .number):
            return true
        case ("integer", .number(let n)): return n == n.rounded()
        default: return false
        }
    }

    private func typeName(of value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}
