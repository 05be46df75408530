import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Enqueue a prompt, wait for the reply (via LISTEN), print it. Exits non-zero when the job fails.",
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
        let threadID: UUID?
        if let thread {
            guard let id = UUID(uuidString: thread) else { fail("--thread must be a uuid, got \"\(thread)\"") }
            threadID = id
        } else {
            threadID = nil
        }
        guard let optionsJSON = try? JSONValue.parse(options), optionsJSON.objectValue != nil else {
            fail("--options must be a JSON object, got \(options)")
        }
        let (prompt, agent, user, timeout) = (self.prompt, self.agent, self.user, self.timeout)
        do {
            let url = try database.resolve()
            let result = try await withClient(url, logger: logger) { client in
                let producer = ProducerStore(client: client)
                let thread: UUID
                if let threadID { thread = threadID } else { thread = try await producer.createThread(userID: user, logger: logger) }
                let channel = try await scalar(client, "SELECT agentq.thread_channel(\(thread))", as: String.self, logger: logger)
                FileHandle.standardError.write(Data("thread: \(thread)\n".utf8))
                return try await client.withConnection { connection in
                    try await connection.listen(on: channel) { events in
                        let jobID = try await producer.generate(threadID: thread, prompt: prompt, agent: agent,
                                                                options: optionsJSON, logger: logger)
                        return try await waitForJob(jobID, events: events, producer: producer, timeout: timeout, logger: logger)
                    }
                }
            }
            guard result.status == "succeeded" else {
                fail("job \(result.status): \(result.error ?? "no error recorded")")
            }
            print(result.text ?? (result.object.flatMap { try? $0.jsonText() } ?? ""))
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}

/// Waits for a job's final event, with a poll of `job_result` every second as the fallback.
func waitForJob(_ jobID: Int64, events: PostgresNotificationSequence, producer: ProducerStore, timeout: Double,
                logger: Logger) async throws -> JobResult {
    try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            for try await note in events {
                if let event = ThreadEvent.parse(note.payload), event.jobID == jobID, event.isJobFinal { return true }
            }
            return false
        }
        group.addTask {
            while true {
                try await Task.sleep(for: .seconds(1))
                if try await producer.jobResult(jobID, logger: logger).isFinal { return true }
            }
        }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
            throw AgentQueueError(.jobFailed, "no reply within \(timeout) s (job \(jobID) is still \(try await producer.jobResult(jobID, logger: logger).status); is a worker running?)")
        }
        _ = try await group.next()
        group.cancelAll()
        return try await producer.jobResult(jobID, logger: logger)
    }
}
