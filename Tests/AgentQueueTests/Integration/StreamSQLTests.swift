import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// The database side of streamed replies: open_streams and write_deltas, fenced and gap-free.
@Suite struct StreamSQLTests {
    /// A prompt's job claimed by worker "w", with its stream opened: the job, the stream store and
    /// the opening.
    static func claimOneAndOpenItsStream(_ client: PostgresClient) async throws -> (Int64, StreamStore, StreamStore.Opening) {
        let jobs = JobStore(client: client, workerID: "w")
        let streams = StreamStore(client: client, workerID: "w")
        let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'tell me')")
        let claimed = try await jobs.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger)
        let opening = StreamStore.Opening(jobID: job, attempt: claimed[0].attempt, model: "m", provider: "mock")
        #expect(try await streams.open([opening], logger: TestDatabase.logger) == [opening.streamID])
        return (job, streams, opening)
    }

    @Test func deltasAreContiguousFencedAndStopTheGenerationWhenCancelled() async throws {
        try await TestDatabase.with("stream_sql") { client, _ in
            let (job, streams, opening) = try await Self.claimOneAndOpenItsStream(client)
            #expect(
                try await client.scalar("SELECT status || ' ' || ord || '/' || step FROM agentq.messages WHERE id = \(opening.messageID)")
                    == "pending 0/1")

            let sid = opening.streamID
            var r = try await streams.write([.init(streamID: sid, attempt: 1, seq: 0, text: "Hel")], logger: TestDatabase.logger)
            #expect(r[sid]! == (true, false))
            r = try await streams.write([.init(streamID: sid, attempt: 1, seq: 2, text: "gap")], logger: TestDatabase.logger)
            #expect(r[sid]! == (false, true))  // a gap is refused
            let stale = StreamStore(client: client, workerID: "other")
            r = try await stale.write([.init(streamID: sid, attempt: 1, seq: 1, text: "stale")], logger: TestDatabase.logger)
            #expect(r[sid]! == (false, true))  // fenced: not this worker's job
            r = try await streams.write([.init(streamID: sid, attempt: 1, seq: 1, text: "lo")], logger: TestDatabase.logger)
            #expect(r[sid]! == (true, false))
            #expect(try await client.scalar("SELECT string_agg(text, '' ORDER BY seq) FROM agentq.stream_deltas") == "Hello")

            #expect(try await client.scalar("SELECT agentq.cancel(\(job))") == false)
            r = try await streams.write([.init(streamID: sid, attempt: 1, seq: 2, text: "!")], logger: TestDatabase.logger)
            #expect(r[sid]! == (true, true))  // written, and the worker must stop now
        }
    }

    @Test func oneTickWritesManyStreamsAndListenersSeeTheDeltas() async throws {
        try await TestDatabase.with("stream_tick") { client, _ in
            let jobs = JobStore(client: client, workerID: "w")
            let streams = StreamStore(client: client, workerID: "w")
            try await client.run("SELECT agentq.generate(null, 'p' || g) FROM generate_series(1, 50) g")
            let claimed = try await jobs.claim(queues: ["default"], limit: 50, lease: .seconds(30), logger: TestDatabase.logger)
            let openings = claimed.map { StreamStore.Opening(jobID: $0.id, attempt: $0.attempt, model: "m", provider: "mock") }
            #expect(try await streams.open(openings, logger: TestDatabase.logger).count == 50)
            let thread = claimed[0].threadID!
            let channel: String = try await client.scalar("SELECT agentq.thread_channel(\(thread))")
            let seen = try await client.withConnection { conn in
                try await conn.listen(on: channel) { events -> ThreadEvent? in
                    let r = try await streams.write(
                        openings.map { .init(streamID: $0.streamID, attempt: 1, seq: 0, text: "hi") },
                        logger: TestDatabase.logger)
                    #expect(r.values.allSatisfy { $0.written && !$0.stop })
                    for try await note in events {
                        if let e = ThreadEvent.parse(note.payload), e.type == "stream.delta" { return e }
                    }
                    return nil
                }
            }
            #expect(seen?.seq == 0 && seen?.text == "hi" && seen?.streamID == openings[0].streamID)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.stream_deltas") == 50)
        }
    }

    @Test func finishEndsTheStreamWithItsMessageAndPruneDropsOnlyEndedStreamsDeltas() async throws {
        try await TestDatabase.with("stream_finish") { client, _ in
            let jobs = JobStore(client: client, workerID: "w")
            let streams = StreamStore(client: client, workerID: "w")
            try await client.run("SELECT agentq.generate(null, 'p' || g) FROM generate_series(1, 2) g")
            let claimed = try await jobs.claim(queues: ["default"], limit: 2, lease: .seconds(30), logger: TestDatabase.logger)
            let (done, live) = (claimed[0], claimed[1])
            let openings = [done, live].map { StreamStore.Opening(jobID: $0.id, attempt: $0.attempt, model: "m", provider: "mock") }
            _ = try await streams.open(openings, logger: TestDatabase.logger)
            _ = try await streams.write(
                openings.map { .init(streamID: $0.streamID, attempt: 1, seq: 0, text: "Hel") },
                logger: TestDatabase.logger)
            let message = NewMessage(
                id: openings[0].messageID, text: "Hello", model: "m", provider: "mock",
                usage: TokenUsage(promptTokens: 1, completionTokens: 1), finishReason: "stop", agentName: "default")
            let item = FinishItem(
                jobID: done.id, attempt: done.attempt, outcome: .succeeded,
                result: JobResultPayload(text: "Hello", messageIDs: [message.id], usage: nil), messages: [message],
                stream: .init(streamID: openings[0].streamID, seq: 1, delta: "lo"))
            #expect(try await jobs.finish([item], logger: TestDatabase.logger)[done.id] == true)
            // The pending message became the reply (same id, no second row), the last delta landed, the stream ended.
            let rows = try await client.rows(
                """
                SELECT id, status, text FROM agentq.messages WHERE job_id = \(done.id) AND role = 'assistant'
                """, as: (UUID, String, String).self)
            #expect(rows.count == 1 && rows[0].0 == message.id && rows[0].1 == "success" && rows[0].2 == "Hello")
            #expect(
                try await client.scalar("SELECT status || ' ' || last_seq FROM agentq.streams WHERE id = \(openings[0].streamID)")
                    == "finished 1")
            #expect(
                try await client.scalar(
                    """
                    SELECT string_agg(text, '' ORDER BY seq) FROM agentq.stream_deltas WHERE stream_id = \(openings[0].streamID)
                    """) == "Hello")
            // Past delta_retention, an ended stream's deltas go; a live stream's stay.
            try await client.run("UPDATE agentq.streams SET updated_at = now() - interval '2 days'")
            let pruned: String = try await client.scalar("SELECT agentq.prune(1000)::text")
            #expect(pruned.contains("\"deltas\": 2"))
            #expect(
                try await client.scalar("SELECT count(*)::int FROM agentq.stream_deltas WHERE stream_id = \(openings[1].streamID)") == 1)
            #expect(
                try await client.scalar("SELECT count(*)::int FROM agentq.stream_deltas WHERE stream_id = \(openings[0].streamID)") == 0)
        }
    }
}

extension StreamSQLTests {
    /// A worker that lost the answer to a tick sends that delta again unchanged: it counts as written
    /// and does not stop the generation; the last delta, led by such a delta, adds only what did not
    /// land. (Before, the resend was a seq gap: a silent network cancelled streamed jobs.)
    /// A live stream's updated_at is the time of its last delta: a follower that lost its connection
    /// catches up on the streams updated since (ThreadFollower), so a tick must move it.
    @Test func eachTickMovesTheLiveStreamsUpdatedAt() async throws {
        try await TestDatabase.with("stream_updated_at") { client, _ in
            let (_, streams, opening) = try await Self.claimOneAndOpenItsStream(client)
            let sid = opening.streamID
            let opened: Date = try await client.scalar("SELECT updated_at FROM agentq.streams WHERE id = \(sid)")
            _ = try await streams.write([.init(streamID: sid, attempt: 1, seq: 0, text: "Hel")], logger: TestDatabase.logger)
            let afterTick: Date = try await client.scalar("SELECT updated_at FROM agentq.streams WHERE id = \(sid)")
            #expect(afterTick > opened)
            #expect(try await client.scalar("SELECT status FROM agentq.streams WHERE id = \(sid)") == "streaming")
        }
    }

    @Test func aTickSentAgainAfterItsAnswerWasLostIsADuplicateNotAStop() async throws {
        try await TestDatabase.with("stream_resend") { client, _ in
            let (job, streams, opening) = try await Self.claimOneAndOpenItsStream(client)
            let jobs = JobStore(client: client, workerID: "w")
            let sid = opening.streamID
            let first = StreamStore.Delta(streamID: sid, attempt: 1, seq: 0, text: "Hel")
            #expect(try await streams.write([first], logger: TestDatabase.logger)[sid]! == (true, false))
            #expect(try await streams.write([first], logger: TestDatabase.logger)[sid]! == (true, false))
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.stream_deltas WHERE stream_id = \(sid)") == 1)
            // The same seq with other text is not a resend: the worker stops.
            let other = StreamStore.Delta(streamID: sid, attempt: 1, seq: 0, text: "Hex")
            #expect(try await streams.write([other], logger: TestDatabase.logger)[sid]! == (false, true))
            // The last delta leads with "Hel" again (seq 0) and carries the rest of the reply.
            let message = NewMessage(
                id: opening.messageID, text: "Hello", model: "m", provider: "mock",
                usage: TokenUsage(promptTokens: 1, completionTokens: 1), finishReason: "stop", agentName: "default")
            let item = FinishItem(
                jobID: job, attempt: opening.attempt, outcome: .succeeded,
                result: JobResultPayload(text: "Hello", messageIDs: [message.id], usage: nil), messages: [message],
                stream: .init(streamID: sid, seq: 0, delta: "Hello"))
            #expect(try await jobs.finish([item], logger: TestDatabase.logger)[job] == true)
            let deltas = try await client.rows(
                "SELECT seq, text FROM agentq.stream_deltas WHERE stream_id = \(sid) ORDER BY seq", as: (Int, String).self)
            #expect(deltas.map(\.0) == [0, 1] && deltas.map(\.1) == ["Hel", "lo"])
        }
    }

    /// An event too big for a NOTIFY even without its text (large tool arguments in a result) goes
    /// out as its ids, type and status, marked truncated, instead of failing the transaction.
    @Test func anEventTooBigForANotifyKeepsItsIdsAndFailsNothing() async throws {
        try await TestDatabase.with("stream_big_event") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let channel: String = try await client.scalar("SELECT agentq.thread_channel(\(thread))")
            let seen = try await client.withConnection { conn in
                try await conn.listen(on: channel) { events -> ThreadEvent? in
                    try await client.run(
                        """
                        SELECT agentq.emit(jsonb_build_object('type', 'job.requires_action', 'thread_id', \(thread)::text,
                                           'job_id', 7, 'status', 'requires_action', 'text', repeat('t', 9000),
                                           'result', jsonb_build_object('args', repeat('a', 9000))))
                        """)
                    for try await note in events {
                        #expect(note.payload.utf8.count < 8000 && !note.payload.contains("aaaa"))
                        return ThreadEvent.parse(note.payload)
                    }
                    return nil
                }
            }
            #expect(seen?.type == "job.requires_action" && seen?.jobID == 7 && seen?.truncated == true)
        }
    }
}
