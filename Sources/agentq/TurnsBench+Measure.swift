import AgentQueue
import Foundation
import Logging
import PostgresNIO

extension TurnsBench {
    /// One turn as its client saw it: when it ended, and how long it took from the enqueue to the
    /// job's `job.succeeded`.
    struct Turn: Sendable {
        let ended: ContinuousClock.Instant
        let milliseconds: Double
    }

    /// Runs the turns against the bench database and its one worker, and reads the counters.
    struct Runner: Sendable {
        let url: DatabaseURL
        /// The worker process, whose CPU is read from /proc.
        let worker: Int32
        let seconds: Int
        let warmup: Double
        let follow: Follow
        let logger: Logger

        /// Waits for the worker to wait for jobs, then runs one turn and checks that it is the turn
        /// the bench means: one `lookup` call that succeeded, then an answer of `answerWords` words.
        func probe() async throws {
            let logger = self.logger
            try await withClient(url, statementTimeout: nil, maximumConnections: 2, logger: logger) { client in
                let deadline = ContinuousClock.now + .seconds(30)
                while try await scalar(
                    client, "SELECT count(*)::int FROM agentq.worker_registry WHERE waiting", as: Int.self, logger: logger) == 0
                {
                    guard ContinuousClock.now < deadline else { throw AgentQueueError(.configuration, "the worker did not start in 30 s") }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let thread = try await scalar(client, "SELECT agentq.create_thread('bench-turns-probe')", as: UUID.self, logger: logger)
                _ = try await Self.turns(on: thread, client, logger: logger, while: { $0 < 1 })
                let calls = try await scalar(
                    client,
                    """
                    SELECT count(*)::int FROM agentq.tool_calls
                     WHERE thread_id = \(thread) AND tool_name = 'lookup' AND status = 'done' AND NOT is_error
                    """, as: Int.self, logger: logger)
                let answer = try await scalar(
                    client,
                    """
                    SELECT coalesce(text, '') FROM agentq.messages WHERE thread_id = \(thread) AND role = 'assistant'
                     ORDER BY ord DESC, step DESC LIMIT 1
                    """, as: String.self, logger: logger)
                guard calls == 1, MockPlan.words(answer) == TurnsBench.answerWords else {
                    throw AgentQueueError(
                        .jobFailed,
                        "the probe turn is not the bench's turn: \(calls) lookup calls (want 1), answer \"\(answer)\" "
                            + "(want \(TurnsBench.answerWords) words)")
                }
            }
        }

        /// One run: `clients` producers, each on a thread of its own and a connection of its own (held
        /// for the whole run, so no backend exits inside the window), run turns for the warm-up and
        /// the measured seconds; the counters are read where the warm-up ends and where the run ends,
        /// and the turns that ended between the two readings are the run's.
        func measure(clients: Int) async throws -> RunFigures {
            let (seconds, warmup, worker, follow, logger) = (self.seconds, self.warmup, self.worker, self.follow, self.logger)
            return try await withClient(url, statementTimeout: nil, maximumConnections: clients + 3, logger: logger) { client in
                // A checkpoint first, so that each run starts alike (the full-page images that follow a
                // checkpoint count in every run) instead of one run meeting a timed checkpoint by chance.
                _ = try? await client.query("CHECKPOINT", logger: logger).collect()
                let postmaster = try await ServerCPU.postmaster(client, logger: logger)
                let threads = try await client.query(
                    "SELECT agentq.create_thread('bench-turns') FROM generate_series(1, \(clients)::int)", logger: logger
                ).decode(UUID.self).reduce(into: [UUID]()) { $0.append($1) }
                let follower = follow == .shared ? SharedFollower() : nil
                let channels =
                    follower == nil
                    ? []
                    : try await client.query("SELECT agentq.thread_channel(t) FROM unnest(\(threads)::uuid[]) t", logger: logger)
                        .decode(String.self).reduce(into: [String]()) { $0.append($1) }
                let (listening, listened) = AsyncStream<Void>.makeStream()
                return try await withThrowingTaskGroup(of: Void.self, returning: RunFigures.self) { background in
                    if let follower {
                        background.addTask {
                            do {
                                try await client.withConnection { connection in
                                    try await follower.run(on: connection, channels: channels) { listened.yield() }
                                }
                            } catch {
                                follower.fail(error)
                            }
                        }
                        for await _ in listening { break }
                    }
                    let figures = try await Self.run(
                        threads, client, follower: follower, warmup: warmup, seconds: seconds, postmaster: postmaster,
                        worker: worker, url: url, logger: logger)
                    background.cancelAll()
                    return figures
                }
            }
        }

        /// The clients' turns for the warm-up and the measured seconds, and the counters around the
        /// measured seconds.
        private static func run(
            _ threads: [UUID], _ client: PostgresClient, follower: SharedFollower?, warmup: Double, seconds: Int,
            postmaster: Int32?, worker: Int32, url: DatabaseURL, logger: Logger
        ) async throws -> RunFigures {
            let clients = threads.count
            let start = ContinuousClock.now + .seconds(warmup)
            let stop = start + .seconds(seconds)
            async let window = Self.window(url, from: start, to: stop, postmaster: postmaster, worker: worker, logger: logger)
            let turns = try await withThrowingTaskGroup(of: [Turn].self) { group in
                for thread in threads {
                    group.addTask {
                        if let follower {
                            return try await Self.turns(
                                on: thread, client, follower: follower, logger: logger, while: { _ in ContinuousClock.now < stop })
                        }
                        return try await Self.turns(on: thread, client, logger: logger, while: { _ in ContinuousClock.now < stop })
                    }
                }
                group.addTask {
                    try await Task.sleep(until: stop + .seconds(120))
                    throw AgentQueueError(.jobFailed, "turns still unfinished 2 minutes after the run's end (is the worker alive?)")
                }
                var all: [Turn] = []
                for _ in threads {
                    if let some = try await group.next() { all += some }
                }
                group.cancelAll()
                return all
            }
            let (before, after) = try await window
            let measured = turns.filter { $0.ended >= before.at && $0.ended < after.at }
            guard !measured.isEmpty else {
                throw AgentQueueError(.jobFailed, "no turn ended inside the \(seconds) s window with \(clients) clients")
            }
            return RunFigures(clients: clients, turns: measured, before: before, after: after)
        }

        /// One client on a new thread runs turns up to the last checkpoint; at each checkpoint, the
        /// thread's bytes and the p50 of its last `growthWindow` turns.
        func growth() async throws -> [GrowthPoint] {
            let logger = self.logger
            return try await withClient(url, statementTimeout: nil, maximumConnections: 2, logger: logger) { client in
                let thread = try await scalar(client, "SELECT agentq.create_thread('bench-turns-growth')", as: UUID.self, logger: logger)
                var done: [Turn] = []
                var points: [GrowthPoint] = []
                for checkpoint in TurnsBench.growthCheckpoints {
                    let more = checkpoint - done.count
                    done += try await Self.turns(on: thread, client, logger: logger, while: { $0 < more })
                    let bytes = try await ThreadBytes.read(client, thread: thread, logger: logger)
                    let recent = done.suffix(TurnsBench.growthWindow).map(\.milliseconds).sorted()
                    points.append(GrowthPoint(turns: done.count, bytes: bytes, recentP50: BenchSupport.quantile(recent, 0.5)))
                }
                return points
            }
        }

        /// The counters where the warm-up ends and where the run ends.
        /// The counters where the warm-up ends and where the run ends, read on a connection of their
        /// own (the clients hold theirs for the whole run, so a shared pool would read both at the end).
        private static func window(
            _ url: DatabaseURL, from start: ContinuousClock.Instant, to stop: ContinuousClock.Instant, postmaster: Int32?,
            worker: Int32, logger: Logger
        ) async throws -> (Counters, Counters) {
            try await withClient(url, statementTimeout: nil, maximumConnections: 1, logger: logger) { client in
                try await Task.sleep(until: start)
                let before = try await Counters.read(client, postmaster: postmaster, worker: worker, logger: logger)
                try await Task.sleep(until: stop)
                let after = try await Counters.read(client, postmaster: postmaster, worker: worker, logger: logger)
                return (before, after)
            }
        }

        /// Runs turns on `thread` while `more(turns done)` holds, over one connection that LISTENs on
        /// the thread's channel. A plain LISTEN: the session does not register with `agentq.listen`,
        /// so the enqueue sends no events; the worker's events (the stream's, `job.succeeded`) come.
        static func turns(
            on thread: UUID, _ client: PostgresClient, logger: Logger, while more: @escaping @Sendable (Int) -> Bool
        ) async throws -> [Turn] {
            try await client.withConnection { connection in
                let channel = try await Self.value(connection, "SELECT agentq.thread_channel(\(thread))", as: String.self, logger: logger)
                return try await connection.listen(on: channel) { notes in
                    var iterator = notes.makeAsyncIterator()
                    return try await Self.loop(on: thread, connection, logger: logger, while: more) { job in
                        while let note = try await iterator.next() {
                            // Most of a turn's events are its streams'; only the job's own end is parsed.
                            guard note.payload.contains("\"job."), let event = ThreadEvent.parse(note.payload), event.jobID == job,
                                event.isJobFinal
                            else { continue }
                            return event
                        }
                        // The notifications end only when the listen is cancelled (another client failed).
                        throw CancellationError()
                    }
                }
            }
        }

        /// Runs turns on `thread` while `more(turns done)` holds, on a connection of its own; the
        /// shared follower reports each job's end.
        static func turns(
            on thread: UUID, _ client: PostgresClient, follower: SharedFollower, logger: Logger,
            while more: @escaping @Sendable (Int) -> Bool
        ) async throws -> [Turn] {
            try await client.withConnection { connection in
                try await Self.loop(on: thread, connection, logger: logger, while: more) { try await follower.end(of: $0) }
            }
        }

        /// The turn loop: enqueue on `connection`, wait for the job's end with `end`, time it.
        private static func loop(
            on thread: UUID, _ connection: PostgresConnection, logger: Logger, while more: (Int) -> Bool,
            end: (Int64) async throws -> ThreadEvent
        ) async throws -> [Turn] {
            var turns: [Turn] = []
            while more(turns.count) {
                let prompt = TurnsBench.prompt(sku: "sku-\(Int.random(in: 1...TurnsBench.catalogueRows))")
                let started = ContinuousClock.now
                let job = try await Self.value(
                    connection, "SELECT agentq.generate(\(thread), \(prompt), \(TurnsBench.agent))", as: Int64.self, logger: logger)
                let finished = try await end(job)
                guard finished.type == "job.succeeded" else {
                    throw AgentQueueError(.jobFailed, "turn job \(job) ended \(finished.type): \(finished.text ?? "no error given")")
                }
                let ended = ContinuousClock.now
                turns.append(Turn(ended: ended, milliseconds: (ended - started).seconds * 1000))
            }
            return turns
        }

        /// The single value of a one-row query on `connection`.
        private static func value<T: PostgresDecodable & Sendable>(
            _ connection: PostgresConnection, _ query: PostgresQuery, as: T.Type, logger: Logger
        ) async throws -> T {
            for try await value in try await connection.query(query, logger: logger).decode(T.self) { return value }
            throw AgentQueueError(.notFound, "query returned no row")
        }
    }
}
