import Foundation
import Logging
import PostgresNIO

/// Follows one thread (or every thread) as it happens: the events (README: Events) as an
/// `AsyncSequence`, over LISTEN on a pooled connection. When the connection drops it listens again
/// and catches up from the tables: the deltas past the last `seq` seen of each stream, streams that
/// ended, and jobs that finished meanwhile, so a reader sees every delta once, in order. NOTIFY is
/// only a hint: a delta's text and `seq` always come from its row, so a forged `stream.delta` changes
/// nothing (and a delta too big for its NOTIFY needs nothing special).
public struct ThreadFollower: Sendable {
    public let client: PostgresClient
    /// nil follows every thread (`agentq.events_channel()`, for the roles it allows; no catch-up).
    public let threadID: UUID?
    public let logger: Logger

    public init(client: PostgresClient, threadID: UUID?, logger: Logger) {
        self.client = client
        self.threadID = threadID
        self.logger = logger
    }

    /// Runs `body` with the thread's events; `ready` runs once the first LISTEN is in place (enqueue
    /// there to see a job from its first event). Following stops when `body` returns.
    public func withEvents<T: Sendable>(
        ready: @Sendable @escaping () async throws -> Void = {},
        resumeFrom lastSeen: [UUID: Int] = [:],
        _ body: (AsyncThrowingStream<ThreadEvent, any Error>) async throws -> T
    ) async throws -> T {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ThreadEvent.self)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await follow(into: continuation, ready: ready, lastSeen: lastSeen)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            defer { group.cancelAll() }
            return try await body(stream)
        }
    }

    private func follow(
        into out: AsyncThrowingStream<ThreadEvent, any Error>.Continuation,
        ready: @Sendable @escaping () async throws -> Void, lastSeen: [UUID: Int]
    ) async throws {
        var tracker = DeltaTracker(lastSeen: lastSeen)
        var since: Date?
        var readyDone = false
        while !Task.isCancelled {
            do {
                try await client.withConnection { conn in
                    // PostgresNIO must LISTEN first: a notification on a channel it is still starting
                    // to listen on is a fatal error in its state machine, and agentq.listen() LISTENs
                    // too. So the registration (for enqueue-time events) runs once PostgresNIO listens.
                    let channel = try await Self.channel(conn, threadID, logger: logger)
                    try await conn.listen(on: channel) { notes in
                        let started = try await Self.register(conn, threadID, logger: logger)
                        if let from = since, let threadID {
                            for e in try await catchUp(conn, thread: threadID, since: from, tracker: &tracker) { out.yield(e) }
                        }
                        since = started
                        if !readyDone {
                            try await ready()
                            readyDone = true
                        }
                        do {
                            for try await note in notes {
                                guard let event = ThreadEvent.parse(note.payload) else { continue }
                                guard event.type == "stream.delta", let stream = event.streamID, let seq = event.seq else {
                                    out.yield(event)
                                    continue
                                }
                                // A delta event is a hint (any session that knows the channel can
                                // send one): the deltas up to its seq are read from their rows.
                                let expected = tracker.expected(stream)
                                if seq < expected { continue }
                                for delta in try await Self.deltas(conn, stream, thread: threadID, from: expected, to: seq, logger: logger)
                                where tracker.accept(stream, delta.seq ?? -1) {
                                    out.yield(delta)
                                }
                            }
                        } catch is CancellationError {
                            // The reader is done: forget the registration (a dead session's is pruned).
                            _ = try? await conn.checkedQuery("SELECT agentq.unlisten(\(threadID))", logger: logger).collect()
                            throw CancellationError()
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                // Never connected, or `ready` (the caller's enqueue) failed: the caller hears of it.
                if !readyDone { throw error }
                logger.warning("following the thread failed; listening again", metadata: ["error": "\(describeDatabaseError(error))"])
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    private func catchUp(_ conn: PostgresConnection, thread: UUID, since: Date, tracker: inout DeltaTracker) async throws -> [ThreadEvent] {
        var events: [ThreadEvent] = []
        let slack = since.addingTimeInterval(-1)
        let deltas = try await conn.checkedQuery(
            """
            SELECT s.id, s.message_id, s.job_id, d.seq, d.text FROM agentq.streams s
              JOIN agentq.stream_deltas d ON d.stream_id = s.id
             WHERE s.thread_id = \(thread) AND s.updated_at >= \(slack) ORDER BY s.created_at, d.seq
            """, logger: logger)
        for try await (stream, message, job, seq, text) in deltas.decode((UUID, UUID?, Int64?, Int, String).self)
        where tracker.accept(stream, seq) {
            events.append(
                ThreadEvent(
                    type: "stream.delta", threadID: thread, jobID: job, messageID: message, streamID: stream,
                    seq: seq, status: nil, text: text, truncated: nil))
        }
        let ended = try await conn.checkedQuery(
            """
            SELECT s.id, s.message_id, s.job_id, s.status FROM agentq.streams s
             WHERE s.thread_id = \(thread) AND s.status <> 'streaming' AND s.updated_at >= \(slack) ORDER BY s.updated_at
            """, logger: logger)
        for try await (stream, message, job, status) in ended.decode((UUID, UUID?, Int64?, String).self) {
            events.append(
                ThreadEvent(
                    type: "message.updated", threadID: thread, jobID: job, messageID: message, streamID: nil,
                    seq: nil, status: nil, text: nil, truncated: nil))
            events.append(
                ThreadEvent(
                    type: "stream.\(status)", threadID: thread, jobID: job, messageID: message, streamID: stream,
                    seq: nil, status: status, text: nil, truncated: nil))
        }
        let jobs = try await conn.checkedQuery(
            """
            SELECT id, status, last_error FROM agentq.jobs
             WHERE thread_id = \(thread) AND finished_at >= \(slack) ORDER BY finished_at
            """, logger: logger)
        for try await (job, status, error) in jobs.decode((Int64, String, String?).self) {
            events.append(
                ThreadEvent(
                    type: "job.\(status)", threadID: thread, jobID: job, messageID: nil, streamID: nil,
                    seq: nil, status: status, text: status == "succeeded" ? nil : error, truncated: nil))
        }
        return events
    }

    /// The channel of the thread (or of every thread's events).
    private static func channel(_ conn: PostgresConnection, _ thread: UUID?, logger: Logger) async throws -> String {
        for try await c in try await conn.checkedQuery(
            """
            SELECT CASE WHEN \(thread)::uuid IS NULL THEN agentq.events_channel() ELSE agentq.thread_channel(\(thread)) END
            """, logger: logger
        ).decode(String.self) { return c }
        throw AgentQueueError(.notFound, "agentq.thread_channel returned nothing")
    }

    /// Registers the session as a listener (so producers send enqueue-time events); returns the
    /// server's time.
    private static func register(_ conn: PostgresConnection, _ thread: UUID?, logger: Logger) async throws -> Date {
        for try await d in try await conn.checkedQuery("SELECT now() FROM agentq.listen(\(thread))", logger: logger).decode(Date.self) {
            return d
        }
        throw AgentQueueError(.notFound, "agentq.listen returned nothing")
    }

    /// The deltas `from...to` of a stream, from their rows (of the followed thread only), with the
    /// stream's thread, job and message.
    private static func deltas(
        _ conn: PostgresConnection, _ stream: UUID, thread: UUID?, from: Int, to: Int, logger: Logger
    ) async throws -> [ThreadEvent] {
        var out: [ThreadEvent] = []
        for try await (threadID, job, message, seq, text) in try await conn.checkedQuery(
            """
            SELECT s.thread_id, s.job_id, s.message_id, d.seq, d.text
              FROM agentq.streams s JOIN agentq.stream_deltas d ON d.stream_id = s.id
             WHERE s.id = \(stream) AND (\(thread)::uuid IS NULL OR s.thread_id = \(thread))
               AND d.seq BETWEEN \(from)::int AND \(to)::int
             ORDER BY d.seq
            """, logger: logger
        ).decode((UUID, Int64?, UUID?, Int, String).self) {
            out.append(
                ThreadEvent(
                    type: "stream.delta", threadID: threadID, jobID: job, messageID: message, streamID: stream, seq: seq,
                    status: nil, text: text, truncated: nil))
        }
        return out
    }
}

/// The last `seq` delivered per stream: a delta is delivered once, and only right after the one
/// before it (pure).
public struct DeltaTracker: Sendable, Hashable {
    public private(set) var lastSeen: [UUID: Int]

    public init(lastSeen: [UUID: Int] = [:]) {
        self.lastSeen = lastSeen
    }

    /// The next `seq` to deliver of `stream`.
    public func expected(_ stream: UUID) -> Int { (lastSeen[stream] ?? -1) + 1 }

    /// Whether to deliver `seq` of `stream` (and records it).
    public mutating func accept(_ stream: UUID, _ seq: Int) -> Bool {
        guard seq == (lastSeen[stream] ?? -1) + 1 else { return false }
        lastSeen[stream] = seq
        return true
    }
}
