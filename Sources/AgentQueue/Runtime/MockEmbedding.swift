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
}
