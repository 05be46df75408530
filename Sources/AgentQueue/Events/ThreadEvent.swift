import Foundation

/// One event (README: Events), as it arrives in a NOTIFY payload.
public struct ThreadEvent: Codable, Sendable, Hashable {
    public var type: String
    public var threadID: UUID?
    public var jobID: Int64?
    public var messageID: UUID?
    public var streamID: UUID?
    public var seq: Int?
    public var status: String?
    public var text: String?
    public var truncated: Bool?

    public init(
        type: String, threadID: UUID?, jobID: Int64?, messageID: UUID?, streamID: UUID?, seq: Int?, status: String?,
        text: String?, truncated: Bool?
    ) {
        self.type = type
        self.threadID = threadID
        self.jobID = jobID
        self.messageID = messageID
        self.streamID = streamID
        self.seq = seq
        self.status = status
        self.text = text
        self.truncated = truncated
    }

    enum CodingKeys: String, CodingKey {
        case type, seq, status, text, truncated
        case threadID = "thread_id"
        case jobID = "job_id"
        case messageID = "message_id"
        case streamID = "stream_id"
    }

    /// Parses a NOTIFY payload; nil when it is not an event.
    public static func parse(_ payload: String) -> ThreadEvent? {
        try? JSONDecoder().decode(ThreadEvent.self, from: Data(payload.utf8))
    }

    /// The job reached a final status.
    public var isJobFinal: Bool { ["job.succeeded", "job.failed", "job.cancelled"].contains(type) }
}
