/// The mock's embeddings: a bag of words hashed into `dimensions` buckets (FNV-1a), normalised, so
/// texts sharing words are close in cosine distance. Deterministic across runs and machines.
public enum MockEmbedding {
    public static func vector(for text: String, dimensions: Int) -> [Float] {
        var v = [Float](repeating: 0, count: max(dimensions, 1))
        for word in text.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }) {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in word.utf8 { hash = (hash ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
            v[Int(hash % UInt64(v.count))] += 1
        }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm == 0 { v[0] = 1; return v }
        return v.map { $0 / norm }
    }

    /// An input holding this is refused (HTTP 400 from `agentq mock-llm`), with the whole request.
    public static let refuseMarker = "[embed refuse]"

    public static func refuses(_ input: String) -> Bool { input.contains(refuseMarker) }

    /// What a mock embedding model's name asks for: `embed-64` gives 64 dimensions; `fail-2` in the
    /// name fails the first 2 requests for that model name (HTTP 500), `fail-permanent` every one
    /// (HTTP 400), so embed faults can be tested.
    public struct Plan: Sendable, Hashable {
        public var dimensions: Int?
        public var failures: Int
        public var permanent: Bool

        public init(model: String) {
            let parts = model.lowercased().split(separator: "-").map(String.init)
            func number(after word: String) -> Int? {
                guard let i = parts.firstIndex(of: word), i + 1 < parts.count else { return nil }
                return Int(parts[i + 1])
            }
            dimensions = number(after: "embed").flatMap { (1...16000).contains($0) ? $0 : nil }
            failures = number(after: "fail") ?? 0
            permanent = parts.contains("permanent")
        }
    }
}
