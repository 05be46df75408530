/// One server-sent event.
public struct SSEEvent: Sendable, Hashable {
    public var event: String?
    public var data: String
    public var id: String?

    public init(event: String? = nil, data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}

/// A streaming parser of `text/event-stream` bytes (the WHATWG rules), as a value type fed chunk by
/// chunk: chunk borders may fall anywhere, even between `\r` and `\n`. Hand-written because the
/// EventSource package does not build on Linux, and a synchronous byte parser is fast and testable.
///
/// - lines end with `\n`, `\r\n` or `\r`; a trailing `\r` waits for the next chunk;
/// - a blank line dispatches the event; an event without `data` is not dispatched;
/// - lines starting with `:` are comments (keep-alives);
/// - several `data:` lines join with `\n`; one space after the colon is dropped;
/// - an unterminated event at the end of the stream is dropped (`finish()`).
///
/// Bounded (README: Limits): a line over `Limits.sseLineBytes` or an event's data over
/// `Limits.sseEventBytes` stops the parser; `overflow` then says why and `feed` returns no more events.
public struct SSEParser: Sendable {
    /// Why the parser stopped: a line or an event's data past its cap (nil while it parses).
    public private(set) var overflow: String?
    private var line: [UInt8] = []
    private var pendingCR = false
    private var data: [UInt8] = []
    private var hasData = false
    private var event: String?
    private var lastID: String?

    public init() {}

    /// Feeds bytes; returns the events they complete, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [SSEEvent] {
        var events: [SSEEvent] = []
        guard overflow == nil else { return [] }
        for byte in bytes {
            if pendingCR {
                pendingCR = false
                if byte == UInt8(ascii: "\n") { continue }  // the \n of a \r\n split across chunks
            }
            switch byte {
            case UInt8(ascii: "\n"):
                endLine(into: &events)
            case UInt8(ascii: "\r"):
                endLine(into: &events)
                pendingCR = true
            default:
                guard line.count < Limits.sseLineBytes else {
                    overflow = "the model's stream sent a line over \(Limits.sseLineBytes) bytes"
                    return events
                }
                line.append(byte)
            }
            if overflow != nil { return events }
        }
        return events
    }

    /// The stream ended: an event not closed by a blank line is dropped.
    public mutating func finish() {
        self = SSEParser()
    }

    private mutating func endLine(into events: inout [SSEEvent]) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if hasData {
                events.append(SSEEvent(event: event, data: String(decoding: data, as: UTF8.self), id: lastID))
            }
            data.removeAll(keepingCapacity: true)
            hasData = false
            event = nil
            return
        }
        if line[0] == UInt8(ascii: ":") { return }
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let field = colon.map { line[..<$0] } ?? line[...]
        var value = colon.map { line[line.index(after: $0)...] } ?? []
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        switch String(decoding: field, as: UTF8.self) {
        case "data":
            guard data.count + value.count < Limits.sseEventBytes else {
                overflow = "the model's stream sent an event with over \(Limits.sseEventBytes) bytes of data"
                return
            }
            if hasData { data.append(UInt8(ascii: "\n")) }
            data.append(contentsOf: value)
            hasData = true
        case "event":
            event = String(decoding: value, as: UTF8.self)
        case "id":
            if !value.contains(0) { lastID = String(decoding: value, as: UTF8.self) }
        default:
            break  // `retry` and unknown fields: ignored
        }
    }
}
