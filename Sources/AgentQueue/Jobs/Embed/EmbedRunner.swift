import Foundation
import Logging

/// Runs one claimed `embed` job: its messages' texts in embeddings requests of at most
/// `maxInputsPerRequest` inputs and `maxCharactersPerRequest` characters, the vectors saved (fenced
/// by the attempt), a usage row per request. A refused request (a permanent fault, such as one
/// input over the model's token limit) is split in halves until the refused message is found
/// (`RefusalStep`), so one bad message does not cost the others their vectors. It never throws:
/// faults become retries with backoff (transient) or a failed job (permanent), via `OutcomePolicy`.
public struct EmbedRunner: Sendable {
    /// An embed job's model (`provider:model`) and the messages still to embed.
    public typealias Work = (model: String, inputs: [MemoryStore.EmbedInput])

    public var models: ModelRegistry
    public var store: MemoryStore
    public var policy: OutcomePolicy
    /// Inputs per embeddings request (OpenAI accepts up to 2,048).
    public var maxInputsPerRequest: Int
    /// Characters per request (OpenAI caps a request's total tokens; 200,000 characters stay well
    /// under it for any text).
    public var maxCharactersPerRequest: Int

    public init(
        models: ModelRegistry, store: MemoryStore, policy: OutcomePolicy = OutcomePolicy(), maxInputsPerRequest: Int = 256,
        maxCharactersPerRequest: Int = 200_000
    ) {
        self.models = models
        self.store = store
        self.policy = policy
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

    /// What to do after the model refused a request (pure).
    public enum RefusalStep: Sendable, Hashable {
        /// The model refuses this job, not one message (a bad key or model): fail the job.
        case failJob
        /// The request held one message: it is the refused one; record it and go on.
        case refuseMessage
        /// Split the request at `index` and send both halves, the first first.
        case split(at: Int)

        /// The step after a refused request of `inputs` messages, with `saved` messages embedded
        /// and `refused` messages refused so far. A refusal of everything shows as a second refused
        /// message with nothing embedded.
        public static func after(refusing inputs: Int, saved: Int, refused: Int) -> RefusalStep {
            if inputs > 1 { return .split(at: inputs / 2) }
            return saved == 0 && refused >= 1 ? .failJob : .refuseMessage
        }
    }

    /// The outcome of `job`, given what `MemoryStore.embedInputs` found for it (nil: nothing left).
    public func run(_ job: ClaimedJob, work: Work?, stopReason: @Sendable () -> StopReason?, logger: Logger) async -> FinishItem {
        guard let work, !work.inputs.isEmpty else {
            return FinishItem(
                jobID: job.id, attempt: job.attempt, outcome: .succeeded,
                result: JobResultPayload(
                    text: "embedded 0 messages", object: .object(["embedded": .number(0)]),
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
                    switch RefusalStep.after(refusing: chunk.count, saved: saved, refused: refused.count) {
                    case .failJob: throw failure
                    case .refuseMessage: refused.append((chunk[0].messageID, failure.message))
                    case .split(let index):
                        pending.append(Array(chunk[index...]))
                        pending.append(Array(chunk[..<index]))
                    }
                    continue
                } catch {
                    usage.append(Self.failedCall(provider, model, (error as? GenerationError)?.message ?? "\(error)"))
                    throw error
                }
                WorkerMetrics.llmCall(
                    provider: provider, model: model, failed: false, after: began.elapsed,
                    usage: TokenUsage(promptTokens: result.promptTokens, completionTokens: 0))
                usage.append(
                    UsageRecord(
                        provider: provider, model: model,
                        usage: TokenUsage(promptTokens: result.promptTokens, completionTokens: 0),
                        messageID: nil, kind: "embedding", raw: .object(["inputs": .number(Double(chunk.count))])))
                guard
                    let n = try await store.saveJobEmbeddings(
                        jobID: job.id, attempt: job.attempt, model: work.model,
                        inputs: chunk, vectors: result.vectors, logger: logger)
                else {
                    return policy.stopped(job, stopReason() ?? .leaseLost, usage: usage)
                }
                saved += n
            }
            // Nothing embedded and something refused: the model refuses this job, not one message.
            if saved == 0, let first = refused.first { throw GenerationError(.permanent, first.reason) }
        } catch {
            let item = policy.outcome(of: error, job: job, stopReason: stopReason(), usage: usage)
            if stopReason() == nil {
                logger.warning("embedding failed", metadata: ["attempt": "\(job.attempt)", "error": "\(item.error ?? "")"])
            }
            return item
        }
        if !refused.isEmpty {
            logger.warning(
                "messages the embedding model refused",
                metadata: [
                    "messages": "\(refused.map(\.id.uuidString).joined(separator: ","))", "error": "\(refused[0].reason)"
                ])
        }
        let refusedJSON = JSONValue.array(
            refused.map {
                .object([
                    "message_id": .string($0.id.uuidString.lowercased()),
                    "error": .string($0.reason)
                ])
            })
        var item = FinishItem(
            jobID: job.id, attempt: job.attempt, outcome: .succeeded,
            result: JobResultPayload(
                text: "embedded \(saved) messages" + (refused.isEmpty ? "" : ", \(refused.count) refused"),
                object: .object([
                    "embedded": .number(Double(saved)), "model": .string(work.model),
                    "refused": refusedJSON
                ]),
                messageIDs: [], usage: nil))
        item.usage = usage
        return item
    }

    /// The usage row of a request that failed.
    private static func failedCall(_ provider: String, _ model: String, _ message: String) -> UsageRecord {
        UsageRecord(
            provider: provider, model: model, usage: TokenUsage(promptTokens: 0, completionTokens: 0),
            messageID: nil, kind: "embedding", raw: .object(["error": .string(message)]))
    }
}
