import Synchronization
import Testing

@testable import AgentQueue

@Suite struct CatalogCacheTests {
    static func agent(_ name: String, _ instructions: String) -> AgentRecord {
        AgentRecord(name: name, model: "mock", instructions: instructions, tools: [], embeddingModel: nil, options: .object([:]))
    }

    @Test func rowsAndMissingNamesAreReadOnceUntilInvalidated() async throws {
        let cache = CatalogCache()
        let loads = Mutex<[[String]]>([])
        func load(_ names: [String]) -> [String: AgentRecord] {
            loads.withLock { $0.append(names) }
            return Dictionary(uniqueKeysWithValues: names.filter { $0 != "ghost" }.map { ($0, Self.agent($0, "v1")) })
        }
        let first = try await cache.agents(named: ["a", "ghost", "a"]) { load($0) }
        #expect(first.keys.sorted() == ["a"])
        let second = try await cache.agents(named: ["ghost", "a"]) { load($0) }
        #expect(second["a"]?.instructions == "v1")
        #expect(loads.withLock { $0 } == [["a", "ghost"]])  // the unknown name is remembered too
        cache.invalidate()
        _ = try await cache.agents(named: ["a"]) { load($0) }
        #expect(loads.withLock { $0 } == [["a", "ghost"], ["a"]])
    }

    @Test func aLoadOvertakenByAnInvalidationIsNotKept() async throws {
        let cache = CatalogCache()
        // The row changes (and the notification arrives) while the batch's load is in flight.
        let during = try await cache.agents(named: ["a"]) { _ in
            cache.invalidate()
            return ["a": Self.agent("a", "old")]
        }
        #expect(during["a"]?.instructions == "old")  // this batch read it before the change landed
        let after = try await cache.agents(named: ["a"]) { _ in ["a": Self.agent("a", "new")] }
        #expect(after["a"]?.instructions == "new")
    }
}
