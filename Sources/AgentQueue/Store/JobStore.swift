import Foundation
import Logging
import PostgresNIO

/// Every statement a worker sends. Each method is one round trip to a function of `sql/003_worker.sql`.
public struct JobStore: Sendable {
    public let client: PostgresClient
    public let workerID: String

    public init(client: PostgresClient, workerID: String) {
        self.client = client
        self.workerID = workerID
    }

    public func register(host: String, pid: Int, queues: [String], concurrency: Int, logger: Logger) async throws {
        _ = try await client.query("""
            SELECT agentq.register_worker(\(workerID), \(host), \(pid)::int, \(queues), \(concurrency)::int)
            """, logger: logger).collect()
    }

    public func deregister(logger: Logger) async throws {
        _ = try await client.query("SELECT agentq.deregister_worker(\(workerID))", logger: logger).collect()
    }

    /// Claims up to `limit` jobs from `queues` (in that order) with a lease of `lease`.
    public func claim(queues: [String], limit: Int, lease: Duration, logger: Logger) async throws -> [ClaimedJob] {
        let rows = try await client.query("""
            SELECT id, kind, queue, attempt, max_attempts, thread_id, user_id, agent_name, prompt_message_id, options::text
              FROM agentq.claim(\(workerID), \(queues), \(limit)::int, \(Self.interval(lease))::interval)
            """, logger: logger)
        var jobs: [ClaimedJob] = []
        for try await (id, kind, queue, attempt, maxAttempts, thread, user, agent, prompt, options) in rows.decode(
            (Int64, String, String, Int, Int, UUID?, String?, String?, UUID?, String).self) {
            jobs.append(ClaimedJob(id: id, kind: kind, queue: queue, attempt: attempt, maxAttempts: maxAttempts,
                                   threadID: thread, userID: user, agentName: agent, promptMessageID: prompt,
                                   options: (try? JSONValue.parse(options)) ?? .object([:])))
        }
        return jobs
    }

    /// Extends the leases of `jobIDs`. Returns the jobs still held, with their cancel-requested flag.
    public func heartbeat(jobIDs: [Int64], lease: Duration, logger: Logger) async throws -> [Int64: Bool] {
        let rows = try await client.query("""
            SELECT job_id, cancel_requested FROM agentq.heartbeat(\(workerID), \(jobIDs), \(Self.interval(lease))::interval)
            """, logger: logger)
        var held: [Int64: Bool] = [:]
        for try await (id, cancel) in rows.decode((Int64, Bool).self) { held[id] = cancel }
        return held
    }

    /// Jobs among `jobIDs` whose cancellation was requested (the fallback when a NOTIFY was missed).
    public func cancelRequested(among jobIDs: [Int64], logger: Logger) async throws -> [Int64] {
        let rows = try await client.query("""
            SELECT id FROM agentq.jobs WHERE id = ANY(\(jobIDs)) AND cancel_requested
            """, logger: logger)
        var ids: [Int64] = []
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        return ids
    }

    /// Finishes a batch of jobs in one transaction; returns, per job id, whether it still held the job.
    public func finish(_ items: [FinishItem], logger: Logger) async throws -> [Int64: Bool] {
        let payload = FinishItem.json(items)
        let rows = try await client.query("""
            SELECT job_id, applied FROM agentq.finish_jobs(\(workerID), \(payload)::jsonb)
            """, logger: logger)
        var applied: [Int64: Bool] = [:]
        for try await (id, ok) in rows.decode((Int64, Bool).self) { applied[id] = ok }
        return applied
    }

    /// The context of each job: recent successful messages up to its prompt, oldest first.
    public func contexts(jobIDs: [Int64], recentMessages: Int, logger: Logger) async throws -> [Int64: JobContextRecord] {
        let rows = try await client.query("""
            SELECT job_id, prompt_ord, prompt_step, thread_agent_options, message_id, role, text, content, ord, step, tool
              FROM agentq.job_contexts(\(jobIDs), \(recentMessages)::int)
            """, logger: logger)
        var result: [Int64: JobContextRecord] = [:]
        for try await (id, promptOrd, promptStep, agentOptions, messageID, role, text, content, ord, step, tool) in rows.decode(
            (Int64, Int?, Int?, String?, UUID?, String?, String?, String?, Int?, Int?, Bool?).self) {
            if result[id] == nil {
                result[id] = JobContextRecord(jobID: id, promptOrd: promptOrd, promptStep: promptStep,
                                              threadAgentOptions: agentOptions.flatMap { try? JSONValue.parse($0) }, messages: [])
            }
            if let messageID, let role, let ord, let step {
                result[id]!.messages.append(ContextMessage(id: messageID, role: role, contentJSON: content ?? "[]", text: text,
                                                           ord: ord, step: step, tool: tool ?? false))
            }
        }
        return result
    }

    /// The agents named, by name.
    public func agents(named names: [String], logger: Logger) async throws -> [String: AgentRecord] {
        let rows = try await client.query("""
            SELECT name, model, instructions, tools, embedding_model, options::text FROM agentq.agents WHERE name = ANY(\(names))
            """, logger: logger)
        var agents: [String: AgentRecord] = [:]
        for try await (name, model, instructions, tools, embedding, options) in rows.decode(
            (String, String, String?, [String], String?, String).self) {
            agents[name] = AgentRecord(name: name, model: model, instructions: instructions, tools: tools,
                                       embeddingModel: embedding, options: (try? JSONValue.parse(options)) ?? .object([:]))
        }
        return agents
    }

    /// Prunes finished jobs and old deltas (one worker at a time); returns what was deleted.
    public func prune(batch: Int, logger: Logger) async throws -> String {
        let rows = try await client.query("SELECT agentq.prune(\(batch)::int)::text", logger: logger)
        for try await text in rows.decode(String.self) { return text }
        return "{}"
    }

    static func interval(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return "\(ms) milliseconds"
    }
}

/// How a worker ends its hold on a job (see `agentq.finish_jobs`).
public struct FinishItem: Sendable {
    public enum Outcome: String, Sendable {
        case succeeded, retry, failed, cancelled, released
    }

    public var jobID: Int64
    public var attempt: Int
    public var outcome: Outcome
    public var error: String?
    public var retryAt: Date?
    public var result: JobResultPayload?
    public var messages: [NewMessage]?
    public var usage: [UsageRecord]?

    public init(jobID: Int64, attempt: Int, outcome: Outcome, error: String? = nil, retryAt: Date? = nil,
                result: JobResultPayload? = nil, messages: [NewMessage]? = nil, usage: [UsageRecord]? = nil) {
        self.jobID = jobID
        self.attempt = attempt
        self.outcome = outcome
        self.error = error
        self.retryAt = retryAt
        self.result = result
        self.messages = messages
        self.usage = usage
    }

    /// The batch as the JSON array `agentq.finish_jobs` reads.
    static func json(_ items: [FinishItem]) -> String {
        var w = JSONWriter(capacity: items.count * 400)
        w.beginArray()
        for item in items { item.write(to: &w) }
        w.endArray()
        return w.text
    }

    func write(to w: inout JSONWriter) {
        w.beginObject()
        w.key("job_id"); w.int64(jobID)
        w.key("attempt"); w.int(attempt)
        w.key("outcome"); w.string(outcome.rawValue)
        w.field("error", error)
        w.field("retry_at", retryAt.map { ISO8601DateFormatter.withFractionalSeconds.string(from: $0) })
        if let result {
            w.key("result"); w.beginObject()
            w.field("text", result.text)
            w.field("object", result.object)
            w.key("message_ids"); w.beginArray(); for id in result.messageIDs { w.string(id.uuidString.lowercased()) }; w.endArray()
            if let u = result.usage { w.key("usage"); u.write(to: &w) }
            w.endObject()
        }
        if let messages {
            w.key("messages"); w.beginArray()
            for m in messages {
                w.beginObject()
                w.key("id"); w.string(m.id.uuidString.lowercased())
                w.key("role"); w.string(m.role)
                w.key("content"); w.value(m.content)
                w.field("text", m.text)
                w.key("status"); w.string(m.status)
                w.field("error", m.error)
                w.field("model", m.model)
                w.field("provider", m.provider)
                if let u = m.usage { w.key("usage"); u.write(to: &w) }
                w.field("finish_reason", m.finishReason)
                w.field("agent_name", m.agentName)
                w.key("tool"); w.bool(m.tool)
                w.endObject()
            }
            w.endArray()
        }
        if let usage {
            w.key("usage"); w.beginArray()
            for u in usage {
                w.beginObject()
                w.key("provider"); w.string(u.provider)
                w.key("model"); w.string(u.model)
                w.key("kind"); w.string(u.kind)
                w.key("prompt_tokens"); w.int(u.promptTokens)
                w.key("completion_tokens"); w.int(u.completionTokens)
                w.key("total_tokens"); w.int(u.totalTokens)
                w.field("message_id", u.messageID.map { $0.uuidString.lowercased() })
                w.field("raw", u.raw)
                w.endObject()
            }
            w.endArray()
        }
        w.endObject()
    }
}

extension TokenUsage {
    func write(to w: inout JSONWriter) {
        w.beginObject()
        w.key("prompt_tokens"); w.int(promptTokens)
        w.key("completion_tokens"); w.int(completionTokens)
        w.key("total_tokens"); w.int(totalTokens)
        w.endObject()
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFractionalSeconds: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
}
