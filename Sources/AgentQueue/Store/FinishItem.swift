import Foundation

/// How a worker ends its hold on a job (see `agentq.finish_jobs`).
public struct FinishItem: Sendable {
    public enum Outcome: String, Sendable {
        case succeeded, retry, failed, cancelled, released
        /// Parked until the application answers client tool calls or approvals.
        case requiresAction = "requires_action"
    }

    public var jobID: Int64
    public var attempt: Int
    public var outcome: Outcome
    public var error: String?
    public var retryAt: Date?
    public var result: JobResultPayload?
    public var messages: [NewMessage]?
    public var usage: [UsageRecord]?
    /// The job's stream, ended with this item: its last delta is written with the outcome.
    public var stream: StreamEnd?
    /// Raw LLM calls to keep (`log_raw`).
    public var llmCalls: [LLMCallRecord]

    /// The end of a live stream: the last, not yet written delta (nil `delta` when none waits).
    public struct StreamEnd: Sendable, Hashable {
        public var streamID: UUID
        public var seq: Int
        public var delta: String?

        public init(streamID: UUID, seq: Int, delta: String?) {
            self.streamID = streamID
            self.seq = seq
            self.delta = delta
        }
    }

    public init(
        jobID: Int64, attempt: Int, outcome: Outcome, error: String? = nil, retryAt: Date? = nil,
        result: JobResultPayload? = nil, messages: [NewMessage]? = nil, usage: [UsageRecord]? = nil,
        stream: StreamEnd? = nil, llmCalls: [LLMCallRecord] = []
    ) {
        self.stream = stream
        self.llmCalls = llmCalls
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
            w.field("pending_tool_calls", result.pendingToolCalls)
            w.endObject()
        }
        if let messages {
            w.key("messages"); w.beginArray()
            for m in messages {
                w.beginObject()
                w.key("id"); w.string(m.id.uuidString.lowercased())
                w.key("role"); w.string(m.role.rawValue)
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
        if let stream, let delta = stream.delta {
            w.key("stream"); w.beginObject()
            w.key("stream_id"); w.string(stream.streamID.uuidString.lowercased())
            w.key("seq"); w.int(stream.seq)
            w.key("delta"); w.string(delta)
            w.endObject()
        }
        if !llmCalls.isEmpty {
            w.key("llm_calls"); w.beginArray()
            for c in llmCalls {
                w.beginObject()
                w.key("provider"); w.string(c.provider)
                w.key("model"); w.string(c.model)
                w.key("url"); w.string(c.exchange.url)
                w.field("request", c.exchange.request)
                w.field("response", c.exchange.response)
                if let status = c.exchange.httpStatus { w.key("http_status"); w.int(status) }
                w.field("error", c.exchange.error)
                w.key("duration_ms"); w.int(Int(c.exchange.duration.seconds * 1000))
                w.endObject()
            }
            w.endArray()
        }
        w.endObject()
    }
}

/// What `agentq.finish_jobs` did with a batch: per job id, whether its outcome applied; and the jobs
/// it set aside, writing nothing of them, because another transaction held their thread or job row.
public struct FinishResult: Sendable, Hashable {
    public var applied: [Int64: Bool]
    public var blocked: Set<Int64>

    public init(applied: [Int64: Bool] = [:], blocked: Set<Int64> = []) {
        self.applied = applied
        self.blocked = blocked
    }

    mutating func merge(_ other: FinishResult) {
        applied.merge(other.applied) { $1 }
        blocked.formUnion(other.blocked)
    }
}

/// One raw LLM call to keep in `agentq.llm_calls`.
public struct LLMCallRecord: Sendable, Hashable {
    public var provider: String
    public var model: String
    public var exchange: LLMExchange

    public init(provider: String, model: String, exchange: LLMExchange) {
        self.provider = provider
        self.model = model
        self.exchange = exchange
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
