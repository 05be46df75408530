import Foundation
import Logging
import PostgresNIO

/// The statements of the job lifecycle a worker sends (register, claim, heartbeat, finish, prune, and the agents, contexts and providers jobs read). Each method is one round trip.
public struct JobStore: Sendable {
    public let database: Database
    public let workerID: String

    public init(database: Database, workerID: String) {
        self.database = database
        self.workerID = workerID
    }

    /// Over a pool the caller runs (statements get the default deadline; the pool is never replaced).
    public init(client: PostgresClient, workerID: String) {
        self.init(database: Database(client: client), workerID: workerID)
    }

    public func register(
        host: String, pid: Int, queues: [String], concurrency: Int, lease: Duration? = nil, logger: Logger
    ) async throws {
        _ = try await database.query(
            """
            SELECT agentq.register_worker(\(workerID), \(host), \(pid)::int, \(queues), \(concurrency)::int,
                                          \(lease.map(Self.interval))::interval)
            """, logger: logger
        ).collect()
    }

    public func deregister(logger: Logger) async throws {
        _ = try await database.query("SELECT agentq.deregister_worker(\(workerID))", logger: logger).collect()
    }

    /// Claims up to `limit` jobs from `queues` (in that order) with a lease of `lease`.
    public func claim(queues: [String], limit: Int, lease: Duration, logger: Logger) async throws -> [ClaimedJob] {
        let rows = try await database.query(
            """
            SELECT id, kind, queue, attempt, max_attempts, thread_id, user_id, agent_name, prompt_message_id, options::text
              FROM agentq.claim(\(workerID), \(queues), \(limit)::int, \(Self.interval(lease))::interval)
            """, logger: logger)
        var jobs: [ClaimedJob] = []
        for try await (id, kind, queue, attempt, maxAttempts, thread, user, agent, prompt, options) in rows.decode(
            (Int64, String, String, Int, Int, UUID?, String?, String?, UUID?, String).self)
        {
            jobs.append(
                ClaimedJob(
                    id: id, kind: JobKind(rawValue: kind), queue: queue, attempt: attempt, maxAttempts: maxAttempts,
                    threadID: thread, userID: user, agentName: agent, promptMessageID: prompt,
                    options: (try? JSONValue.parse(options)) ?? .object([:])))
        }
        return jobs
    }

    /// Jobs waiting (queued, runnable or not) per queue, read through the `jobs_active` index.
    public func queueDepths(_ queues: [String], logger: Logger) async throws -> [String: Int] {
        let rows = try await database.query(
            """
            SELECT queue, count(*)::int8 FROM agentq.jobs
             WHERE status = 'queued' AND queue = ANY(\(queues)) GROUP BY queue
            """, logger: logger)
        var depths: [String: Int] = [:]
        for try await (queue, jobs) in rows.decode((String, Int).self) { depths[queue] = jobs }
        return depths
    }

    /// Extends the leases of the attempts held. Returns the jobs still held, with their cancel-requested flag.
    public func heartbeat(
        held: [(id: Int64, attempt: Int)], lease: Duration, deadline: Duration? = nil, logger: Logger
    ) async throws -> [Int64: Bool] {
        let ids = held.map(\.id)
        let attempts = held.map { Int32($0.attempt) }
        let rows = try await database.query(
            """
            SELECT job_id, cancel_requested
              FROM agentq.heartbeat(\(workerID), \(ids), \(attempts), \(Self.interval(lease))::interval)
            """, deadline: deadline, logger: logger)
        var held: [Int64: Bool] = [:]
        for try await (id, cancel) in rows.decode((Int64, Bool).self) { held[id] = cancel }
        return held
    }

    /// Jobs among `jobIDs` whose cancellation was requested (the fallback when a NOTIFY was missed).
    public func cancelRequested(among jobIDs: [Int64], logger: Logger) async throws -> [Int64] {
        let rows = try await database.query(
            """
            SELECT id FROM agentq.jobs WHERE id = ANY(\(jobIDs)) AND cancel_requested
            """, logger: logger)
        var ids: [Int64] = []
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        return ids
    }

    /// Finishes a batch of jobs in one transaction; returns, per job id, whether it still held the job
    /// (false too for an item set aside as blocked: see `finishBatch`).
    public func finish(_ items: [FinishItem], logger: Logger) async throws -> [Int64: Bool] {
        try await finishBatch(items, logger: logger).applied
    }

    /// Finishes a batch of jobs in one transaction: whether each applied, and which were set aside
    /// untouched because another transaction held their thread or job row (to be tried again).
    public func finishBatch(_ items: [FinishItem], logger: Logger) async throws -> FinishResult {
        let payload = FinishItem.json(items)
        let rows = try await database.query(
            """
            SELECT job_id, applied, blocked FROM agentq.finish_jobs(\(workerID), \(payload)::jsonb)
            """, logger: logger)
        var result = FinishResult()
        for try await (id, ok, blocked) in rows.decode((Int64, Bool, Bool).self) {
            result.applied[id] = ok
            if blocked { result.blocked.insert(id) }
        }
        return result
    }

    /// The context of each job: recent successful messages up to its prompt, oldest first.
    public func contexts(jobIDs: [Int64], recentMessages: Int, logger: Logger) async throws -> [Int64: JobContextRecord] {
        let rows = try await database.query(
            """
            SELECT job_id, prompt_ord, prompt_step, thread_agent_options, message_id, role, text, content, ord, step, tool
              FROM agentq.job_contexts(\(jobIDs), \(recentMessages)::int)
            """, logger: logger)
        var result: [Int64: JobContextRecord] = [:]
        for try await (id, promptOrd, promptStep, agentOptions, messageID, role, text, content, ord, step, tool) in rows.decode(
            (Int64, Int?, Int?, String?, UUID?, String?, String?, String?, Int?, Int?, Bool?).self)
        {
            if result[id] == nil {
                result[id] = JobContextRecord(
                    jobID: id, promptOrd: promptOrd, promptStep: promptStep,
                    threadAgentOptions: agentOptions.flatMap { try? JSONValue.parse($0) }, messages: [])
            }
            if let messageID, let role = role.flatMap(MessageRole.init(rawValue:)), let ord, let step {
                result[id]!.messages.append(
                    ContextMessage(
                        id: messageID, role: role, contentJSON: content ?? "[]", text: text,
                        ord: ord, step: step, tool: tool ?? false))
            }
        }
        return result
    }

    /// The agents named, by name.
    public func agents(named names: [String], logger: Logger) async throws -> [String: AgentRecord] {
        let rows = try await database.query(
            """
            SELECT name, model, instructions, tools, embedding_model, options::text FROM agentq.agents WHERE name = ANY(\(names))
            """, logger: logger)
        var agents: [String: AgentRecord] = [:]
        for try await (name, model, instructions, tools, embedding, options) in rows.decode(
            (String, String, String?, [String], String?, String).self)
        {
            agents[name] = AgentRecord(
                name: name, model: model, instructions: instructions, tools: tools,
                embeddingModel: embedding, options: (try? JSONValue.parse(options)) ?? .object([:]))
        }
        return agents
    }

    /// The rows of `agentq.providers` (endpoints beyond the built-in `openai` and `mock`).
    public func providers(logger: Logger) async throws -> [ProviderRecord] {
        let rows = try await database.query(
            """
            SELECT name, kind, base_url, api_key_env, options::text FROM agentq.providers
            """, logger: logger)
        var out: [ProviderRecord] = []
        for try await (name, kind, baseURL, keyEnv, options) in rows.decode((String, String, String?, String?, String).self) {
            guard let kind = ProviderKind(rawValue: kind) else {
                logger.warning("skipping a provider of an unknown kind", metadata: ["provider": "\(name)", "kind": "\(kind)"])
                continue
            }
            out.append(
                ProviderRecord(
                    name: name, kind: kind, baseURL: baseURL, apiKeyEnv: keyEnv,
                    options: (try? JSONValue.parse(options)) ?? .object([:])))
        }
        return out
    }

    /// Prunes finished jobs and old deltas (one worker at a time); returns what was deleted.
    public func prune(batch: Int, logger: Logger) async throws -> String {
        let rows = try await database.query("SELECT agentq.prune(\(batch)::int)::text", logger: logger)
        for try await text in rows.decode(String.self) { return text }
        return "{}"
    }

    static func interval(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return "\(ms) milliseconds"
    }
}
