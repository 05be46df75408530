import AgentQueue
import Foundation
import Logging

/// A swift-log handler writing one JSON object per line to stderr (`--log-format json`), for log
/// shippers: `ts`, `level`, `label`, `message`, `source`, then the metadata (job, thread and worker
/// ids among them) as top-level keys. swift-log ships only a text handler, so this one is ours.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: JSONValue] = [:]
        let merged = self.metadata.merging(metadataProvider?.get() ?? [:]) { $1 }.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in merged { fields[key] = Self.json(value) }
        fields["ts"] = .string(Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(Date()))
        fields["level"] = .string(event.level.rawValue)
        fields["label"] = .string(label)
        fields["message"] = .string(event.message.description)
        fields["source"] = .string(event.source)
        if let error = event.error { fields["error"] = .string("\(error)") }
        FileHandle.standardError.write(Data((JSONValue.object(fields).jsonString + "\n").utf8))
    }

    private static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): .string(s)
        case .stringConvertible(let c): .string(c.description)
        case .array(let items): .array(items.map(json))
        case .dictionary(let d): .object(d.mapValues(json))
        }
    }
}
