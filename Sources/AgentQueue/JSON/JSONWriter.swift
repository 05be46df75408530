/// Appends JSON text to a byte buffer. Hand-written because Foundation's JSONEncoder was the largest
/// cost of a worker finishing thousands of jobs a second (profiled: 14% of worker CPU); the shapes
/// written here are few and fixed (FinishItem and its parts).
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    private var needsComma = [false]

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separator() {
        if needsComma[needsComma.count - 1] { bytes.append(UInt8(ascii: ",")) }
        needsComma[needsComma.count - 1] = true
    }

    mutating func beginObject() { separator(); bytes.append(UInt8(ascii: "{")); needsComma.append(false) }
    mutating func endObject() { bytes.append(UInt8(ascii: "}")); needsComma.removeLast() }
    mutating func beginArray() { separator(); bytes.append(UInt8(ascii: "[")); needsComma.append(false) }
    mutating func endArray() { bytes.append(UInt8(ascii: "]")); needsComma.removeLast() }

    /// Writes `"key":` inside an object; the next value follows without a comma.
    mutating func key(_ key: String) {
        separator()
        appendQuoted(key)
        bytes.append(UInt8(ascii: ":"))
        needsComma[needsComma.count - 1] = false
    }

    mutating func string(_ s: String) { separator(); appendQuoted(s) }
    mutating func int(_ n: Int) { separator(); bytes.append(contentsOf: String(n).utf8) }
    mutating func int64(_ n: Int64) { separator(); bytes.append(contentsOf: String(n).utf8) }
    mutating func bool(_ b: Bool) { separator(); bytes.append(contentsOf: (b ? "true" : "false").utf8) }
    mutating func null() { separator(); bytes.append(contentsOf: "null".utf8) }
    mutating func double(_ d: Double) {
        separator()
        if d.isFinite {
            if d == d.rounded(), abs(d) < 1e15 {
                bytes.append(contentsOf: String(Int64(d)).utf8)
            } else {
                bytes.append(contentsOf: "\(d)".utf8)
            }
        } else {
            bytes.append(contentsOf: "null".utf8)
        }
    }

    mutating func value(_ v: JSONValue) {
        switch v {
        case .null: null()
        case .bool(let b): bool(b)
        case .number(let n): double(n)
        case .string(let s): string(s)
        case .array(let a):
            beginArray()
            for e in a { value(e) }
            endArray()
        case .object(let o):
            beginObject()
            for k in o.keys.sorted() { key(k); value(o[k]!) }  // sorted: the same value, the same text
            endObject()
        }
    }

    /// Key and value, skipped when the value is nil.
    mutating func field(_ k: String, _ s: String?) { if let s { key(k); string(s) } }
    mutating func field(_ k: String, _ v: JSONValue?) { if let v { key(k); value(v) } }

    private mutating func appendQuoted(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [92, 92])
            case 0x0A: bytes.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0x00: continue  // jsonb cannot hold U+0000 (22P05): a model's NUL would poison the batch
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension JSONValue {
    /// This value as compact JSON text (object keys sorted).
    public var jsonString: String {
        var w = JSONWriter()
        w.value(self)
        return w.text
    }
}
