/// Directives that script the mock model, written in the prompt as `[mock key=value key="quoted value"]`.
/// The in-process `mock` provider and `agentq mock-llm` (over HTTP) read the same directives:
///
/// - `reply="text"`: answer exactly this text
/// - `words=N`: answer N deterministic words (N at most `Limits.mockWords`)
/// - `tps=N`: stream N words a second (default: all at once)
/// - `delay_ms=N`: wait N milliseconds before the first word (cancellable)
/// - `fail=N`: fail the first N calls (in process: attempts 1...N), then answer; `fail=permanent`
///   fails with an error that retrying cannot fix
/// - `fault=429|500|cut|hang`: how those calls fail (default 500): a 429 with `Retry-After:
///   retry_after` seconds (default 1), a 500, a stream cut after half the reply, or a hang that never
///   answers (the caller's timeout ends it)
/// - `tool=NAME args='{"json": 1}'`: call the tool NAME with these arguments; once the tool's result
///   is in the conversation, answer `NAME returned: <result>`, or with `words=N` / `reply="text"`
///   that answer instead (`[mock tool=lookup args='{"sku": "a"}' words=20]`: one tool call, then 20
///   words). `tool=a,b` calls several tools in one step (`args` may then be a JSON array, one object
///   per tool); `steps=K` calls them in K steps in a row before answering. Tools the request does not
///   offer are not called.
/// - `bad_json=N`: with a response schema, the first N answers do not match it (to test the repair)
/// - `hostile=MODE`: misbehave as a hostile model would, to test the caps (README: Limits):
///   `many_calls` asks for 10,000 tool calls in one step and `deep_args` for arguments nested 10,000
///   deep (both need `tool=NAME`); over HTTP only (`agentq mock-llm`): `endless` streams words
///   forever, `long_line` sends a 100 MB SSE line, `big_reply` streams 100 MB of text, `open_args`
///   streams one tool call's arguments forever (needs `tool=NAME`)
///
/// With a response schema the mock answers JSON that matches it. Without directives it answers
/// `mock reply to "<prompt>" (<n> messages in context)`.
public struct MockScript: Sendable, Hashable {
    /// How scripted failures fail.
    public enum Fault: String, Sendable, Hashable {
        case rateLimited = "429"
        case serverError = "500"
        case cut, hang
    }

    /// How a `hostile=MODE` model misbehaves.
    public enum Hostile: String, Sendable, Hashable, CaseIterable {
        case endless
        case longLine = "long_line"
        case bigReply = "big_reply"
        case openArgs = "open_args"
        case manyCalls = "many_calls"
        case deepArgs = "deep_args"
    }

    public var reply: String?
    public var words: Int?
    public var wordsPerSecond: Int = 0
    public var delayMilliseconds: Int = 0
    public var failAttempts: Int = 0
    public var failPermanently = false
    public var fault: Fault = .serverError
    public var retryAfterSeconds: Int = 1
    public var toolNames: [String] = []
    /// The arguments: one JSON object for every tool, or a JSON array with one per tool.
    public var toolArguments: String = "{}"
    public var toolSteps: Int = 1
    public var badJSONAttempts: Int = 0
    public var hostile: Hostile?
    /// The prompt with the directives taken out.
    public var prompt: String

    static let known = "reply, words, tps, delay_ms, fail, fault, retry_after, tool, args, steps, bad_json, hostile"

    public init(parsing text: String) throws {
        var remaining = ""
        var rest = Substring(text)
        var pairs: [(String, String)] = []
        while let open = rest.range(of: "[mock") {
            remaining += rest[..<open.lowerBound]
            guard let close = Self.closingBracket(in: rest[open.upperBound...]) else {
                throw GenerationError(.permanent, "mock: unterminated [mock ...] directive")
            }
            pairs += try Self.parsePairs(rest[open.upperBound..<close])
            rest = rest[rest.index(after: close)...]
        }
        remaining += rest
        self.prompt = remaining.trimmingWhitespace()
        for (key, value) in pairs {
            switch key {
            case "reply": reply = value
            case "words":
                let n = try Self.int(key, value)
                guard n <= Limits.mockWords else {
                    throw GenerationError(.permanent, "mock: words must be at most \(Limits.mockWords), got \(n)")
                }
                words = n
            case "tps": wordsPerSecond = try Self.int(key, value)
            case "delay_ms": delayMilliseconds = try Self.int(key, value)
            case "fail":
                if value == "permanent" { failPermanently = true } else { failAttempts = try Self.int(key, value) }
            case "fault":
                guard let f = Fault(rawValue: value) else {
                    throw GenerationError(.permanent, "mock: fault must be 429, 500, cut or hang, got \"\(value)\"")
                }
                fault = f
            case "retry_after": retryAfterSeconds = try Self.int(key, value)
            case "tool": toolNames = value.split(separator: ",").map { String($0).trimmingWhitespace() }
            case "steps": toolSteps = max(1, try Self.int(key, value))
            case "args":
                guard (try? JSONValue.parse(value)) != nil else {
                    throw GenerationError(.permanent, "mock: args must be JSON, got \(value)")
                }
                toolArguments = value
            case "bad_json": badJSONAttempts = try Self.int(key, value)
            case "hostile":
                guard let h = Hostile(rawValue: value) else {
                    let modes = Hostile.allCases.map(\.rawValue).joined(separator: ", ")
                    throw GenerationError(.permanent, "mock: hostile must be one of \(modes), got \"\(value)\"")
                }
                hostile = h
            default:
                throw GenerationError(.permanent, "mock: unknown directive \"\(key)\" (known: \(Self.known))")
            }
        }
    }

    /// The reply for a prompt with `contextCount` messages of context.
    public func replyText(contextCount: Int) -> String {
        if let reply { return reply }
        if let words {
            let vocabulary = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
            return (0..<max(words, 0)).map { vocabulary[$0 % vocabulary.count] }.joined(separator: " ")
        }
        return "mock reply to \"\(prompt)\" (\(contextCount) messages in context)"
    }

    private static func closingBracket(in s: Substring) -> String.Index? {
        var quote: Character?
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if let q = quote {
                if c == "\\" { i = s.index(after: i); if i == s.endIndex { break } } else if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "]" {
                return i
            }
            i = s.index(after: i)
        }
        return nil
    }

    private static func parsePairs(_ body: Substring) throws -> [(String, String)] {
        var pairs: [(String, String)] = []
        var i = body.startIndex
        func skipSpaces() { while i < body.endIndex && body[i].isWhitespace { i = body.index(after: i) } }
        while true {
            skipSpaces()
            guard i < body.endIndex else { break }
            let keyStart = i
            while i < body.endIndex && body[i] != "=" && !body[i].isWhitespace { i = body.index(after: i) }
            let key = String(body[keyStart..<i])
            guard i < body.endIndex && body[i] == "=" else {
                throw GenerationError(.permanent, "mock: directive \"\(key)\" needs a value (key=value)")
            }
            i = body.index(after: i)
            var value = ""
            if i < body.endIndex && (body[i] == "\"" || body[i] == "'") {
                let quote = body[i]
                i = body.index(after: i)
                while i < body.endIndex && body[i] != quote {
                    if body[i] == "\\", body.index(after: i) < body.endIndex { i = body.index(after: i) }
                    value.append(body[i]); i = body.index(after: i)
                }
                guard i < body.endIndex else { throw GenerationError(.permanent, "mock: unterminated quote in \"\(key)\"") }
                i = body.index(after: i)
            } else {
                while i < body.endIndex && !body[i].isWhitespace { value.append(body[i]); i = body.index(after: i) }
            }
            pairs.append((key, value))
        }
        return pairs
    }

    private static func int(_ key: String, _ value: String) throws -> Int {
        guard let n = Int(value), n >= 0 else {
            throw GenerationError(.permanent, "mock: \(key) must be a non-negative integer, got \"\(value)\"")
        }
        return n
    }
}
