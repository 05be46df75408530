import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Synchronization

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Enqueue a prompt and print the reply as it streams (via LISTEN). Exits non-zero when the job fails.",
        discussion: "Without --thread a new thread is created; its id is printed on stderr so you can continue it.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Thread to continue (uuid).")
    var thread: String?

    @Option(help: "Agent to answer (a row of agentq.agents).")
    var agent: String = "default"

    @Option(help: "User id for a new thread.")
    var user: String?

    @Option(help: "Job options as a JSON object, e.g. '{\"priority\": -1}'.")
    var options: String = "{}"

    @Option(help: "Seconds to wait for the reply.")
    var timeout: Double = 300

    @Argument(help: "The prompt.")
    var prompt: String

    func run() async throws {
        let logger = try database.makeLogger()
        let threadID = try parseThread(thread)
        guard let optionsJSON = try? JSONValue.parse(options), optionsJSON.objectValue != nil else {
            fail("--options must be a JSON object, got \(options)")
        }
        let (prompt, agent, user, timeout) = (self.prompt, self.agent, self.user, self.timeout)
        do {
            let result = try await withClient(try database.resolve(), logger: logger) { client in
                let producer = ProducerStore(client: client)
                let thread: UUID
                if let threadID { thread = threadID } else { thread = try await producer.createThread(userID: user, logger: logger) }
                let turn = ReplyPrinter(client: client, thread: thread, logger: logger)
                do {
                    let result = try await turn.send(prompt, agent: agent, options: optionsJSON, timeout: timeout)
                    if threadID == nil { FileHandle.standardError.write(Data("thread: \(thread)\n".utf8)) }
                    return result
                } catch let failed as EnqueueFailed {
                    // Nothing was enqueued: the thread made for it goes too.
                    if threadID == nil { try? await producer.deleteThread(thread, logger: logger) }
                    throw failed.underlying
                }
            }
            guard result.status == "succeeded" else {
                fail("job \(result.status): \(result.error ?? "no error recorded")")
            }
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}

/// A `--thread` value as a uuid (nil when absent); exits with a reason when malformed.
func parseThread(_ text: String?) throws -> UUID? {
    guard let text else { return nil }
    guard let id = UUID(uuidString: text) else { fail("--thread must be a uuid, got \"\(text)\"") }
    return id
}

/// One turn in the terminal: enqueue, print the reply's deltas as they arrive, return the result.
struct ReplyPrinter: Sendable {
    let client: PostgresClient
    let thread: UUID
    let logger: Logger

    /// Sends `prompt` and prints the reply, then a newline. Each element of `interrupts` cancels the job.
    func send(
        _ prompt: String, agent: String, options: JSONValue = .object([:]), timeout: Double,
        interrupts: AsyncStream<Void>? = nil
    ) async throws -> JobResult {
        let producer = ProducerStore(client: client)
        let job = JobBox()
        let follower = ThreadFollower(client: client, threadID: thread, logger: logger)
        let enqueue: @Sendable () async throws -> Void = {
            do {
                job.set(try await producer.generate(threadID: thread, prompt: prompt, agent: agent, options: options, logger: logger))
            } catch {
                throw EnqueueFailed(underlying: error)
            }
        }
        let printed = try await follower.withEvents(ready: enqueue) { events in
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    var printedAny = false
                    for try await event in events {
                        guard let id = job.get(), event.jobID == id else { continue }
                        if event.type == "stream.delta", let text = event.text, !text.isEmpty {
                            printOut(text)
                            printedAny = true
                        }
                        if event.isJobFinal { break }
                    }
                    return printedAny
                }
                if let interrupts {
                    group.addTask {
                        for await _ in interrupts {
                            guard let id = job.get() else { continue }
                            printOut(" [stopping]")
                            _ = try await producer.cancel(id, logger: logger)
                        }
                        try await Task.sleep(for: .seconds(365 * 86_400))  // never the first to finish
                        return false
                    }
                }
                group.addTask {  // the fallback when a notification is missed: poll the result
                    while true {
                        try await Task.sleep(for: .seconds(1))
                        if let id = job.get(), try await producer.jobResult(id, logger: logger).isFinal {
                            try await Task.sleep(for: .milliseconds(200))  // let the last events print first
                            return false
                        }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                    var status = "not enqueued"
                    if let id = job.get() { status = try await producer.jobResult(id, logger: logger).status }
                    throw AgentQueueError(.jobFailed, "no reply within \(timeout) s (the job is \(status); is a worker running?)")
                }
                defer { group.cancelAll() }
                return try await group.next() ?? false
            }
        }
        guard let id = job.get() else { throw AgentQueueError(.jobFailed, "the prompt was not enqueued") }
        let result = try await producer.jobResult(id, logger: logger)
        if !printed, result.status == "succeeded" {
            printOut(result.text ?? result.object.map(\.jsonString) ?? "")
        }
        printOut("\n")
        return result
    }
}

/// The prompt was not enqueued (an unknown thread or agent, bad options): nothing to wait for.
struct EnqueueFailed: Error {
    let underlying: any Error
}

/// The job id of a turn, set once it is enqueued.
final class JobBox: Sendable {
    private let value = Mutex<Int64?>(nil)
    func set(_ id: Int64) { value.withLock { $0 = id } }
    func get() -> Int64? { value.withLock { $0 } }
}
