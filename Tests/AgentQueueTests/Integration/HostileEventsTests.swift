import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Events against a hostile producer: PostgreSQL lets any session LISTEN on any channel and NOTIFY
/// any payload, so channel names are capabilities and a notification is only ever a hint.
@Suite struct HostileEventsTests {
    /// A `cancel:<id>` on `agentq_jobs` from any session stops nothing: the worker stops a job only
    /// when its row says the cancel was requested.
    @Test(.timeLimit(.minutes(2)))
    func aForgedCancelNotificationStopsNothing() async throws {
        try await TestDatabase.with("hostile_cancel") { owner, url in
            try await RolesTests.loginRole("agentq_test_producer", in: "agentq_producer", owner)
            let producer = RolesTests.url(url, user: "agentq_test_producer")
            let job: Int64 = try await RolesTests.session(producer, user: "bob") { bob in
                try await bob.scalar("SELECT agentq.generate(null, '[mock delay_ms=2500] a slow answer')")
            }
            let worker = try WorkerProcess(url: url)
            try await eventually(timeout: .seconds(30), "the job runs") {
                try await owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "running"
            }
            try await RolesTests.session(producer, user: "alice") { alice in
                try await alice.run("SELECT pg_notify('agentq_jobs', 'cancel:' || \(job))")
            }
            try await eventually(timeout: .seconds(30), "the job ends") {
                try await owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") != "running"
            }
            #expect(try await owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "succeeded")
            // A real cancel still stops a running job at once.
            let second: Int64 = try await RolesTests.session(producer, user: "bob") { bob in
                let id: Int64 = try await bob.scalar("SELECT agentq.generate(null, '[mock delay_ms=20000] stuck')")
                try await eventually(timeout: .seconds(30), "the second job runs") {
                    try await owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(id)") == "running"
                }
                try await bob.run("SELECT agentq.cancel(\(id))")
                return id
            }
            try await eventually(timeout: .seconds(10), "the cancelled job ends") {
                try await owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(second)") == "cancelled"
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    /// Alice, listening on every channel name she can know or guess, hears nothing of bob's
    /// generation; she cannot name his thread's channel, the all-threads channel, or see his
    /// registrations as a listener.
    @Test(.timeLimit(.minutes(2)))
    func aProducerHearsNothingOfAnotherUsersThreads() async throws {
        try await TestDatabase.with("hostile_listen") { owner, url in
            try await RolesTests.loginRole("agentq_test_producer", in: "agentq_producer", owner)
            let producer = RolesTests.url(url, user: "agentq_test_producer")
            let bobThread: UUID = try await RolesTests.session(producer, user: "bob") { bob in
                try await bob.scalar("SELECT agentq.create_thread(title => 'private')")
            }
            let guessed = ["agentq_events", "agentq_thread_" + bobThread.uuidString.lowercased().replacingOccurrences(of: "-", with: "")]
            let worker = try WorkerProcess(url: url)
            let heard: [String] = try await ProducerSession.withConnection(producer, user: "alice") { alice, conn in
                #expect(await expectError(alice, "SELECT agentq.thread_channel(\(bobThread))", "P0002").contains("not found"))
                #expect(await expectError(alice, "SELECT agentq.events_channel()", "42501").contains("every thread"))
                #expect(await expectError(alice, "SELECT agentq.listen(NULL)", "42501").contains("every thread"))
                #expect(await expectError(alice, "SELECT agentq.listen(\(bobThread))", "P0002").contains("not found"))
                return try await Self.listening(conn, guessed[...]) { sequences in
                    // Bob follows his thread and generates; the worker streams the reply.
                    try await RolesTests.session(producer, user: "bob") { bob in
                        try await bob.run("SELECT agentq.listen(\(bobThread))")
                        #expect(try await alice.scalar("SELECT count(*)::int FROM agentq.listeners") == 0, "bob's registration is his")
                        try await alice.run("DELETE FROM agentq.listeners")
                        #expect(try await owner.scalar("SELECT count(*)::int FROM agentq.listeners") == 1, "alice deleted nothing")
                        let job: Int64 = try await bob.scalar("SELECT agentq.generate(\(bobThread), 'my PIN is 4921 [mock words=12]')")
                        try await eventually(timeout: .seconds(30), "bob's job succeeded") {
                            try await owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "succeeded"
                        }
                    }
                    // A marker on each channel ends its count (notifications arrive in commit order).
                    let marker = "end-\(UUID())"
                    var received: [String] = []
                    for (channel, notes) in zip(guessed, sequences) {
                        try await owner.run("SELECT pg_notify(\(channel), \(marker))")
                        for try await note in notes {
                            if note.payload == marker { break }
                            received.append(note.payload)
                        }
                    }
                    return received
                }
            }
            #expect(heard.isEmpty, "alice heard: \(heard)")
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    /// A forged `stream.delta` (the next seq, other text) on a thread's channel changes nothing a
    /// follower reads: deltas come from their rows.
    @Test(.timeLimit(.minutes(2)))
    func aForgedDeltaChangesNothingAFollowerReads() async throws {
        try await TestDatabase.with("hostile_delta") { client, url in
            let producer = ProducerStore(client: client)
            let thread = try await producer.createThread(logger: TestDatabase.logger)
            let channel: String = try await client.scalar("SELECT agentq.thread_channel(\(thread))")
            let worker = try WorkerProcess(url: url)
            let follower = ThreadFollower(client: client, threadID: thread, logger: TestDatabase.logger)
            let deltas: [ThreadEvent] = try await follower.withEvents(ready: {
                _ = try await producer.generate(
                    threadID: thread, prompt: "[mock words=12 tps=4] a streamed answer", logger: TestDatabase.logger)
            }) { events in
                var seen: [ThreadEvent] = []
                var forged = false
                for try await event in events {
                    if event.type == "stream.delta", let stream = event.streamID, let seq = event.seq {
                        seen.append(event)
                        if !forged {
                            forged = true
                            let fake: JSONValue = .object([
                                "type": .string("stream.delta"), "thread_id": .string(thread.uuidString.lowercased()),
                                "stream_id": .string(stream.uuidString.lowercased()), "seq": .number(Double(seq + 1)),
                                "text": .string(" FORGED")
                            ])
                            try await client.run("SELECT pg_notify(\(channel), \(fake.jsonString))")
                        }
                    }
                    if event.isJobFinal { break }
                }
                return seen
            }
            let saved = try await producer.messages(threadID: thread, logger: TestDatabase.logger)
            #expect(deltas.map { $0.seq ?? -1 } == Array(0..<deltas.count))
            #expect(deltas.compactMap(\.text).joined() == saved.last?.text)
            #expect(!deltas.contains { $0.text?.contains("FORGED") == true })
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }
}

extension HostileEventsTests {
    /// LISTENs on every channel (through PostgresNIO, which must know each one) while `body` runs.
    static func listening<T: Sendable>(
        _ conn: PostgresConnection, _ channels: ArraySlice<String>, _ sequences: [PostgresNotificationSequence] = [],
        _ body: @Sendable ([PostgresNotificationSequence]) async throws -> T
    ) async throws -> T {
        guard let first = channels.first else { return try await body(sequences) }
        return try await conn.listen(on: first) { notes in
            try await listening(conn, channels.dropFirst(), sequences + [notes], body)
        }
    }
}

/// Sessions of a login role whose every connection acts for `user` (a startup setting), with one
/// connection at hand to LISTEN on beside the client to query.
enum ProducerSession {
    static func withConnection<T: Sendable>(
        _ url: DatabaseURL, user: String,
        _ body: @Sendable @escaping (PostgresClient, PostgresConnection) async throws -> T
    ) async throws -> T {
        var configuration = url.clientConfiguration(applicationName: "agentq-test", statementTimeout: .seconds(60), maximumConnections: 2)
        configuration.options.additionalStartupParameters.append(("agentq.user_id", user))
        return try await PostgresClient.withRunning(configuration, logger: TestDatabase.logger) { client in
            try await client.withConnection { conn in try await body(client, conn) }
        }
    }
}
