import Foundation

/// How a worker process runs. Defaults suit LLM work; every field has a CLI flag.
public struct WorkerConfiguration: Sendable {
    /// Unique name of this worker (shown in `agentq.jobs.worker`); defaults to host-pid-random.
    public var id: String
    /// Queues to claim from, in order of preference.
    public var queues: [String] = ["default"]
    /// Jobs in hand at most.
    public var concurrency: Int = 32
    /// How long a claimed job stays ours without a heartbeat.
    public var lease: Duration = .seconds(30)
    /// How often leases are extended: a third of the lease, so two heartbeats can fail before it runs out.
    public var heartbeatInterval: Duration { lease / 3 }
    /// How long the server may run one statement (the session's `statement_timeout`).
    public var statementTimeout: Duration = .seconds(30)
    /// How long the worker waits for any round trip before it closes that connection: the statement
    /// timeout plus five seconds (a silent connection is noticed by this deadline alone).
    public var statementDeadline: Duration { statementTimeout + .seconds(5) }
    /// The deadline of a heartbeat: its interval (at least 5 s, so a loaded server is not mistaken for
    /// a silent connection), so a silent connection costs one heartbeat, not the lease.
    public var heartbeatDeadline: Duration { max(heartbeatInterval, .seconds(5)) }
    /// Fallback claim interval when no NOTIFY arrives.
    public var pollInterval: Duration = .seconds(1)
    /// Time running jobs get to finish on SIGTERM/SIGINT before they are handed back.
    public var grace: Duration = .seconds(30)
    /// Retry delays for transient failures.
    public var backoff = Backoff()
    /// Largest number of jobs finished in one transaction.
    public var maxCompletionBatch: Int = 500
    /// How often one worker prunes finished jobs and old deltas.
    public var pruneInterval: Duration = .seconds(60)
    /// How often `agentq.providers` is read again (a provider missing from the cache is read at once).
    public var providerReloadInterval: Duration = .seconds(30)
    /// Default recent-message window of a generation's context.
    public var recentMessages: Int = 100
    /// How often the deltas of all live streams are written (one statement per tick; sooner at a
    /// sentence end).
    public var streamThrottle: Duration = .milliseconds(100)
    /// Connecting to a model's server, at most.
    public var llmConnectTimeout: Duration = .seconds(10)
    /// Silence from a model's server mid-call (no byte read), at most.
    public var llmIdleTimeout: Duration = .seconds(60)
    /// How often the depth of this worker's queues is sampled for the metrics (nil: never).
    public var queueDepthInterval: Duration? = nil
    /// Hosts HTTP tools may call (`host` or `host:port`); default from `AGENTQ_HTTP_TOOL_HOSTS`.
    public var httpToolHosts: Set<String> = ToolCaller.allowedHosts()

    public init(id: String? = nil) {
        self.id = id ?? Self.defaultID()
    }

    public static func defaultID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        return "\(host)-\(ProcessInfo.processInfo.processIdentifier)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }
}
