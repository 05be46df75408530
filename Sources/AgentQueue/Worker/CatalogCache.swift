import Synchronization

/// The worker's copy of `agentq.agents` and `agentq.tools` rows, by name, so a claimed batch does not
/// read them again. A change to either table (or to `agentq.providers`) sends `catalog` on
/// `agentq_jobs` (a statement trigger), and the job listener then calls `invalidate()`; it also does
/// after every (re)connect, since notifications sent while it was away are lost (README "How the
/// queue works"). A load that an invalidation overtook is used once and not kept, so no stale
/// row outlives the notification that reported its change. Names that matched no row are kept as
/// missing too, so a job naming an unknown agent costs no query either.
public final class CatalogCache: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var agents: [String: AgentRecord?] = [:]
        var tools: [String: ToolDefinition?] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Forgets everything: the next batch reads the rows again.
    public func invalidate() {
        state.withLock {
            $0.generation &+= 1
            $0.agents = [:]
            $0.tools = [:]
        }
    }

    /// The agents of these names that exist, loading the ones not cached with `load`.
    public func agents(
        named names: [String], load: ([String]) async throws -> [String: AgentRecord]
    ) async throws -> [String: AgentRecord] {
        try await lookup(names, in: \.agents, load: load)
    }

    /// The tool definitions of these names that exist, loading the ones not cached with `load`.
    public func tools(
        named names: [String], load: ([String]) async throws -> [String: ToolDefinition]
    ) async throws -> [String: ToolDefinition] {
        try await lookup(names, in: \.tools, load: load)
    }

    private func lookup<Row: Sendable>(
        _ names: [String], in table: WritableKeyPath<State, [String: Row?]> & Sendable,
        load: ([String]) async throws -> [String: Row]
    ) async throws -> [String: Row] {
        let (generation, found, missing) = state.withLock { s in
            var found: [String: Row] = [:]
            var missing: [String] = []
            for name in Set(names) {
                switch s[keyPath: table][name] {
                case .some(.some(let row)): found[name] = row
                case .some(.none): break  // known not to exist
                case .none: missing.append(name)
                }
            }
            return (s.generation, found, missing.sorted())
        }
        guard !missing.isEmpty else { return found }
        let loaded = try await load(missing)
        state.withLock { s in
            guard s.generation == generation else { return }
            for name in missing { s[keyPath: table][name] = .some(loaded[name]) }
        }
        return found.merging(loaded) { cached, _ in cached }
    }
}
