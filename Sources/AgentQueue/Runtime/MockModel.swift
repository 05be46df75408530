/// The built-in `mock` provider: a deterministic scripted model with no network (see `MockScript`).
/// Usage is deterministic too: prompt tokens are the words of the instructions and context, completion
/// tokens the words of the reply.
public struct MockModel: ChatModel {
    public init() {}

    public func complete(_ request: ChatRequest) async throws -> ChatReply {
        let prompt = request.messages.last(where: { $0.role == "user" })?.text ?? ""
        let script = try MockScript(parsing: prompt)
        if script.delayMilliseconds > 0 {
            try await Task.sleep(for: .milliseconds(script.delayMilliseconds))
        }
        try Task.checkCancellation()
        if script.failPermanently {
            throw GenerationError(.permanent, "mock: permanent failure requested by the prompt")
        }
        if request.attempt <= script.failAttempts {
            throw GenerationError(.transient, "mock: transient failure on attempt \(request.attempt) of \(script.failAttempts)")
        }
        let text = script.replyText(contextCount: request.messages.count)
        let promptWords = ([request.instructions ?? ""] + request.messages.map(\.text)).reduce(0) { $0 + Self.words($1) }
        return ChatReply(text: text, finishReason: "stop",
                         usage: TokenUsage(promptTokens: promptWords, completionTokens: Self.words(text)))
    }

    /// Words separated by ASCII whitespace, counted over UTF-8 bytes (Character-based splitting
    /// cost 15% of a worker's CPU at thousands of jobs per second).
    static func words(_ text: String) -> Int {
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
