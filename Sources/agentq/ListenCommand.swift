import AgentQueue
import ArgumentParser
import Foundation
import Logging

struct ListenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Print a thread's events (or every thread's) as they happen, until Ctrl-C.",
        discussion: "Reconnects by itself and catches up on deltas it missed. --json prints one event per line as sent.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Thread to follow (uuid).")
    var thread: String?

    @Flag(help: "Follow every thread (agentq.events_channel(); the owner, agentq_worker and agentq_reader may).")
    var all = false

    @Flag(help: "Print each event as a JSON line.")
    var json = false

    func validate() throws {
        guard (thread != nil) != all else { throw ValidationError("give either --thread ID or --all") }
    }

    func run() async throws {
        let logger = try database.makeLogger()
        let threadID = try parseThread(thread)
        let json = self.json
        do {
            try await withClient(try database.resolve(), logger: logger) { client in
                try await ThreadFollower(client: client, threadID: threadID, logger: logger).withEvents { events in
                    for try await event in events {
                        say(json ? (try? event.jsonText()) ?? "{}" : Self.line(event))
                    }
                }
            }
        } catch {
            fail(describeDatabaseError(error))
        }
    }

    /// One readable line per event.
    static func line(_ e: ThreadEvent) -> String {
        var parts = [e.type.padding(toLength: 16, withPad: " ", startingAt: 0)]
        if let t = e.threadID { parts.append("thread=\(t.uuidString.lowercased().prefix(8))") }
        if let j = e.jobID { parts.append("job=\(j)") }
        if let m = e.messageID { parts.append("message=\(m.uuidString.lowercased().prefix(8))") }
        if let s = e.seq { parts.append("seq=\(s)") }
        if let s = e.status { parts.append("status=\(s)") }
        if let t = e.text { parts.append(String(reflecting: t)) }
        if e.truncated == true { parts.append("(truncated)") }
        return parts.joined(separator: " ")
    }
}
