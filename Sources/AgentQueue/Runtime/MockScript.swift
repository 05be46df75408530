/// Directives that script the `mock` model, written in the prompt as `[mock key=value key="quoted value"]`:
///
/// - `reply="text"`: answer exactly this text
/// - `words=N`: answer N deterministic words
/// - `delay_ms=N`: take N milliseconds before answering (cancellable)
/// - `fail=N`: fail with a transient error on attempts 1...N, then answer
/// - `fail=permanent`: fail with an error that retrying cannot fix
///
/// Without directives the mock answers `mock reply to "<prompt>" (<n> messages in context)`.
public struct MockScript: Sendable, Hashable {
    public var reply: String?
    public var words: Int?
    public var delayMilliseconds: Int = 0
    public var failAttempts: Int = 0
    public var failPermanently = false
    /// The prompt with the directives taken out.
    public var prompt: String

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
            case "words": words = try Self.int(key, value)
            case "delay_ms": delayMilliseconds = try Self.int(key, value)
            case "fail":
                if value == "permanent" { failPermanently = true } else { failAttempts = try Self.int(key, value) }
            default:
                throw GenerationError(.permanent, "mock: unknown directive \"\(key)\" (known: reply, words, delay_ms, fail)")
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
        var quoted = false
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "\"" { quoted.toggle() } else if s[i] == "]" && !quoted { return i }
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
            if i < body.endIndex && body[i] == "\"" {
                i = body.index(after: i)
                while i < body.endIndex && body[i] != "\"" {
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
