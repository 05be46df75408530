/// The settings of one generation, worked out once when its job is prepared: the job's options over
/// the thread's `agent_options` over the agent's options (README: SQL API, options).
public struct GenerationSettings: Sendable, Hashable {
    /// What a generation saves (`storage.save_messages`).
    public enum SaveMode: String, Sendable, Hashable {
        /// The prompt and the final answer (the default).
        case promptAndOutput
        /// Every step's messages.
        case all
        /// Nothing saved and nothing streamed: the answer is only in the job's result.
        case none
    }

    public var provider: String
    public var model: String
    public var instructions: String?
    public var recentMessages: Int
    public var saveMessages: SaveMode
    /// The job's time budget (`timeout_ms`): past it the worker stops the job and retries it.
    public var timeout: Duration
    /// How many times one LLM call is repeated after a transient fault before the job retries.
    public var maxRetries: Int
    public var temperature: Double?
    public var maxTokens: Int?
    /// Keep raw requests and responses in `agentq.llm_calls`.
    public var logRaw: Bool
    /// The JSON Schema of `generate_object`, when the answer must be an object.
    public var schema: JSONValue?
    /// `stream.enabled` (default true): false saves the reply at the end, with no pending message,
    /// stream or deltas (fewer writes and events for replies nobody watches live).
    public var streamEnabled: Bool
    /// The tool set: the job's `tools`, else the thread's, else the agent's.
    public var toolNames: [String]
    /// Model calls that may end in tool calls (`max_steps`, default 5); the call after them offers no tools.
    public var maxSteps: Int
    /// `context.exclude_tool_messages`: leave tool calls and results out of the context.
    public var excludeToolMessages: Bool
    /// `context.search` when it searches (`text` or `vector` on, `limit` above 0), as
    /// `agentq.context_search` reads it; nil when the context has no search part.
    public var search: JSONValue?

    /// Merges the three layers; `defaultRecent` is the `recent_messages` setting.
    public init(
        agent: AgentRecord, threadOptions: JSONValue?, jobOptions: JSONValue, defaultRecent: Int = 100,
        defaultTimeout: Duration = .seconds(600)
    ) throws {
        let merged = agent.options.merging(threadOptions).merging(jobOptions)
        let modelName = merged["model"]?.stringValue ?? agent.model
        (provider, model) = try ModelRegistry.split(modelName)
        instructions = merged["instructions"]?.stringValue ?? agent.instructions
        // Every number is read exactly (`intValue`) and clamped to its range (README: Limits): the
        // SQL checks hold new options to these ranges, and rows written before them must not trap.
        recentMessages = Limits.clamp(merged["context"]?["recent_messages"]?.intValue ?? defaultRecent, 0...Limits.recentMessages)
        let save = merged["storage"]?["save_messages"]?.stringValue ?? SaveMode.promptAndOutput.rawValue
        guard let saveMode = SaveMode(rawValue: save) else {
            throw GenerationError(.permanent, "storage.save_messages must be promptAndOutput, all or none, got \"\(save)\"")
        }
        saveMessages = saveMode
        timeout = merged["timeout_ms"]?.intValue.map { .milliseconds(Limits.clamp($0, 1...Limits.timeoutMilliseconds)) } ?? defaultTimeout
        maxRetries = Limits.clamp(merged["max_retries"]?.intValue ?? 3, 0...Limits.maxRetries)
        if case .number(let t)? = merged["temperature"] { temperature = t }
        maxTokens = merged["max_tokens"]?.intValue.map { Limits.clamp($0, 1...Limits.maxTokens) }
        logRaw = merged["log_raw"]?.boolValue ?? false
        schema = jobOptions["schema"]
        streamEnabled = merged["stream"]?["enabled"]?.boolValue ?? true
        if case .array(let names)? = merged["tools"] {
            toolNames = names.compactMap(\.stringValue)
        } else {
            toolNames = agent.tools
        }
        maxSteps = Limits.clamp(merged["max_steps"]?.intValue ?? 5, 1...Limits.maxSteps)
        excludeToolMessages = merged["context"]?["exclude_tool_messages"]?.boolValue ?? false
        if let search = merged["context"]?["search"], search.objectValue != nil,
            search["text"]?.boolValue == true || search["vector"]?.boolValue == true, (search["limit"]?.intValue ?? 10) > 0
        {
            self.search = search
        }
    }

    /// Whether the search part of the context has a vector leg (which needs the prompt's embedding).
    public var searchesVectors: Bool { search?["vector"]?.boolValue == true }

    /// Whether the reply streams into a pending message with deltas.
    public var streams: Bool { saveMessages != .none && streamEnabled }
}
