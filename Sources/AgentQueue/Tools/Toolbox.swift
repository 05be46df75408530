import Logging

/// Everything a worker needs for tools: where steps are saved, how HTTP and Swift tools are called,
/// and the Swift tools registered in code.
public struct Toolbox: Sendable {
    public var store: ToolStore
    public var caller: ToolCaller
    /// Tools registered in code, by name (they win over `agentq.tools` rows of the same name).
    public var swiftTools: [String: SwiftTool]
    /// The `agentq.tools` and `agentq.agents` rows read so far (invalidated when the tables change).
    public var catalog: CatalogCache

    public init(store: ToolStore, caller: ToolCaller, swiftTools: [String: SwiftTool] = [:], catalog: CatalogCache = CatalogCache()) {
        self.store = store
        self.caller = caller
        self.swiftTools = swiftTools
        self.catalog = catalog
    }

    /// Each generation's tool set (Swift tools first, then `agentq.tools` rows: from the catalog
    /// cache, else one query for the batch) and, for retried or resumed attempts, the calls left
    /// open. Only the job's own tool set is resolved: an open call naming another tool finds no
    /// definition (the executor answers it with an error). Jobs without tools cost no query.
    func resolve(_ jobs: [(job: ClaimedJob, settings: GenerationSettings)], logger: Logger) async throws -> [Int64: JobTools] {
        let withTools = jobs.filter { !$0.settings.toolNames.isEmpty }
        guard !withTools.isEmpty else { return [:] }
        let open = try await store.openCalls(jobIDs: withTools.filter { $0.job.attempt > 1 }.map(\.job.id), logger: logger)
        let wanted = Set(withTools.flatMap(\.settings.toolNames)).subtracting(swiftTools.keys)
        var definitions = try await catalog.tools(named: wanted.sorted()) { try await store.definitions(named: $0, logger: logger) }
        for (name, tool) in swiftTools { definitions[name] = ToolDefinition(tool) }
        var tools: [Int64: JobTools] = [:]
        for (job, settings) in withTools {
            let openCalls = open[job.id] ?? []
            let needed = Set(settings.toolNames)
            tools[job.id] = JobTools(
                definitions: definitions.filter { needed.contains($0.key) },
                missing: settings.toolNames.filter { definitions[$0] == nil }, open: openCalls)
        }
        return tools
    }
}

/// The tools of one claimed job: its tool set resolved, names that resolved to nothing, and the calls
/// an earlier attempt left open.
public struct JobTools: Sendable {
    public var definitions: [String: ToolDefinition]
    public var missing: [String]
    public var open: [OpenToolCall]

    public init(definitions: [String: ToolDefinition] = [:], missing: [String] = [], open: [OpenToolCall] = []) {
        self.definitions = definitions
        self.missing = missing
        self.open = open
    }
}
