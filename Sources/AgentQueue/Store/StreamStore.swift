import Foundation
import Logging
import PostgresNIO

/// The statements a worker sends for streamed replies (`sql/004_streams.sql`): open streams, and one
/// statement per tick with every live stream's delta.
public struct StreamStore: Sendable {
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

    /// A stream to open for a held job attempt.
    public struct Opening: Sendable {
        public var jobID: Int64
        public var attempt: Int
        public var messageID: UUID
        public var streamID: UUID
        public var model: String
        public var provider: String

        public init(jobID: Int64, attempt: Int, messageID: UUID = UUID(), streamID: UUID = UUID(), model: String, provider: String) {
            self.jobID = jobID
            self.attempt = attempt
            self.messageID = messageID
            self.streamID = streamID
            self.model = model
            self.provider = provider
        }
    }

    /// One delta of one stream, for this tick.
    public struct Delta: Sendable {
        public var streamID: UUID
        public var attempt: Int
        public var seq: Int
        public var text: String

        public init(streamID: UUID, attempt: Int, seq: Int, text: String) {
            self.streamID = streamID
            self.attempt = attempt
            self.seq = seq
            self.text = text
        }
    }

    /// Opens the streams (pending message + stream row each); returns the stream ids opened.
    public func open(_ openings: [Opening], logger: Logger) async throws -> Set<UUID> {
        let rows = try await database.query(
            "SELECT stream_id FROM agentq.open_streams(\(workerID), \(Self.json(openings))::jsonb)", logger: logger)
        var opened = Set<UUID>()
        for try await id in rows.decode(UUID.self) { opened.insert(id) }
        return opened
    }

    /// Openings as the JSON array `agentq.open_streams` reads.
    static func json(_ openings: [Opening]) -> String {
        var w = JSONWriter(capacity: openings.count * 200)
        w.beginArray()
        for o in openings {
            w.beginObject()
            w.key("job_id"); w.int64(o.jobID)
            w.key("attempt"); w.int(o.attempt)
            w.key("message_id"); w.string(o.messageID.uuidString.lowercased())
            w.key("stream_id"); w.string(o.streamID.uuidString.lowercased())
            w.key("model"); w.string(o.model)
            w.key("provider"); w.string(o.provider)
            w.endObject()
        }
        w.endArray()
        return w.text
    }

    /// Writes one tick of deltas; returns, per stream, (written, stop).
    public func write(_ deltas: [Delta], logger: Logger) async throws -> [UUID: (written: Bool, stop: Bool)] {
        var w = JSONWriter(capacity: deltas.count * 120)
        w.beginArray()
        for d in deltas {
            w.beginObject()
            w.key("stream_id"); w.string(d.streamID.uuidString.lowercased())
            w.key("attempt"); w.int(d.attempt)
            w.key("seq"); w.int(d.seq)
            w.key("text"); w.string(d.text)
            w.endObject()
        }
        w.endArray()
        let rows = try await database.query(
            """
            SELECT stream_id, written, stop FROM agentq.write_deltas(\(workerID), \(w.text)::jsonb)
            """, logger: logger)
        var result: [UUID: (Bool, Bool)] = [:]
        for try await (id, written, stop) in rows.decode((UUID, Bool, Bool).self) { result[id] = (written, stop) }
        return result
    }
}
