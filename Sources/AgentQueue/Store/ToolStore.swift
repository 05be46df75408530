import Foundation
import Logging
import PostgresNIO

/// The statements of tool calls: the registry, the open calls of claimed jobs, and the step
/// transaction that saves a step's calls with the SQL tools' own writes (`ToolExecutor` decides
/// what runs in it).
public struct ToolStore: Sendable {
    public let database: Database
    public let workerID: String

    public init(database: Database, workerID: String) {
        self.database = database
        self.workerID = workerID
    }

    /// Over a pool the caller runs (statements get the default deadline; the pool is never replaced).
    public init(client: PostgresClient, workerID: String) {
        self.init(database: Database(client: client), workerID: workerID)
    }

    /// The `agentq.tools` rows named.
    public func definitions(named names: [String], logger: Logger) async throws -> [String: ToolDefinition] {
        guard !names.isEmpty else { return [:] }
        let rows = try await database.query(
            """
            SELECT name, description, parameters::text, kind, target, options::text FROM agentq.tools WHERE name = ANY(\(names))
            """, logger: logger)
        var tools: [String: ToolDefinition] = [:]
        for try await (name, description, parameters, kind, target, options) in rows.decode(
            (String, String, String, String, String?, String).self)
        {
            let opts = (try? JSONValue.parse(options)) ?? .object([:])
            let toolKind: ToolDefinition.Kind =
                switch kind {
                case "sql": .sql
                case "http": .http(url: target ?? "")
                default: .client
                }
            tools[name] = ToolDefinition(
                name: name, description: description,
                parameters: (try? JSONValue.parse(parameters)) ?? .object([:]), kind: toolKind,
                needsApproval: opts["needs_approval"]?.boolValue ?? false,
                timeout: .milliseconds(opts["timeout_ms"]?.intValue ?? 10_000),
                maxResponseBytes: opts["max_response_bytes"]?.intValue ?? 1 << 20)
        }
        return tools
    }

    /// Calls of these jobs that are not done: approved ones to run, HTTP/Swift ones a crash cut off,
    /// and ones still waiting for an answer.
    public func openCalls(jobIDs: [Int64], logger: Logger) async throws -> [Int64: [OpenToolCall]] {
        guard !jobIDs.isEmpty else { return [:] }
        let rows = try await database.query(
            """
            SELECT job_id, tool_call_id, tool_name, kind, args, status FROM agentq.open_tool_calls(\(jobIDs))
            """, logger: logger)
        var calls: [Int64: [OpenToolCall]] = [:]
        for try await (job, id, name, kind, args, status) in rows.decode((Int64, String, String, String, String, String).self) {
            guard let status = ToolCallStatus(rawValue: status) else {
                throw AgentQueueError(.invalidInput, "tool call \(id) of job \(job) has an unknown status \"\(status)\"")
            }
            calls[job, default: []].append(
                OpenToolCall(
                    id: id, name: name, kind: kind,
                    arguments: (try? JSONValue.parse(args)) ?? .object([:]), status: status))
        }
        return calls
    }

    /// Runs `body` in the step's transaction, after `agentq.begin_step` saved the step's assistant
    /// message and calls (nil message when resuming calls saved before), its known results, its
    /// stream end and lease extension. Throws, with nothing saved, when the job is no longer held.
    /// `firstSQLToolTimeout`: the statement timeout of the first SQL tool `body` runs, set by the
    /// same statement. `extraTime`: added to the statement deadline (the SQL tools' own timeouts).
    public func inStep<T: Sendable>(
        _ step: Step, firstSQLToolTimeout: Duration? = nil, extraTime: Duration = .zero, logger: Logger,
        _ body: @escaping @Sendable (StepTransaction) async throws -> T
    ) async throws -> T {
        try await database.withTransaction(deadline: database.deadline + extraTime, logger: logger) { connection in
            var sessionTimeout = "0"
            if let first = firstSQLToolTimeout {
                // The session's timeout is read before the tool's is set (a target list is evaluated
                // in order); the tools' statements set it back.
                let rows = try await connection.checkedQuery(
                    """
                    SELECT current_setting('statement_timeout'), agentq.begin_step(\(workerID), \(step.jobID), \(step.attempt)::int, \(step.json)::jsonb)::text,
                           set_config('statement_timeout', \(StepTransaction.milliseconds(first)), true)
                    """, logger: logger)
                for try await (timeout, _, _) in rows.decode((String, String?, String).self) { sessionTimeout = timeout }
            } else {
                _ = try await connection.checkedQuery(
                    """
                    SELECT agentq.begin_step(\(workerID), \(step.jobID), \(step.attempt)::int, \(step.json)::jsonb)
                    """, logger: logger
                ).collect()
            }
            return try await body(
                StepTransaction(connection: connection, workerID: workerID, sessionTimeout: sessionTimeout, logger: logger))
        }
    }

    /// The statements of a step's transaction (`inStep`). Each SQL tool runs in a savepoint under
    /// its own statement timeout, set by the statement before the savepoint; the statement that
    /// ends a tool (its call, or its error result) sets the next tool's timeout, or the session's
    /// after the last. So a step with one SQL tool takes six statements: BEGIN, the step, SAVEPOINT,
    /// the tool, the next stream, COMMIT.
    public struct StepTransaction: Sendable {
        let connection: PostgresConnection
        let workerID: String
        /// The session's `statement_timeout`, read before the first tool's was set.
        let sessionTimeout: String
        let logger: Logger

        /// A SQL tool's failure, after its writes were rolled back to the savepoint (the
        /// transaction goes on, under this tool's timeout until `recordResults` sets the next).
        public struct ToolFailed: Error {
            public var underlying: any Error
        }

        /// Runs a SQL tool call (`agentq.run_sql_tool`) in a savepoint under the timeout set before
        /// it; returns its result and sets `nextTimeout` (nil: the session's) for what follows, or
        /// throws `ToolFailed` with its writes undone. The savepoint is not released: COMMIT keeps
        /// its writes, and a later tool's ROLLBACK TO goes back to that tool's own savepoint.
        public func runSQLTool(jobID: Int64, callID: String, thenTimeout nextTimeout: Duration?) async throws -> JSONValue {
            try await run("SAVEPOINT agentq_tool")
            do {
                var value: JSONValue = .null
                for try await (text, _) in try await connection.checkedQuery(
                    """
                    SELECT coalesce(agentq.run_sql_tool(\(jobID), \(callID)), 'null'::jsonb)::text,
                           set_config('statement_timeout', \(timeoutSetting(nextTimeout)), true)
                    """, logger: logger
                ).decode((String, String).self) {
                    value = (try? JSONValue.parse(text)) ?? .null
                }
                return value
            } catch {
                try await run("ROLLBACK TO SAVEPOINT agentq_tool")
                throw ToolFailed(underlying: error)
            }
        }

        /// Saves results of calls saved before (`agentq.record_tool_results`), and sets
        /// `nextTimeout` (nil: the session's) for the statements that follow.
        public func recordResults(jobID: Int64, _ results: [String: ToolResult], thenTimeout nextTimeout: Duration?) async throws {
            _ = try await connection.checkedQuery(
                """
                SELECT agentq.emit_all(agentq.record_tool_results(\(jobID), \(Step.resultsJSON(results))::jsonb))::text,
                       set_config('statement_timeout', \(timeoutSetting(nextTimeout)), true)
                """, logger: logger
            ).collect()
        }

        /// Opens the next step's pending message and stream.
        public func openStream(_ next: StreamStore.Opening) async throws {
            _ = try await connection.checkedQuery(
                """
                SELECT stream_id FROM agentq.open_streams(\(workerID), \(StreamStore.json([next]))::jsonb)
                """, logger: logger
            ).collect()
        }

        static func milliseconds(_ timeout: Duration) -> String { String(max(1, Int(timeout.seconds * 1000))) }

        private func timeoutSetting(_ timeout: Duration?) -> String { timeout.map(Self.milliseconds) ?? sessionTimeout }

        private func run(_ sql: String) async throws {
            _ = try await connection.checkedQuery(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
        }
    }

    /// One step's writes (see `inStep`).
    public struct Step: Sendable {
        public var jobID: Int64
        public var attempt: Int
        /// The step's assistant message (nil: only results of calls saved earlier).
        public var message: NewMessage?
        /// The streamed step's last, unwritten delta.
        public var streamEnd: FinishItem.StreamEnd?
        /// New calls: [(call, status, result if known)].
        public var calls: [(call: ToolStepPlan.Call, result: ToolResult?)] = []
        /// Results of calls saved before (resumed or run after the step's commit).
        public var results: [String: ToolResult] = [:]
        /// How much longer the lease must last for the SQL tools run in the step's transaction.
        public var leaseExtension: Duration = .zero

        public init(jobID: Int64, attempt: Int) {
            self.jobID = jobID
            self.attempt = attempt
        }

        var json: String {
            var w = JSONWriter(capacity: 1024)
            w.beginObject()
            if let message {
                w.key("message"); w.beginObject()
                w.key("id"); w.string(message.id.uuidString.lowercased())
                w.key("content"); w.value(message.content)
                w.field("text", message.text)
                w.field("model", message.model)
                w.field("provider", message.provider)
                w.field("finish_reason", message.finishReason)
                if let u = message.usage { w.key("usage"); u.write(to: &w) }
                w.endObject()
            }
            if let end = streamEnd {
                w.key("stream"); w.beginObject()
                w.key("stream_id"); w.string(end.streamID.uuidString.lowercased())
                w.key("seq"); w.int(end.seq)
                w.field("delta", end.delta)
                w.endObject()
            }
            w.key("lease_ms"); w.int(Int(leaseExtension.seconds * 1000))
            w.key("calls"); w.beginArray()
            for (call, result) in calls {
                w.beginObject()
                w.key("tool_call_id"); w.string(call.id)
                w.key("tool_name"); w.string(call.name)
                w.key("kind"); w.string(call.kindName)
                w.key("args"); w.value(call.arguments)
                w.key("status"); w.string((result == nil ? call.status : .done).rawValue)
                if let result { w.key("result"); w.value(result.value); w.key("is_error"); w.bool(result.isError) }
                w.endObject()
            }
            Self.write(results, status: .done, to: &w)
            w.endArray()
            w.endObject()
            return w.text
        }

        /// Results as the JSON array `agentq.record_tool_results` reads.
        static func resultsJSON(_ results: [String: ToolResult]) -> String {
            var w = JSONWriter(capacity: 256)
            w.beginArray()
            write(results, status: nil, to: &w)
            w.endArray()
            return w.text
        }

        private static func write(_ results: [String: ToolResult], status: ToolCallStatus?, to w: inout JSONWriter) {
            for (id, result) in results.sorted(by: { $0.key < $1.key }) {
                w.beginObject()
                w.key("tool_call_id"); w.string(id)
                w.field("status", status?.rawValue)
                w.key("result"); w.value(result.value)
                w.key("is_error"); w.bool(result.isError)
                w.endObject()
            }
        }
    }
}

/// A tool call saved earlier that is not done.
public struct OpenToolCall: Sendable, Hashable {
    public var id: String
    public var name: String
    public var kind: String
    public var arguments: JSONValue
    /// `running`, `approved`, `awaitingClient` or `awaitingApproval`.
    public var status: ToolCallStatus

    public var waits: Bool { status.waits }
}

/// What a tool call gave back.
public struct ToolResult: Sendable, Hashable {
    public var value: JSONValue
    public var isError: Bool

    public init(value: JSONValue, isError: Bool) {
        self.value = value
        self.isError = isError
    }

    /// The text the model reads: a string as is, anything else as JSON.
    public var text: String {
        if case .string(let s) = value { return s }
        return value.jsonString
    }
}
