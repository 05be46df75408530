import Foundation
import Logging

/// Runs one claimed `embed` job: its messages' texts in embeddings requests of at most
/// `maxInputsPerRequest` inputs and `maxCharactersPerRequest` characters, the vectors saved (fenced
/// by the attempt), a usage row per request. A refused request (a permanent fault, such as one
/// input over the model's token limit) is split in halves until the refused message is found, so
/// one bad message does not cost the others their vectors. Like `JobRunner` it never throws: faults
/// become retries with backoff (transient) or a failed job (permanent), and no generation waits on it.
public struct EmbedRunner: Sendable {
    public var models: ModelRegistry
    public var store: MemoryStore
    public var backoff: Backoff
    /// Inputs per embeddings request (OpenAI accepts up to 2,048).
    public var maxInputsPerRequest: Int
    /// Characters per request (OpenAI caps a request's total tokens; 200,000 characters stay well
    /// under it for any text).
    public var maxCharactersPerRequest: Int

    public init(models: ModelRegistry, store: MemoryStore, backoff: Backoff = Backoff(), maxInputsPerRequest: Int = 256,
                maxCharactersPerRequest: Int = 200_000) {
        self.models = models
        self.store = store
        self.backoff = backoff
        self.maxInputsPerRequest = maxInputsPerRequest
        self.maxCharactersPerRequest = maxCharactersPerRequest
    }

    /// `inputs` cut into requests by count and size, in order. Pure.
    public func requests(_ inputs: [MemoryStore.EmbedInput]) -> [[MemoryStore.EmbedInput]] {
        var out: [[MemoryStore.EmbedInput]] = []
        var current: [MemoryStore.EmbedInput] = []
        var characters = 0
        for input in inputs {
            let size = input.input.count
            if !current.isEmpty && (current.count >= maxInputsPerRequest || characters + size > maxCharactersPerRequest) {
                out.append(current)
                current = []
                characters = 0
            }
            current.append(input)
            characters += size
        }
        if !current.isEmpty { out.append(current) }
        return out
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
        var refused: [(id: UUID, reason: String)] = []
        do {
            let (provider, model) = try ModelRegistry.split(work.model, what: "embedding model")
            let embedder = try models.embedder(forProvider: provider)
            var pending = Array(requests(work.inputs).reversed())
            while let chunk = pending.popLast() {
                let began = ContinuousClock.now
                let result: (vectors: [[Float]], promptTokens: Int)
                do {
                    result = try await embedder.embed(model: model, inputs: chunk.map(\.input))
                } catch let failure as GenerationError where failure.kind == .permanent {
                    usage.append(Self.failedCall(provider, model, failure.message))
                    // A refusal of everything (a bad key or model) shows as two refused messages and
                    // nothing embedded: fail the job rather than split on.
                    if saved == 0 && refused.count >= 1 && chunk.count == 1 { throw failure }
                    if chunk.count == 1 {
                        refused.append((chunk[0].messageID, failure.message))
                    } else {
                        let half = chunk.count / 2
                        pending.append(Array(chunk[half...]))
                        pending.append(Array(chunk[..<half]))
                    }
                    continue
                } catch {
                    usage.append(Self.failedCall(provider, model, (error as? GenerationError)?.message ?? "\(error)"))
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
            }
            // Nothing embedded and something refused: the model refuses this job, not one message.
            if saved == 0, let first = refused.first { throw GenerationError(.permanent, first.reason) }
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
        if !refused.isEmpty {
            logger.warning("messages the embedding model refused", metadata: [
                "job_id": "\(job.id)", "messages": "\(refused.map(\.id.uuidString).joined(separator: ","))",
                "error": "\(refused[0].reason)"])
        }
        let refusedJSON = JSONValue.array(refused.map { .object(["message_id": .string($0.id.uuidString.lowercased()),
                                                                 "error": .string($0.reason)]) })
        var item = FinishItem(jobID: job.id, attempt: job.attempt, outcome: .succeeded,
                              result: JobResultPayload(text: "embedded \(saved) messages" + (refused.isEmpty ? "" : ", \(refused.count) refused"),
                                                       object: .object(["embedded": .number(Double(saved)), "model": .string(work.model),
                                                                        "refused": refusedJSON]),
                                                       messageIDs: [], usage: nil))
        item.usage = usage
        return item
    }

    /// The usage row of a request that failed.
    private static func failedCall(_ provider: String, _ model: String, _ message: String) -> UsageRecord {
        UsageRecord(provider: provider, model: model, usage: TokenUsage(promptTokens: 0, completionTokens: 0),
                    messageID: nil, kind: "embedding", raw: .object(["error": .string(message)]))
    }
}
