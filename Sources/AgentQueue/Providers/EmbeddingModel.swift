/// A provider that turns texts into vectors (`/v1/embeddings` for `openai`; the bag-of-words mock).
public protocol EmbeddingModel: Sendable {
    /// Embeds `inputs` with `model`; vectors come back in input order. Throws `GenerationError`.
    func embed(model: String, inputs: [String]) async throws -> (vectors: [[Float]], promptTokens: Int)
}

extension OpenAIModel: EmbeddingModel {}

extension MockModel: EmbeddingModel {
    /// `MockEmbedding` vectors (16 dimensions unless the model is named `embed-N`); a name with
    /// `fail-N` fails its first N requests in this process, `fail-permanent` every one; a request
    /// with an input holding `[embed refuse]` is refused (as a real model refuses an input over its limit).
    public func embed(model: String, inputs: [String]) async throws -> (vectors: [[Float]], promptTokens: Int) {
        let plan = MockEmbedding.Plan(model: model)
        if plan.permanent {
            throw GenerationError(.permanent, "mock: embedding model \"\(model)\" always fails (fail-permanent)")
        }
        if plan.failures > 0, MockModel.embedCalls.next(model) <= plan.failures {
            throw GenerationError(.transient, "mock: embedding request failed on purpose (\(model))")
        }
        if inputs.contains(where: MockEmbedding.refuses) {
            throw GenerationError(.permanent, "mock: an input asks to be refused (\(MockEmbedding.refuseMarker))")
        }
        let vectors = inputs.map { MockEmbedding.vector(for: $0, dimensions: plan.dimensions ?? 16) }
        return (vectors, inputs.reduce(0) { $0 + MockPlan.words($1) })
    }

    /// Embedding requests seen per model name (for `fail-N`).
    static let embedCalls = RequestCounter()
}
