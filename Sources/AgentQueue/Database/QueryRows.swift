import PostgresNIO

/// The rows of one statement, read in full before its connection went back to the pool (so a
/// deadline can close that connection). Decoding mirrors `PostgresRowSequence`, so the stores read
/// `for try await (a, b) in rows.decode((A, B).self)` either way.
public struct QueryRows: Sendable {
    public let rows: [PostgresRow]

    public init(_ rows: [PostgresRow]) {
        self.rows = rows
    }

    /// All rows (the statement already ran; `async` keeps call sites shaped like PostgresNIO's).
    public func collect() async -> [PostgresRow] { rows }

    /// The rows decoded as `types`, in order.
    public func decode<each Column: PostgresDecodable>(
        _ types: (repeat each Column).Type, file: String = #fileID, line: Int = #line
    ) -> DecodedRows<(repeat each Column)> {
        DecodedRows(rows: rows) { row in try row.decode((repeat each Column).self, file: file, line: line) }
    }
}

/// The decoded rows of a `QueryRows`, as an async sequence (a decoding error ends it with that error).
public struct DecodedRows<Element>: AsyncSequence {
    let rows: [PostgresRow]
    let decodeRow: (PostgresRow) throws -> Element

    public struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: IndexingIterator<[PostgresRow]>
        let decodeRow: (PostgresRow) throws -> Element

        public mutating func next() async throws -> Element? {
            guard let row = remaining.next() else { return nil }
            return try decodeRow(row)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(remaining: rows.makeIterator(), decodeRow: decodeRow)
    }
}
