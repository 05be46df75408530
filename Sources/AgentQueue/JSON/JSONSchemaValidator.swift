import Foundation

/// Checks a JSON value against a JSON Schema: the keywords structured output uses (`type`,
/// `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`, `oneOf`,
/// `allOf`, string lengths and `pattern`, array lengths, numeric bounds (inclusive and exclusive)
/// and `multipleOf`). Hand-written: no JSON Schema package is available here; unknown keywords are
/// ignored, as the specification asks. Pure.
///
/// Bounded (README: Limits): one check visits at most `Limits.schemaSteps` (schema, value) pairs and
/// spends at most `Limits.patternTime` matching patterns; a `pattern` longer than
/// `Limits.schemaPatternLength` or a string longer than `Limits.patternInputLength` fails the check.
/// Patterns run on ICU (`NSRegularExpression`), whose progress callback lets a catastrophic
/// backtrack (`^(x+x+)+y$`) be stopped at the budget; it is then reported as a problem.
public struct JSONSchemaValidator: Sendable {
    public let schema: JSONValue

    public init(schema: JSONValue) {
        self.schema = schema
    }

    /// The problems found, each naming its path (`$.items[2].name`); empty when the value matches.
    public func problems(in value: JSONValue) -> [String] {
        var out: [String] = []
        var budget = Budget(steps: Limits.schemaSteps, deadline: .now + Limits.patternTime)
        check(value, against: schema, path: "$", into: &out, &budget)
        if budget.steps < 0 { out.append("$ could not be checked: the schema needs more than \(Limits.schemaSteps) steps") }
        return out
    }

    /// What one check may still spend.
    private struct Budget {
        var steps: Int
        var deadline: ContinuousClock.Instant
    }

    private func check(_ value: JSONValue, against schema: JSONValue, path: String, into out: inout [String], _ budget: inout Budget) {
        guard case .object = schema else { return }  // `true` / `{}`: anything goes
        budget.steps -= 1
        guard budget.steps >= 0 else { return }
        if let c = schema["const"], c != value { out.append("\(path) must be \(c.jsonString)") }
        if case .array(let options)? = schema["enum"], !options.contains(value) {
            out.append("\(path) must be one of \(JSONValue.array(options).jsonString)")
        }
        if let types = typeNames(schema["type"]), !types.contains(where: { matches(value, type: $0) }) {
            out.append("\(path) must be \(types.joined(separator: " or ")), got \(typeName(of: value))")
            return
        }
        if case .array(let all)? = schema["allOf"] { for s in all { check(value, against: s, path: path, into: &out, &budget) } }
        for key in ["anyOf", "oneOf"] {
            if case .array(let options)? = schema[key] {
                let passing = options.filter { option in
                    var sub: [String] = []
                    check(value, against: option, path: path, into: &sub, &budget)
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
                    check(v, against: p, path: "\(path).\(name)", into: &out, &budget)
                } else if schema["additionalProperties"] == .bool(false) {
                    out.append("\(path).\(name) is not allowed (additionalProperties is false)")
                } else if let extra = schema["additionalProperties"], case .object = extra {
                    check(v, against: extra, path: "\(path).\(name)", into: &out, &budget)
                }
            }
        case .array(let items):
            if let min = schema["minItems"]?.intValue, items.count < min { out.append("\(path) needs at least \(min) items") }
            if let max = schema["maxItems"]?.intValue, items.count > max { out.append("\(path) allows at most \(max) items") }
            if let itemSchema = schema["items"] {
                for (i, item) in items.enumerated() { check(item, against: itemSchema, path: "\(path)[\(i)]", into: &out, &budget) }
            }
        case .string(let s):
            if let min = schema["minLength"]?.intValue, s.count < min { out.append("\(path) must be at least \(min) characters") }
            if let max = schema["maxLength"]?.intValue, s.count > max { out.append("\(path) must be at most \(max) characters") }
            if let pattern = schema["pattern"]?.stringValue {
                if let problem = Self.match(s, pattern: pattern, until: budget.deadline) { out.append("\(path) \(problem)") }
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

    /// Nil when `string` matches `pattern` within the time left; else why not.
    static func match(_ string: String, pattern: String, until deadline: ContinuousClock.Instant) -> String? {
        let shown = pattern.count > 100 ? String(pattern.prefix(100)) + "..." : pattern
        guard pattern.count <= Limits.schemaPatternLength else {
            return "has a schema pattern over \(Limits.schemaPatternLength) characters: \(shown)"
        }
        guard string.count <= Limits.patternInputLength else {
            return "is over \(Limits.patternInputLength) characters, too long to check against the pattern \(shown)"
        }
        guard let regex = try? NSRegularExpression(pattern: pattern) else {
            return "has a schema pattern that is not a valid regular expression: \(shown)"
        }
        var found = false
        var timedOut = false
        regex.enumerateMatches(in: string, options: [.reportProgress], range: NSRange(string.startIndex..., in: string)) { match, _, stop in
            if match != nil {
                found = true
                stop.pointee = true
            } else if ContinuousClock.now > deadline {
                timedOut = true
                stop.pointee = true
            }
        }
        if found { return nil }
        if timedOut { return "could not be matched against the pattern \(shown) within \(Limits.patternTime)" }
        return "must match the pattern \(shown)"
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
