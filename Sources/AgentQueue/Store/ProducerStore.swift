import Foundation
import Logging
import PostgresNIO

/// The producer side of the SQL API, for Swift programs and the CLI: threads, generate, results.
public struct ProducerStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) {
        self.client = client
    }

    /// Creates a thread; returns its id.
    public func createThread(userID: String? = nil, title: String? = nil, logger: Logger) async throws -> UUID {
        let rows = try await client.checkedQuery("SELECT agentq.create_thread(user_id => \(userID), title => \(title))", logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        throw AgentQueueError(.invalidInput, "create_thread returned no id")
    }

    /// Deletes a thread with its messages (`agentq.delete_thread`).
    public func deleteThread(_ threadID: UUID, logger: Logger) async throws {
        _ = try await client.checkedQuery("SELECT agentq.delete_thread(\(threadID))", logger: logger).collect()
    }

    /// Whether a thread has no messages (a thread made for a prompt that was never enqueued).
    public func isEmpty(threadID: UUID, logger: Logger) async throws -> Bool {
        let rows = try await client.checkedQuery(
            "SELECT NOT EXISTS (SELECT 1 FROM agentq.messages WHERE thread_id = \(threadID))", logger: logger)
        for try await empty in rows.decode(Bool.self) { return empty }
        return false
    }

    /// Whether an agent of this name exists.
    public func agentExists(_ name: String, logger: Logger) async throws -> Bool {
        let rows = try await client.checkedQuery("SELECT EXISTS (SELECT 1 FROM agentq.agents WHERE name = \(name))", logger: logger)
        for try await exists in rows.decode(Bool.self) { return exists }
        return false
    }

    /// Saves the prompt and enqueues a generate job in one transaction; returns the job id.
    public func generate(
        threadID: UUID?, prompt: String?, agent: String = "default", options: JSONValue = .object([:]),
        logger: Logger
    ) async throws -> Int64 {
        let optionsText = try options.jsonText()
        let rows = try await client.checkedQuery(
            """
            SELECT agentq.generate(\(threadID), \(prompt), \(agent), NULL, \(optionsText)::jsonb)
            """, logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        throw AgentQueueError(.invalidInput, "generate returned no job id")
    }

    /// `agentq.job_result(job_id)` decoded.
    public func jobResult(_ jobID: Int64, logger: Logger) async throws -> JobResult {
        let rows = try await client.checkedQuery("SELECT agentq.job_result(\(jobID))::text", logger: logger)
        for try await text in rows.decode(String.self) {
            return try JSONDecoder().decode(JobResult.self, from: Data(text.utf8))
        }
        throw AgentQueueError(.notFound, "unknown job \(jobID)")
    }

    /// `agentq.cancel(job_id)`: true when cancelled at once, false when a running job was asked to stop.
    public func cancel(_ jobID: Int64, logger: Logger) async throws -> Bool {
        let rows = try await client.checkedQuery("SELECT agentq.cancel(\(jobID))", logger: logger)
        for try await done in rows.decode(Bool.self) { return done }
        return false
    }

    /// Saved messages of a thread as a UI shows them: the `ids` given, or the newest `limit`.
    public func messages(threadID: UUID, ids: [UUID]? = nil, limit: Int = 100, logger: Logger) async throws -> [UIMessage] {
        let rows = try await client.checkedQuery(
            """
            SELECT id, role, coalesce(text, ''), status, ord, step, job_id FROM (
                SELECT * FROM agentq.messages WHERE thread_id = \(threadID) AND (\(ids)::uuid[] IS NULL OR id = ANY(\(ids)::uuid[]))
                 ORDER BY ord DESC, step DESC LIMIT \(limit)::int) m
             ORDER BY ord, step
            """, logger: logger)
        var out: [UIMessage] = []
        for try await (id, role, text, status, ord, step, job) in rows.decode((UUID, String, String, String, Int, Int, Int64?).self) {
            out.append(UIMessage(id: id, role: role, text: text, status: status, ord: ord, step: step, jobID: job))
        }
        return out
    }
}

/// What `agentq.job_result` returns.
public struct JobResult: Decodable, Sendable {
    public var status: String
    public var text: String?
    public var object: JSONValue?
    public var error: String?
    public var messageIDs: [UUID]
    public var usage: TokenUsage?

    /// True once the job can change no more.
    public var isFinal: Bool { ["succeeded", "failed", "cancelled"].contains(status) }

    enum CodingKeys: String, CodingKey {
        case status, text, object, error, usage
        case messageIDs = "message_ids"
    }
}
