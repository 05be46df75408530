import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Following a thread from Swift: every delta once and in order, across a dropped connection, and
/// the UI view that merges deltas with saved rows.
@Suite struct FollowerTests {
    @Test(.timeLimit(.minutes(1)))
    func aFollowerSurvivesADroppedConnectionWithoutGapsOrDuplicates() async throws {
        try await TestDatabase.with("follow_reconnect") { client, url in
            let worker = try WorkerProcess(url: url)
            let producer = ProducerStore(client: client)
            let thread = try await producer.createThread(logger: TestDatabase.logger)
            let follower = ThreadFollower(client: client, threadID: thread, logger: TestDatabase.logger)
            let (view, events) = try await follower.withEvents(ready: {
                _ = try await producer.generate(
                    threadID: thread, prompt: "[mock words=60 tps=40] a long answer", logger: TestDatabase.logger)
            }) { stream in
                var view = ThreadView()
                var seen: [ThreadEvent] = []
                var dropped = false
                for try await event in stream {
                    seen.append(event)
                    view.apply(event)
                    if event.type == "stream.delta", event.seq == 2, !dropped {
                        dropped = true  // cut the follower's connection mid-stream
                        try await client.run(
                            """
                            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                             WHERE datname = current_database() AND pid <> pg_backend_pid()
                               AND (query LIKE 'LISTEN%agentq_t_%' OR query LIKE '%FROM agentq.streams s JOIN agentq.stream_deltas%')
                            """)
                    }
                    if !view.needsReload.isEmpty {
                        view.load(try await producer.messages(threadID: thread, ids: Array(view.needsReload), logger: TestDatabase.logger))
                    }
                    if event.isJobFinal { break }
                }
                return (view, seen)
            }
            let deltas = events.filter { $0.type == "stream.delta" }
            #expect(deltas.map { $0.seq ?? -1 } == Array(0..<deltas.count), "every seq once, in order, across the reconnect")
            let saved = try await producer.messages(threadID: thread, logger: TestDatabase.logger)
            #expect(saved.map(\.text) == view.messages.map(\.text))
            #expect(deltas.compactMap(\.text).joined() == saved.last?.text)
            #expect(view.messages.last?.status == "success")
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }

    // A slow reply (4 s), so the follower joins mid-stream even on a loaded machine; the time limit
    // turns a follower that waits for an event that never comes into a failure, not a hang.
    @Test(.timeLimit(.minutes(1)))
    func aFollowerJoiningMidStreamReadsTheEarlierDeltasFirst() async throws {
        try await TestDatabase.with("follow_late") { client, url in
            let worker = try WorkerProcess(url: url)
            let producer = ProducerStore(client: client)
            let thread = try await producer.createThread(logger: TestDatabase.logger)
            let job = try await producer.generate(threadID: thread, prompt: "[mock words=40 tps=10] later", logger: TestDatabase.logger)
            try await eventually(timeout: .seconds(20), "some deltas written") {
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.stream_deltas d JOIN agentq.streams s ON s.id = d.stream_id WHERE s.job_id = \(job)
                    """) >= 2
            }
            let texts = try await ThreadFollower(client: client, threadID: thread, logger: TestDatabase.logger).withEvents { stream in
                var texts: [(Int, String)] = []
                for try await e in stream {
                    if e.type == "stream.delta" { texts.append((e.seq ?? -1, e.text ?? "")) }
                    if e.isJobFinal { break }
                }
                return texts
            }
            #expect(texts.map(\.0) == Array(0..<texts.count))
            let final: String = try await client.scalar(
                "SELECT text FROM agentq.messages WHERE job_id = \(job) AND role = 'assistant' AND status = 'success'")
            #expect(texts.map(\.1).joined() == final)
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }
}
