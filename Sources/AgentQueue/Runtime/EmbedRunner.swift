import Foundation
import Logging

/// Runs one claimed `embed` job: its messages' texts in one embeddings request per
/// `maxInputsPerRequest`, the vectors saved (fenced by the attempt), a usage row per request. Like
/// `JobRunner` it never throws: faults become retries with backoff (transient) or a failed job
/// (permanent), and generation never waits on it.
public struct EmbedRunner: Sendable {
    public var models: ModelRegistry
    public var store: MemoryStore
    public var backoff: Backoff
    /// Inputs per embeddings request (OpenAI accepts up to 2,048).
    public var maxInputsPerRequest: Int

    public init(models: ModelRegistry, store: MemoryStore, backoff: Backoff = Backoff(), maxInputsPerRequest: Int = 256) {
        self.models = models
        self.store = store
        self.backoff = backoff
        self.maxInputsPerRequest = maxInputsPerRequest
    }

    /// The outcome of `job`, given what `MemoryStore.embedInputs` found for it (nil: nothing left).
    public func run(_ job: ClaimedJob, work: (model: String, inputs: [MemoryStore.EmbedInput])?,
                    stopReason: @Sendable () -> StopReason?, logger: Logger) async -> FinishItem {
        guard let work, !work.inputs.isEmpty else {
            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .succeeded,
                              result: JobResultPayload(text: "embedded 0 messages", object: .object(["embedded": .number(0)]),
                                                       messageIDs: [], usage: nil))
        }
        var usage: [UsageRecord] = []
        var saved = 0
        do {
            guard let colon = work.model.firstIndex(of: ":") else {
                throw GenerationError(.permanent, "embedding model \"\(work.model)\" must be written provider:model")
            }
            let provider = String(work.model[..<colon])
            let model = String(work.model[work.model.index(after: colon)...])
            let embedder = try models.embedder(forProvider: provider)
            var start = 0
            while start < work.inputs.count {
                let chunk = Array(work.inputs[start..<min(start + maxInputsPerRequest, work.inputs.count)])
                let began = ContinuousClock.now
                let result: (vectors: [[Float]], promptTokens: Int)
                do {
                    result = try await embedder.embed(model: model, inputs: chunk.map(\.input))
                } catch {
                    usage.append(UsageRecord(provider: provider, model: model, usage: TokenUsage(promptTokens: 0, completionTokens: 0),
                                             messageID: nil, kind: "embedding", raw: .object(["error": .string("\(error)")])))
                    throw error
                }
                WorkerMetrics.llmCall(provider: provider, model: model, failed: false, after: began.elapsed,
                                      usage: TokenUsage(promptTokens: result.promptTokens, completionTokens: 0))
                usage.append(UsageRecord(provider: provider, model: model,
                                         usage: TokenUsage(promptTokens: result.promptTokens, completionTokens: 0),
                                         messageID: nil, kind: "embedding", raw: .object(["inputs": .number(Double(chunk.count))])))
                guard let n = try await store.saveJobEmbeddings(jobID: job.id, attempt: job.attempt, model: work.model,
                                                                inputs: chunk, vectors: result.vectors, logger: logger) else {
                    return (stopReason() ?? .leaseLost).finishItem(for: job, usage: usage, backoff: backoff)
                }
                saved += n
                start += chunk.count
            }
        } catch {
            if let reason = stopReason() { return reason.finishItem(for: job, usage: usage, backoff: backoff) }
            var item: FinishItem
            if let failure = error as? GenerationError, failure.kind == .permanent {
                item = FinishItem(jobID: job.id, attempt: job.attempt, outcome: .failed, error: failure.message)
            } else {
                let delay = (error as? GenerationError)?.retryAfter ?? backoff.delay(afterAttempt: job.attempt)
                item = FinishItem(jobID: job.id, attempt: job.attempt, outcome: .retry,
                                  error: (error as? GenerationError)?.message ?? describeDatabaseError(error),
                                  retryAt: Date().addingTimeInterval(delay.seconds))
            }
            logger.warning("embedding failed", metadata: ["job_id": "\(job.id)", "attempt": "\(job.attempt)",
                                                         "error": "\(item.error ?? "")"])
            item.usage = usage
            return item
        }
        var item = FinishItem(jobID: job.id, attempt: job.attempt, outcome: .succeeded,
                              result: JobResultPayload(text: "embedded \(saved) messages",
                                                       object: .object(["embedded": .number(Double(saved)), "model": .string(work.model)]),
                                                       messageIDs: [], usage: nil))
        item.usage = usage
        return item
    }
}
