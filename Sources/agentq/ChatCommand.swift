import AgentQueue
import ArgumentParser
import Dispatch
import Foundation
import Logging
import Synchronization

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Talk with an agent in the terminal; replies stream as they are written.",
        discussion: """
            Type a prompt and press Enter. Ctrl-C stops the reply being written (the job is cancelled);
            Ctrl-C at the prompt, Ctrl-D or /quit leaves. /agent NAME switches agents; /history shows the thread.
            """)

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Thread to continue (uuid); default: a new thread.")
    var thread: String?

    @Option(help: "Agent to talk to.")
    var agent: String = "default"

    @Option(help: "User id for a new thread.")
    var user: String?

    @Option(help: "Seconds to wait for each reply.")
    var timeout: Double = 300

    func run() async throws {
        let logger = try database.makeLogger()
        let threadID = try parseThread(thread)
        let (user, timeout, firstAgent) = (self.user, self.timeout, self.agent)
        // Ctrl-C cancels the running reply (the turn in progress hears it through a stream); at the
        // prompt it leaves.
        signal(SIGINT, SIG_IGN)
        let interrupts = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        let turn = Mutex<AsyncStream<Void>.Continuation?>(nil)
        interrupts.setEventHandler {
            guard let current = turn.withLock({ $0 }) else { say(""); Foundation.exit(0) }
            current.yield()
        }
        interrupts.resume()
        defer { interrupts.cancel() }
        do {
            try await withClient(try database.resolve(), logger: logger) { client in
                let producer = ProducerStore(client: client)
                guard try await producer.agentExists(firstAgent, logger: logger) else {
                    throw AgentQueueError(.invalidInput, "unknown agent \"\(firstAgent)\" (agents are rows of agentq.agents)")
                }
                let thread: UUID
                if let threadID { thread = threadID } else { thread = try await producer.createThread(userID: user, logger: logger) }
                say("thread \(thread) with agent \(firstAgent). Ctrl-C stops a reply; /quit leaves.")
                try await Self.showHistory(producer, thread, logger)
                var agent = firstAgent
                let printer = ReplyPrinter(client: client, thread: thread, logger: logger)
                while true {
                    printOut("\(agent)> ")
                    guard let line = readLine() else { say(""); break }
                    let prompt = line.trimmingCharacters(in: .whitespaces)
                    if prompt.isEmpty { continue }
                    if prompt == "/quit" || prompt == "/exit" { break }
                    if prompt == "/history" { try await Self.showHistory(producer, thread, logger); continue }
                    if prompt.hasPrefix("/agent") {
                        let name = prompt.dropFirst(6).trimmingCharacters(in: .whitespaces)
                        if name.isEmpty {
                            say("usage: /agent NAME")
                        } else if try await producer.agentExists(name, logger: logger) {
                            agent = name
                            say("now talking to \(agent)")
                        } else {
                            say("[error: unknown agent \"\(name)\"; still talking to \(agent)]")
                        }
                        continue
                    }
                    let (stops, stop) = AsyncStream.makeStream(of: Void.self)
                    turn.withLock { $0 = stop }
                    do {
                        let result = try await printer.send(prompt, agent: agent, timeout: timeout, interrupts: stops)
                        if result.status != "succeeded" { say("[\(result.status): \(result.error ?? "no error recorded")]") }
                    } catch let failed as EnqueueFailed {
                        say("[error: \(describeDatabaseError(failed.underlying))]")
                    } catch {
                        say("[error: \(describeDatabaseError(error))]")
                    }
                    turn.withLock { $0 = nil }
                    stop.finish()
                }
                // A thread made for this chat that never got a message goes.
                if threadID == nil, (try? await producer.isEmpty(threadID: thread, logger: logger)) == true {
                    try? await producer.deleteThread(thread, logger: logger)
                }
            }
        } catch {
            fail(describeDatabaseError(error))
        }
    }

    static func showHistory(_ producer: ProducerStore, _ thread: UUID, _ logger: Logger) async throws {
        for m in try await producer.messages(threadID: thread, limit: 20, logger: logger) where m.role != "system" {
            let marker = m.status == "success" ? "" : " [\(m.status)]"
            say("\(m.role)\(marker): \(m.text)")
        }
    }
}
