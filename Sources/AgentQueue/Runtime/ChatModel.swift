/// A chat message sent to a model.
public struct ChatMessage: Sendable, Hashable {
    public var role: String
    public var text: String

    public init(role: String, text: String) {
        self.role = role
        self.text = text
    }
}

/// One call to a model: instructions (the system prompt), then the context messages in order.
public struct ChatRequest: Sendable {
    public var model: String
    public var instructions: String?
    public var messages: [ChatMessage]
    /// The job's attempt (1 for the first run), so scripted faults can target attempts.
    public var attempt: Int

    public init(model: String, instructions: String?, messages: [ChatMessage], attempt: Int) {
        self.model = model
        self.instructions = instructions
        self.messages = messages
        self.attempt = attempt
    }
}

/// What a model answered.
public struct ChatReply: Sendable {
    public var text: String
    public var finishReason: String
    public var usage: TokenUsage
}

/// A chat model behind a provider (`mock`, later `openai`).
public protocol ChatModel: Sendable {
    /// Runs one call. Throws `GenerationError` for model faults; honours task cancellation.
    func complete(_ request: ChatRequest) async throws -> ChatReply
}

/// A failed generation, classified for the retry decision.
public struct GenerationError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// Retrying may help (rate limits, 5xx, cut streams, timeouts).
        case transient
        /// Retrying cannot help (bad request, unknown agent or provider): fail at once.
        case permanent
    }

    public var kind: Kind
    public var message: String
    /// A delay the provider asked for (Retry-After); it wins over the computed backoff.
    public var retryAfter: Duration?

    public init(_ kind: Kind, _ message: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { message }
}
