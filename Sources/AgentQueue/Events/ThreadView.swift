import Foundation

/// A message as a UI shows it: saved rows and live deltas merged (Convex's `toUIMessages`).
public struct UIMessage: Sendable, Hashable {
    public var id: UUID
    public var role: String
    public var text: String
    /// `pending` (streaming), `success` or `failed`.
    public var status: String
    public var ord: Int
    public var step: Int
    public var jobID: Int64?

    public init(id: UUID, role: String, text: String, status: String, ord: Int, step: Int, jobID: Int64?) {
        self.id = id
        self.role = role
        self.text = text
        self.status = status
        self.ord = ord
        self.step = step
        self.jobID = jobID
    }
}

/// The messages of a thread as a UI shows them, kept current from saved rows and events (pure, as
/// `useThreadMessages` does): deltas grow pending messages (each `seq` once, in order), saved rows
/// win once they arrive. Events about saved rows put the message in `needsReload`; the caller reads
/// those rows (`ProducerStore.messages`) and passes them to `load`.
public struct ThreadView: Sendable {
    public private(set) var messages: [UIMessage] = []
    /// Messages whose saved row changed: read them and `load` them.
    public private(set) var needsReload: Set<UUID> = []
    private var tracker = DeltaTracker()
    /// Order of a message not saved yet: after everything known.
    private var unplaced = Int.max / 2

    public init() {}

    /// Merges saved rows: a saved row replaces the live view of its message, except that a pending
    /// row keeps the text its deltas already showed.
    public mutating func load(_ saved: [UIMessage]) {
        for row in saved {
            needsReload.remove(row.id)
            if let i = messages.firstIndex(where: { $0.id == row.id }) {
                var merged = row
                if row.status == "pending" && row.text.count < messages[i].text.count { merged.text = messages[i].text }
                messages[i] = merged
            } else {
                messages.append(row)
            }
        }
        messages.sort { ($0.ord, $0.step) < ($1.ord, $1.step) }
    }

    /// Applies one event; returns whether the view changed.
    @discardableResult
    public mutating func apply(_ event: ThreadEvent) -> Bool {
        guard let id = event.messageID else { return false }
        switch event.type {
        case "stream.delta":
            guard let stream = event.streamID, let seq = event.seq, tracker.accept(stream, seq) else { return false }
            let i = index(of: id, jobID: event.jobID)
            messages[i].text += event.text ?? ""
            return true
        case "stream.started":
            _ = index(of: id, jobID: event.jobID)
            return true
        case "message.created", "message.updated", "stream.finished", "stream.aborted":
            if event.type == "stream.aborted", let i = messages.firstIndex(where: { $0.id == id }) { messages[i].status = "failed" }
            needsReload.insert(id)
            return true
        default:
            return false
        }
    }

    /// The seq last applied per stream (to resume a `ThreadFollower` after a restart).
    public var lastSeen: [UUID: Int] { tracker.lastSeen }

    private mutating func index(of id: UUID, jobID: Int64?) -> Int {
        if let i = messages.firstIndex(where: { $0.id == id }) { return i }
        unplaced += 1
        messages.append(UIMessage(id: id, role: "assistant", text: "", status: "pending", ord: unplaced, step: 0, jobID: jobID))
        needsReload.insert(id)
        return messages.count - 1
    }
}
