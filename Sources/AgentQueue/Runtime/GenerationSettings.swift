/// The settings of one generation, from the job's options over the thread's `agent_options` over the
/// agent's options (SPEC section 4 precedence).
public struct GenerationSettings: Sendable, Hashable {
    public var provider: String
    public var model: String
    public var instructions: String?
    public var recentMessages: Int
    public var saveMessages: String
    public var timeout: Duration

    /// Merges the three layers; `defaultRecent` is the `recent_messages` setting.
    public init(agent: AgentRecord, threadOptions: JSONValue?, jobOptions: JSONValue, defaultRecent: Int = 100,
                defaultTimeout: Duration = .seconds(600)) throws {
        let merged = agent.options.merging(threadOptions).merging(jobOptions)
        let modelName = merged["model"]?.stringValue ?? agent.model
        guard let colon = modelName.firstIndex(of: ":") else {
            throw GenerationError(.permanent, "model \"\(modelName)\" must be written provider:model")
        }
        provider = String(modelName[..<colon])
        model = String(modelName[modelName.index(after: colon)...])
        instructions = merged["instructions"]?.stringValue ?? agent.instructions
        recentMessages = merged["context"]?["recent_messages"]?.intValue ?? defaultRecent
        saveMessages = merged["storage"]?["save_messages"]?.stringValue ?? "promptAndOutput"
        timeout = merged["timeout_ms"]?.intValue.map { .milliseconds($0) } ?? defaultTimeout
    }
}
