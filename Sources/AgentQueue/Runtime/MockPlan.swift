/// What the mock model does for one call, decided from the prompt's `MockScript` (pure: no clock, no
/// IO). The in-process `mock` provider and `agentq mock-llm` both act it out, so the two behave alike.
public struct MockPlan: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        /// Fail this call as the script says.
        case fail(MockScript.Fault, retryAfterSeconds: Int)
        /// Fail in a way retrying cannot fix.
        case failPermanently
        /// Call a tool.
        case toolCall(AssembledToolCall)
        /// Answer with text, streamed as `chunks`.
        case answer
    }

    public var action: Action
    /// The answer's pieces in order (words with their following space; JSON in short slices).
    public var chunks: [String]
    public var initialDelay: Duration
    /// The pause between chunks (zero: all at once).
    public var chunkInterval: Duration
    public var usage: TokenUsage

    public var text: String { chunks.joined() }
    public var finishReason: String {
        if case .toolCall = action { return "tool_calls" }
        return "stop"
    }

    /// The plan for `request`, the `callNumber`-th call (from 1) the mock has seen for this prompt.
    public init(for request: ChatRequest, callNumber: Int) throws {
        let lastUser = Self.promptIndex(in: request.messages)
        let script = try MockScript(parsing: lastUser.map { request.messages[$0].text } ?? "")
        initialDelay = .milliseconds(script.delayMilliseconds)
        chunkInterval = script.wordsPerSecond > 0 ? .milliseconds(1000 / script.wordsPerSecond) : .zero
        let promptWords = ([request.instructions ?? ""] + request.messages.map(\.text)).reduce(0) { $0 + Self.words($1) }
        let answer: String
        if script.failPermanently {
            action = .failPermanently
            answer = ""
        } else if callNumber <= script.failAttempts && script.fault != .cut {
            action = .fail(script.fault, retryAfterSeconds: script.retryAfterSeconds)
            answer = ""
        } else if let tool = script.toolName,
                  let result = lastUser.flatMap({ i in request.messages[(i + 1)...].last(where: { $0.role == "tool" }) }) {
            action = .answer
            answer = "\(tool) returned: \(result.text)"
        } else if let tool = script.toolName {
            action = .toolCall(AssembledToolCall(id: "call_mock_\(callNumber)", name: tool, arguments: script.toolArguments))
            answer = ""
        } else if let schema = request.responseSchema {
            action = .answer
            answer = callNumber <= script.badJSONAttempts ? "not json: the mock was told to answer badly"
                : JSONSampler.sample(schema).jsonString
        } else {
            action = callNumber <= script.failAttempts ? .fail(.cut, retryAfterSeconds: 0) : .answer
            answer = script.replyText(contextCount: request.messages.count)
        }
        chunks = request.responseSchema != nil ? Self.slices(answer, size: 8) : Self.wordChunks(answer)
        let completion: Int
        if case .toolCall(let call) = action { completion = 1 + Self.words(call.arguments) } else { completion = Self.words(answer) }
        usage = TokenUsage(promptTokens: promptWords, completionTokens: completion)
    }

    /// The prompt: the last user message that is not a structured-output repair request (a repair
    /// continues the prompt's call count, so `bad_json=N` counts repairs too).
    public static func promptIndex(in messages: [ChatMessage]) -> Int? {
        messages.lastIndex { $0.role == "user" && !$0.text.hasPrefix(JobRunner.repairPrefix) }
    }

    /// Repair requests after the prompt (the in-process mock adds them to the attempt).
    public static func repairRounds(in messages: [ChatMessage]) -> Int {
        guard let p = promptIndex(in: messages) else { return 0 }
        return messages[(p + 1)...].filter { $0.role == "user" && $0.text.hasPrefix(JobRunner.repairPrefix) }.count
    }

    /// Words with the whitespace after each, so the chunks join back to the text exactly.
    static func wordChunks(_ text: String) -> [String] {
        var chunks: [String] = []
        var current = ""
        var sawSpace = false
        for ch in text {
            if ch.isWhitespace { sawSpace = true } else if sawSpace { chunks.append(current); current = ""; sawSpace = false }
            current.append(ch)
        }
        if !current.isEmpty { chunks.append(current) }
        return chunks
    }

    static func slices(_ text: String, size: Int) -> [String] {
        var out: [String] = []
        var i = text.startIndex
        while i < text.endIndex {
            let j = text.index(i, offsetBy: size, limitedBy: text.endIndex) ?? text.endIndex
            out.append(String(text[i..<j]))
            i = j
        }
        return out
    }

    /// Words separated by ASCII whitespace, counted over UTF-8 bytes (Character-based splitting
    /// cost 15% of a worker's CPU at thousands of jobs per second).
    public static func words(_ text: String) -> Int {
        var count = 0
        var inWord = false
        for b in text.utf8 {
            let space = b == 0x20 || b == 0x0A || b == 0x09 || b == 0x0D
            if !space && !inWord { count += 1 }
            inWord = !space
        }
        return count
    }
}

/// Makes a deterministic value that matches a JSON Schema (the mock's structured output).
enum JSONSampler {
    static func sample(_ schema: JSONValue) -> JSONValue {
        if let c = schema["const"] { return c }
        if case .array(let options)? = schema["enum"], let first = options.first { return first }
        for key in ["anyOf", "oneOf"] {
            if case .array(let options)? = schema[key], let first = options.first { return sample(first) }
        }
        if case .array(let all)? = schema["allOf"] {
            return all.reduce(JSONValue.object([:])) { $0.merging(sample($1)) }
        }
        var type = schema["type"]?.stringValue
        if case .array(let types)? = schema["type"] { type = types.first(where: { $0 != .string("null") })?.stringValue }
        switch type ?? (schema["properties"] != nil ? "object" : "string") {
        case "object":
            var object: [String: JSONValue] = [:]
            for (name, property) in schema["properties"]?.objectValue ?? [:] { object[name] = sample(property) }
            return .object(object)
        case "array":
            let count = max(schema["minItems"]?.intValue ?? 1, 1)
            return .array(Array(repeating: sample(schema["items"] ?? .object([:])), count: count))
        case "integer": return .number(Double(max(schema["minimum"]?.intValue ?? 1, 1)))
        case "number": return .number(1.5)
        case "boolean": return .bool(true)
        case "null": return .null
        default:
            let length = schema["minLength"]?.intValue ?? 0
            return .string(length > 6 ? String(repeating: "x", count: length) : "sample")
        }
    }
}
