import Foundation

/// A job as a worker claimed it.
public struct ClaimedJob: Sendable, Hashable {
    public var id: Int64
    public var kind: JobKind
    public var queue: String
    public var attempt: Int
    public var maxAttempts: Int
    public var threadID: UUID?
    public var userID: String?
    public var agentName: String?
    public var promptMessageID: UUID?
    public var options: JSONValue
}

/// A row of `agentq.agents`.
public struct AgentRecord: Sendable, Hashable {
    public var name: String
    public var model: String
    public var instructions: String?
    public var tools: [String]
    public var embeddingModel: String?
    public var options: JSONValue
}

/// A row of `agentq.providers`.
public struct ProviderRecord: Sendable, Hashable {
    public var name: String
    public var kind: ProviderKind
    public var baseURL: String?
    public var apiKeyEnv: String?
    public var options: JSONValue

    public init(name: String, kind: ProviderKind, baseURL: String?, apiKeyEnv: String?, options: JSONValue) {
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.apiKeyEnv = apiKeyEnv
        self.options = options
    }
}

/// A saved message as a generation reads it. `contentJSON` is the `content` parts as JSON text,
/// kept unparsed: only text matters until tool and file parts do.
public struct ContextMessage: Sendable, Hashable {
    public var id: UUID
    public var role: MessageRole
    public var contentJSON: String
    public var text: String?
    public var ord: Int
    public var step: Int
    public var tool: Bool

    public init(id: UUID, role: MessageRole, contentJSON: String, text: String?, ord: Int, step: Int, tool: Bool) {
        self.id = id
        self.role = role
        self.contentJSON = contentJSON
        self.text = text
        self.ord = ord
        self.step = step
        self.tool = tool
    }
}

/// What a generation reads for one job: the thread's recent successful messages up to the prompt.
public struct JobContextRecord: Sendable {
    public var jobID: Int64
    public var promptOrd: Int?
    public var promptStep: Int?
    public var threadAgentOptions: JSONValue?
    public var messages: [ContextMessage]
}

/// A message a worker saves when it finishes a job.
public struct NewMessage: Sendable, Hashable {
    public var id: UUID
    public var role: MessageRole
    public var content: JSONValue
    public var text: String?
    public var status: String
    public var error: String?
    public var model: String?
    public var provider: String?
    public var usage: TokenUsage?
    public var finishReason: String?
    public var agentName: String?
    public var tool: Bool

    public init(
        id: UUID = UUID(), role: MessageRole = .assistant, text: String, status: String = "success", error: String? = nil,
        model: String?, provider: String?, usage: TokenUsage?, finishReason: String?, agentName: String?
    ) {
        self.id = id
        self.role = role
        self.content = .array([.object(["type": .string("text"), "text": .string(text)])])
        self.text = text
        self.status = status
        self.error = error
        self.model = model
        self.provider = provider
        self.usage = usage
        self.finishReason = finishReason
        self.agentName = agentName
        self.tool = false
    }
}

/// Token counts of one LLM call.
public struct TokenUsage: Codable, Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = promptTokens + completionTokens
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }
}

/// One `agentq.usage` row to record.
public struct UsageRecord: Sendable, Hashable {
    public var provider: String
    public var model: String
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    public var messageID: UUID?
    public var kind: String
    public var raw: JSONValue?

    public init(provider: String, model: String, usage: TokenUsage, messageID: UUID?, kind: String = "chat", raw: JSONValue? = nil) {
        self.provider = provider
        self.model = model
        self.promptTokens = usage.promptTokens
        self.completionTokens = usage.completionTokens
        self.totalTokens = usage.totalTokens
        self.messageID = messageID
        self.kind = kind
        self.raw = raw
    }
}

/// What `job_result` reports for a finished job, as a worker stores it in `jobs.result`.
public struct JobResultPayload: Sendable, Hashable {
    public var text: String?
    public var object: JSONValue?
    public var messageIDs: [UUID]
    public var usage: TokenUsage?
    /// A parked job's calls waiting for `submit_tool_outputs` / `approve_tool_call`.
    public var pendingToolCalls: JSONValue?

    public init(text: String?, object: JSONValue? = nil, messageIDs: [UUID], usage: TokenUsage?, pendingToolCalls: JSONValue? = nil) {
        self.pendingToolCalls = pendingToolCalls
        self.text = text
        self.object = object
        self.messageIDs = messageIDs
        self.usage = usage
    }
}
