import Foundation
import Logging
import PostgresNIO

/// The statements of memory (`sql/006_memory.sql`): what embed jobs embed and
/// where their vectors go, the prompt's saved vector, and the search part of a generation's context.
public struct MemoryStore: Sendable {
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

    /// One message an embed job embeds: its id, the text sent (cut to `embed_max_chars`) and its md5.
    public struct EmbedInput: Sendable, Hashable {
        public var messageID: UUID
        public var input: String
        public var inputMD5: String
    }

    /// The work of claimed embed jobs, by job id: the model and the messages still to embed (a job
    /// whose messages were all embedded, deleted or failed meanwhile has none).
    public func embedInputs(jobIDs: [Int64], logger: Logger) async throws -> [Int64: (model: String, inputs: [EmbedInput])] {
        guard !jobIDs.isEmpty else { return [:] }
        let rows = try await database.query(
            """
            SELECT job_id, model, message_id, input, input_md5 FROM agentq.embed_inputs(\(jobIDs))
            """, logger: logger)
        var work: [Int64: (model: String, inputs: [EmbedInput])] = [:]
        for try await (job, model, message, input, md5) in rows.decode((Int64, String, UUID, String, String).self) {
            work[job, default: (model, [])].inputs.append(EmbedInput(messageID: message, input: input, inputMD5: md5))
        }
        return work
    }

    /// Saves vectors a job computed (an embed job's, or a generation's prompt) if this worker still
    /// holds the attempt and the texts are unchanged; nil when it lost the job.
    public func saveJobEmbeddings(
        jobID: Int64, attempt: Int, model: String, inputs: [EmbedInput], vectors: [[Float]],
        logger: Logger
    ) async throws -> Int? {
        var w = JSONWriter(capacity: vectors.count * (vectors.first?.count ?? 0) * 12 + 256)
        w.beginArray()
        for (input, vector) in zip(inputs, vectors) {
            w.beginObject()
            w.key("message_id"); w.string(input.messageID.uuidString.lowercased())
            w.key("model"); w.string(model)
            w.key("input_md5"); w.string(input.inputMD5)
            w.key("embedding"); Self.write(vector, to: &w)
            w.endObject()
        }
        w.endArray()
        let payload = w.text
        let rows = try await database.query(
            """
            SELECT agentq.save_job_embeddings(\(workerID), \(jobID), \(attempt)::int, \(payload)::jsonb)
            """, logger: logger)
        for try await saved in rows.decode(Int?.self) { return saved }
        return nil
    }

    /// What embedding a prompt message for a search needs: its saved vector of `model`, else the text
    /// to embed (cut to `embed_max_chars`) and whether a vector may be saved with it. Nil: no such message.
    public func promptEmbedding(
        messageID: UUID, model: String,
        logger: Logger
    ) async throws -> (saved: [Float]?, input: EmbedInput, embeddable: Bool)? {
        let rows = try await database.query(
            """
            SELECT embedding, input, input_md5, embeddable FROM agentq.prompt_embedding(\(messageID), \(model))
            """, logger: logger)
        for try await (embedding, input, md5, embeddable) in rows.decode((String?, String, String, Bool).self) {
            return (embedding.map(Self.parse(vector:)), EmbedInput(messageID: messageID, input: input, inputMD5: md5), embeddable)
        }
        return nil
    }

    /// The search part of a job's context (`agentq.context_search`), oldest first.
    public func contextSearch(
        threadID: UUID, query: String?, embedding: [Float]?, model: String?, search: JSONValue,
        beforeOrd: Int?, exclude: [UUID], logger: Logger
    ) async throws -> [ContextMessage] {
        let vectorText = embedding.map(Self.text(of:))
        let searchJSON = search.jsonString
        let rows = try await database.query(
            """
            SELECT message_id, role, text, content::text, ord, step, tool
              FROM agentq.context_search(\(threadID), \(query), \(vectorText)::vector, \(model), \(searchJSON)::jsonb,
                                         \(beforeOrd)::int, \(exclude)::uuid[])
            """, logger: logger)
        var messages: [ContextMessage] = []
        for try await (id, role, text, content, ord, step, tool) in rows.decode((UUID, String, String?, String, Int, Int, Bool).self) {
            guard let role = MessageRole(rawValue: role) else { continue }  // the table's check allows no other
            messages.append(ContextMessage(id: id, role: role, contentJSON: content, text: text, ord: ord, step: step, tool: tool))
        }
        return messages
    }

    /// pgvector's text form, `[1,0.5,...]`.
    static func text(of vector: [Float]) -> String {
        "[" + vector.map { $0.isFinite ? "\($0)" : "0" }.joined(separator: ",") + "]"
    }

    static func write(_ vector: [Float], to w: inout JSONWriter) {
        w.beginArray()
        for x in vector { w.double(Double(x)) }
        w.endArray()
    }

    static func parse(vector text: String) -> [Float] {
        text.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")).split(separator: ",").compactMap { Float($0) }
    }
}
