import Foundation

/// A chat message sent to a model. Tool calls and results ride along so a conversation with tools
/// can be replayed.
public struct ChatMessage: Sendable, Hashable {
    public var role: MessageRole
    public var text: String
    /// Calls an assistant message made.
    public var toolCalls: [AssembledToolCall]
    /// For a `tool` message: the call it answers.
    public var toolCallID: String?

    public init(role: MessageRole, text: String, toolCalls: [AssembledToolCall] = [], toolCallID: String? = nil) {
        self.role = role
        self.text = text
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
    }
}

/// A tool the model may call, as the model sees it.
public struct ToolSpec: Sendable, Hashable {
    public var name: String
    public var description: String?
    /// JSON Schema of the arguments.
    public var parameters: JSONValue

    public init(name: String, description: String?, parameters: JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// One call to a model: instructions (the system prompt), then the context messages in order.
public struct ChatRequest: Sendable {
    public var model: String
    public var instructions: String?
    public var messages: [ChatMessage]
    /// The job's attempt (1 for the first run), so the in-process mock can fail on chosen attempts.
    public var attempt: Int
    public var temperature: Double?
    public var maxTokens: Int?
    /// A JSON Schema the answer must follow (structured output; `response_format` over the wire).
    public var responseSchema: JSONValue?
    public var tools: [ToolSpec]
    /// Keep the raw request and response (the agent's `log_raw`) in the reply or error.
    public var keepExchange: Bool

    public init(
        model: String, instructions: String?, messages: [ChatMessage], attempt: Int, temperature: Double? = nil,
        maxTokens: Int? = nil, responseSchema: JSONValue? = nil, tools: [ToolSpec] = [], keepExchange: Bool = false
    ) {
        self.keepExchange = keepExchange
        self.model = model
        self.instructions = instructions
        self.messages = messages
        self.attempt = attempt
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.responseSchema = responseSchema
        self.tools = tools
    }
}

/// What a model answered.
public struct ChatReply: Sendable {
    public var text: String
    public var finishReason: String
    /// The provider's token counts; nil when it sent none (the runner then estimates).
    public var usage: TokenUsage?
    public var toolCalls: [AssembledToolCall]
    /// The raw exchange, when the request asked to keep it (`log_raw`).
    public var exchange: LLMExchange?

    public init(
        text: String, finishReason: String, usage: TokenUsage?, toolCalls: [AssembledToolCall] = [],
        exchange: LLMExchange? = nil
    ) {
        self.text = text
        self.finishReason = finishReason
        self.usage = usage
        self.toolCalls = toolCalls
        self.exchange = exchange
    }
}

/// The raw request and response of one HTTP call to a model, for `agentq.llm_calls`. Never holds
/// credentials: headers are not kept.
public struct LLMExchange: Sendable, Hashable {
    public var url: String
    public var request: JSONValue?
    public var response: JSONValue?
    public var httpStatus: Int?
    public var error: String?
    public var duration: Duration

    public init(url: String, request: JSONValue?, response: JSONValue?, httpStatus: Int?, error: String?, duration: Duration) {
        self.url = url
        self.request = request
        self.response = response
        self.httpStatus = httpStatus
        self.error = error
        self.duration = duration
    }
}

/// A chat model behind a provider (`mock`, `openai`).
public protocol ChatModel: Sendable {
    /// Runs one call, handing text to `onText` as it arrives (synchronously, in order). Throws
    /// `GenerationError` for model faults; honours task cancellation by aborting the call.
    func complete(_ request: ChatRequest, onText: @Sendable (String) -> Void) async throws -> ChatReply
}

extension ChatModel {
    /// Runs one call without watching the text arrive.
    public func complete(_ request: ChatRequest) async throws -> ChatReply {
        try await complete(request, onText: { _ in })
    }
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
    /// Whether the call may be repeated at once (nothing streamed yet): rate limits, 5xx, refused
    /// connections. A stream cut midway is retried as a new attempt of the job instead.
    public var retryableCall: Bool
    /// The raw exchange of the failed call, when it was asked for.
    public var exchange: LLMExchange?

    public init(
        _ kind: Kind, _ message: String, retryAfter: Duration? = nil, retryableCall: Bool = false,
        exchange: LLMExchange? = nil
    ) {
        self.kind = kind
        self.message = message
        self.retryAfter = retryAfter
        self.retryableCall = retryableCall
        self.exchange = exchange
    }

    public var description: String { message }
}
