/// What the mock model does for one call, decided from the prompt's `MockScript` (pure: no clock, no
/// IO). The in-process `mock` provider and `agentq mock-llm` both act it out, so the two behave alike.
public struct MockPlan: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        /// Fail this call as the script says.
        case fail(MockScript.Fault, retryAfterSeconds: Int)
        /// Fail in a way retrying cannot fix.
        case failPermanently
        /// Call tools (several in one step when the script names several).
        case toolCalls([AssembledToolCall])
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
    /// The script's `hostile=MODE`: `mock-llm` acts out the streaming ones.
    public var hostile: MockScript.Hostile?

    public var text: String { chunks.joined() }
    public var finishReason: String {
        if case .toolCalls = action { return "tool_calls" }
        return "stop"
    }

    /// The plan for `request`, the `callNumber`-th call (from 1) the mock has seen for this prompt.
    public init(for request: ChatRequest, callNumber: Int) throws {
        let lastUser = Self.promptIndex(in: request.messages)
        let script = try MockScript(parsing: lastUser.map { request.messages[$0].text } ?? "")
        hostile = script.hostile
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
        } else if !script.toolNames.isEmpty, let calls = Self.nextCalls(script, request: request, after: lastUser) {
            action = .toolCalls(calls)
            answer = ""
        } else if !script.toolNames.isEmpty {
            action = .answer
            // `words=N` or `reply=` say what to answer once the results are in; without them, the results.
            let scripted = script.reply != nil || script.words != nil
            let results = scripted ? nil : Self.lastResults(in: request.messages, after: lastUser)
            answer = results ?? script.replyText(contextCount: request.messages.count)
        } else if let schema = request.responseSchema {
            action = .answer
            answer =
                callNumber <= script.badJSONAttempts
                ? "not json: the mock was told to answer badly"
                : JSONSampler.sample(schema).jsonString
        } else {
            action = callNumber <= script.failAttempts ? .fail(.cut, retryAfterSeconds: 0) : .answer
            answer = script.replyText(contextCount: request.messages.count)
        }
        chunks = request.responseSchema != nil ? Self.slices(answer, size: 8) : Self.wordChunks(answer)
        let completion: Int
        if case .toolCalls(let calls) = action {
            completion = calls.reduce(0) { $0 + 1 + Self.words($1.arguments) }
        } else {
            completion = Self.words(answer)
        }
        usage = TokenUsage(promptTokens: promptWords, completionTokens: completion)
    }

    /// The calls of the next tool step, or nil when the script's steps are done or the request offers
    /// none of the tools. Ids are unique per step of the prompt (`call_mock_<step>_<index>`).
    static func nextCalls(_ script: MockScript, request: ChatRequest, after prompt: Int?) -> [AssembledToolCall]? {
        let offered = Set(request.tools.map(\.name))
        let after = prompt.map { Array(request.messages[($0 + 1)...]) } ?? request.messages
        let stepsDone = after.filter { $0.role == .assistant && !$0.toolCalls.isEmpty }.count
        guard stepsDone < script.toolSteps else { return nil }
        let perTool: [String]
        if case .array(let items)? = try? JSONValue.parse(script.toolArguments) {
            perTool = items.map(\.jsonString)
        } else {
            perTool = [script.toolArguments]
        }
        var calls = script.toolNames.enumerated().filter { offered.contains($0.element) }.map { i, name in
            AssembledToolCall(
                id: "call_mock_\(stepsDone + 1)_\(i + 1)", name: name,
                arguments: perTool.indices.contains(i) ? perTool[i] : perTool.last ?? "{}")
        }
        if let first = calls.first {
            switch script.hostile {
            case .manyCalls?:
                calls = (1...10_000).map { AssembledToolCall(id: "call_mock_\(stepsDone + 1)_\($0)", name: first.name, arguments: "{}") }
            case .deepArgs?:
                calls = [
                    AssembledToolCall(
                        id: first.id, name: first.name,
                        arguments: String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000))
                ]
            default:
                break
            }
        }
        return calls.isEmpty ? nil : calls
    }

    /// `NAME returned: RESULT` for each result of the last tool step, joined by "; ".
    static func lastResults(in messages: [ChatMessage], after prompt: Int?) -> String? {
        let start = prompt.map { $0 + 1 } ?? 0
        guard let step = messages[start...].lastIndex(where: { $0.role == .assistant && !$0.toolCalls.isEmpty }) else { return nil }
        let names = Dictionary(messages[step].toolCalls.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let results = messages[(step + 1)...].filter { $0.role == .tool }
            .map { "\(names[$0.toolCallID ?? ""] ?? "tool") returned: \($0.text)" }
        return results.isEmpty ? nil : results.joined(separator: "; ")
    }

    /// The prompt: the last user message that is not a structured-output repair request (a repair
    /// continues the prompt's call count, so `bad_json=N` counts repairs too).
    public static func promptIndex(in messages: [ChatMessage]) -> Int? {
        messages.lastIndex { $0.role == .user && !$0.text.hasPrefix(Generator.repairPrefix) }
    }

    /// Repair requests after the prompt (the in-process mock adds them to the attempt).
    public static func repairRounds(in messages: [ChatMessage]) -> Int {
        guard let p = promptIndex(in: messages) else { return 0 }
        return messages[(p + 1)...].filter { $0.role == .user && $0.text.hasPrefix(Generator.repairPrefix) }.count
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
            let count = Limits.clamp(schema["minItems"]?.intValue ?? 1, 1...Limits.mockSampleSize)
            return .array(Array(repeating: sample(schema["items"] ?? .object([:])), count: count))
        case "integer": return .number(max(schema["minimum"]?.intValue.map(Double.init) ?? 1, 1))
        case "number": return .number(1.5)
        case "boolean": return .bool(true)
        case "null": return .null
        default:
            let length = Limits.clamp(schema["minLength"]?.intValue ?? 0, 0...Limits.mockSampleSize)
            return .string(length > 6 ? String(repeating: "x", count: length) : "sample")
        }
    }
}
