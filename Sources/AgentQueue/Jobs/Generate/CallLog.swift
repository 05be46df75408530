import Foundation
import Synchronization

/// The LLM calls of one job: a usage row per call (failed and cancelled ones too, with the tokens
/// estimated from what streamed when the provider sent no counts) and the raw exchanges kept.
final class CallLog: Sendable {
    private struct State: Sendable {
        var records: [UsageRecord] = []
        var exchanges: [LLMCallRecord] = []
        var open = false
        var callStarted = ContinuousClock.now
        var streamedChunks = 0
        var streamedBytes = 0

        /// Ends the open call with its usage row, and reports it to the metrics.
        mutating func close(_ record: UsageRecord) {
            open = false
            records.append(record)
            WorkerMetrics.llmCall(
                provider: record.provider, model: record.model, failed: record.raw?["error"] != nil,
                after: callStarted.elapsed,
                usage: TokenUsage(promptTokens: record.promptTokens, completionTokens: record.completionTokens))
        }
    }

    private let state = Mutex(State())
    /// The generation's settings: the provider and model its rows name.
    let settings: GenerationSettings

    init(settings: GenerationSettings) {
        self.settings = settings
    }

    /// Adds a row for a call made outside `begin`/`end` (the prompt's embedding).
    func add(_ record: UsageRecord) {
        state.withLock { $0.records.append(record) }
    }

    func begin() {
        state.withLock {
            $0.open = true; $0.callStarted = .now; $0.streamedChunks = 0; $0.streamedBytes = 0
        }
    }

    func streamed(_ text: String) {
        state.withLock {
            $0.streamedChunks += 1; $0.streamedBytes += text.utf8.count
        }
    }

    func end(_ usage: TokenUsage?, exchange: LLMExchange?, failed: String?) {
        state.withLock { s in
            guard s.open else { return }
            s.close(Self.record(settings, usage: usage, chunks: s.streamedChunks, failed: failed))
            if let exchange { s.exchanges.append(LLMCallRecord(provider: settings.provider, model: settings.model, exchange: exchange)) }
        }
    }

    private static func record(_ settings: GenerationSettings, usage: TokenUsage?, chunks: Int, failed: String?) -> UsageRecord {
        var raw: [String: JSONValue] = [:]
        if let failed { raw["error"] = .string(failed) }
        if usage == nil { raw["estimated"] = .bool(true) }
        return UsageRecord(
            provider: settings.provider, model: settings.model,
            usage: usage ?? TokenUsage(promptTokens: 0, completionTokens: chunks), messageID: nil,
            raw: raw.isEmpty ? nil : .object(raw))
    }

    /// The usage rows, closing a call that was cut off by cancellation.
    var usageRecords: [UsageRecord] {
        state.withLock { s in
            if s.open {
                s.close(Self.record(settings, usage: nil, chunks: s.streamedChunks, failed: "cancelled"))
            }
            return s.records
        }
    }

    var exchanges: [LLMCallRecord] { state.withLock { $0.exchanges } }

    var totalUsage: TokenUsage? {
        state.withLock { s in
            let calls = s.records.filter { $0.raw?["error"] == nil && $0.kind == "chat" }
            guard !calls.isEmpty else { return nil }
            return TokenUsage(
                promptTokens: calls.reduce(0) { $0 + $1.promptTokens },
                completionTokens: calls.reduce(0) { $0 + $1.completionTokens })
        }
    }

    func attach(messageID: UUID) {
        state.withLock { s in
            for i in s.records.indices where s.records[i].raw?["error"] == nil && s.records[i].kind == "chat" {
                s.records[i].messageID = messageID
            }
        }
    }
}
