import Foundation
import Testing

@testable import AgentQueue

@Suite struct MemoryUnitTests {
    static func row(_ role: MessageRole, _ text: String, ord: Int, step: Int) -> ContextMessage {
        ContextMessage(id: UUID(), role: role, contentJSON: "[]", text: text, ord: ord, step: step, tool: false)
    }

    @Test func mockEmbeddingModelNamesCarryDimensionsAndFaults() {
        let plain = MockEmbedding.Plan(model: "embed-64")
        #expect(plain.dimensions == 64 && plain.failures == 0 && !plain.permanent)
        let flaky = MockEmbedding.Plan(model: "embed-8-fail-2")
        #expect(flaky.dimensions == 8 && flaky.failures == 2 && !flaky.permanent)
        #expect(MockEmbedding.Plan(model: "embed-8-fail-permanent").permanent)
        #expect(MockEmbedding.Plan(model: "text-embedding-3-small").dimensions == nil)
        #expect(MockEmbedding.Plan(model: "embed-0").dimensions == nil)
    }

    @Test func mockModelEmbedsAndFailsAsItsNameSays() async throws {
        let model = MockModel()
        let (vectors, tokens) = try await model.embed(model: "embed-12", inputs: ["a zebra", "a zebra", "the zoo"])
        #expect(vectors.count == 3 && vectors.allSatisfy { $0.count == 12 } && vectors[0] == vectors[1] && tokens == 6)
        let name = "embed-4-fail-1-\(UUID())"
        await #expect(throws: GenerationError.self) { try await model.embed(model: name, inputs: ["x"]) }
        #expect(try await model.embed(model: name, inputs: ["x"]).vectors.count == 1)
        do {
            _ = try await model.embed(model: "embed-4-fail-permanent", inputs: ["x"])
            Issue.record("a fail-permanent model embedded")
        } catch let error as GenerationError {
            #expect(error.kind == .permanent)
        }
    }

    @Test func contextSearchIsOnOnlyWhenItSearches() throws {
        let agent = AgentRecord(
            name: "a", model: "mock:m", instructions: nil, tools: [], embeddingModel: "mock:embed-8",
            options: try JSONValue.parse(#"{"context": {"search": {"text": true, "limit": 3}}}"#))
        let on = try GenerationSettings(agent: agent, threadOptions: nil, jobOptions: .object([:]))
        #expect(on.search?["limit"] == .number(3) && !on.searchesVectors)
        // A job's context replaces the agent's (one level deep), so it can turn search off.
        let off = try GenerationSettings(
            agent: agent, threadOptions: nil,
            jobOptions: try JSONValue.parse(#"{"context": {"recent_messages": 5}}"#))
        #expect(off.search == nil)
        let zero = try GenerationSettings(
            agent: agent, threadOptions: nil,
            jobOptions: try JSONValue.parse(#"{"context": {"search": {"vector": true, "limit": 0}}}"#))
        #expect(zero.search == nil)
        let vector = try GenerationSettings(
            agent: agent, threadOptions: try JSONValue.parse(#"{"context": {"search": {"vector": true}}}"#),
            jobOptions: .object([:]))
        #expect(vector.searchesVectors)
    }

    @Test func searchHitsComeFirstAndTheWindowIsCutAtATurn() {
        let assembler = ContextAssembler(limit: 3)
        let recent = [
            Self.row(.assistant, "partial", ord: 3, step: 1), Self.row(.user, "q4", ord: 4, step: 0),
            Self.row(.assistant, "a4", ord: 4, step: 1), Self.row(.user, "prompt", ord: 5, step: 0)
        ]
        #expect(assembler.window(Array(recent.suffix(3)), promptOrd: 5).map(\.text) == ["prompt"])
        #expect(assembler.window(recent, promptOrd: 5).map(\.text) == ["q4", "a4", "prompt"])
        let hits = [Self.row(.user, "old question", ord: 1, step: 0), Self.row(.assistant, "old answer", ord: 1, step: 1)]
        let messages = assembler.assemble(messages: recent, search: hits, promptOrd: 5, promptStep: 0, promptText: nil)
        #expect(messages.map(\.text) == ["old question", "old answer", "q4", "a4", "prompt"])
        #expect(messages.map(\.role) == [.user, .assistant, .user, .assistant, .user])
    }

    @Test func embedRequestsAreCutByCountAndSize() {
        let runner = EmbedRunner(
            models: ModelRegistry(),
            store: MemoryStore(
                client: .init(
                    configuration: .init(
                        host: "127.0.0.1", username: "x", password: nil, database: nil, tls: .disable)), workerID: "w"),
            maxInputsPerRequest: 3, maxCharactersPerRequest: 10)
        let inputs = ["aaaa", "bbbb", "cc", "d", "eeeeeeeeeeee", "f"].map {
            MemoryStore.EmbedInput(messageID: UUID(), input: $0, inputMD5: "")
        }
        // 4+4 fit, +2 = 10 fits but makes 3 inputs; a 12-character input goes alone (never dropped).
        #expect(runner.requests(inputs).map { $0.map(\.input) } == [["aaaa", "bbbb", "cc"], ["d"], ["eeeeeeeeeeee"], ["f"]])
    }

    @Test func vectorsTravelAsPgvectorText() {
        #expect(MemoryStore.text(of: [1, 0.5, -2]) == "[1.0,0.5,-2.0]")
        #expect(MemoryStore.parse(vector: "[1,0.5,-2]") == [1, 0.5, -2])
    }
}
