import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Events still over NOTIFY's 8000 bytes once their text is dropped go out as their ids, type and
/// status, from every path that sends them, instead of failing the job ("payload string too long").
extension StallTests {
    /// Runs `body` while listening on `thread`'s channel; returns the payloads heard until the
    /// `count`th of type `until`.
    static func heard(
        _ client: PostgresClient, thread: UUID, until type: String, count: Int = 1,
        _ body: @Sendable @escaping () async throws -> Void
    ) async throws -> [String] {
        let channel: String = try await client.scalar("SELECT agentq.thread_channel(\(thread))")
        return try await client.withConnection { conn in
            try await conn.listen(on: channel) { notes -> [String] in
                try await body()
                var payloads: [String] = []
                for try await note in notes {
                    payloads.append(note.payload)
                    if payloads.filter({ ThreadEvent.parse($0)?.type == type }).count == count { break }
                }
                return payloads
            }
        }
    }

    /// A job parked on a client tool call whose arguments are 9,000+ bytes: its job.requires_action
    /// event (which carries the pending calls) is sent without them, and the park commits.
    @Test(.timeLimit(.minutes(1)))
    func aRequiresActionEventWithHugeToolArgumentsParksTheJob() async throws {
        try await TestDatabase.with("stall_big_requires_action") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let (job, thread) = try await Self.claimedOnNewThread(client, store)
            let arguments = String((0..<9_500).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
            let pending: JSONValue = .array([
                .object(["tool_call_id": .string("call_1"), "tool_name": .string("ask_size"), "args": .object(["q": .string(arguments)])])
            ])
            let parked = FinishItem(
                jobID: job.id, attempt: job.attempt, outcome: .requiresAction,
                result: JobResultPayload(text: nil, messageIDs: [], usage: nil, pendingToolCalls: pending))
            let payloads = try await Self.heard(client, thread: thread, until: "job.requires_action") {
                #expect((try? await store.finish([parked], logger: TestDatabase.logger)[job.id]) == true)
            }
            #expect(try await Self.status(client, job.id) == "requires_action")
            let event = payloads.last.flatMap(ThreadEvent.parse)
            #expect(event?.type == "job.requires_action" && event?.jobID == job.id && event?.truncated == true)
            #expect(payloads.allSatisfy { $0.utf8.count < 8000 })
            // The pending calls are in the row for whoever reads it.
            let stored: Int = try await client.scalar(
                "SELECT octet_length(result->'pending_tool_calls'->0->'args'->>'q') FROM agentq.jobs WHERE id = \(job.id)")
            #expect(stored == arguments.utf8.count)
        }
    }

    /// A model tool-call id of 8,000+ characters, saved by begin_step and recorded with its result:
    /// the message.created event (which names the call) is sent without it, and the step commits.
    @Test(.timeLimit(.minutes(1)))
    func aHugeToolCallIDDoesNotFailTheStep() async throws {
        try await TestDatabase.with("stall_big_call_id") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let (job, thread) = try await Self.claimedOnNewThread(client, store)
            // Compressible, so the tool_calls key index takes it: what is under test is the event.
            let callID = "call_" + String(repeating: "x", count: 8_200)
            let step =
                #"{"message": {"id": "\#(UUID())", "content": [], "text": ""}, "calls": [{"tool_call_id": "\#(callID)", "#
                + #""tool_name": "place_order", "kind": "sql", "args": {}, "status": "done", "result": {"ok": true}}]}"#
            // Two message.created: the step's assistant message, then the call's result.
            let payloads = try await Self.heard(client, thread: thread, until: "message.created", count: 2) {
                try await client.run("SELECT agentq.begin_step('w', \(job.id), \(job.attempt)::int, \(step)::jsonb)")
            }
            #expect(payloads.allSatisfy { $0.utf8.count < 8000 })
            #expect(payloads.last.flatMap(ThreadEvent.parse)?.truncated == true)
            #expect(
                try await client.scalar(
                    "SELECT count(*)::int FROM agentq.tool_calls WHERE job_id = \(job.id) AND tool_call_id = \(callID) AND status = 'done'")
                    == 1)
            // The job ends normally after it.
            #expect(try await store.finish([Self.finished(job)], logger: TestDatabase.logger)[job.id] == true)
            #expect(try await Self.status(client, job.id) == "succeeded")
        }
    }
}
