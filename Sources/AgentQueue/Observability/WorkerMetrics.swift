import Metrics

/// The worker's metrics, reported through swift-metrics: whichever backend the process bootstraps
/// (`agentq worker --metrics-port` uses Prometheus) receives them; without one they cost nothing.
/// Names follow Prometheus conventions (`_total` counters, `_seconds` histograms).
public enum WorkerMetrics {
    /// A job a claim handed to this worker.
    static func claimed(_ job: ClaimedJob) {
        Counter(label: "agentq_jobs_claimed_total", dimensions: [("kind", job.kind.rawValue), ("queue", job.queue)]).increment()
    }

    /// The size of one claim batch (what the claim returned, 0 included).
    static func claimBatch(_ size: Int) {
        Recorder(label: "agentq_claim_batch_size", aggregate: true).record(size)
    }

    /// A job's outcome as written (`succeeded`, `failed`, `retry`, `cancelled`, ...) and its run time.
    static func finished(_ job: ClaimedJob, outcome: String, after duration: Duration) {
        let dimensions = [("kind", job.kind.rawValue), ("queue", job.queue)]
        Counter(label: "agentq_jobs_finished_total", dimensions: dimensions + [("outcome", outcome)]).increment()
        Timer(label: "agentq_job_duration_seconds", dimensions: dimensions).record(duration: duration)
    }

    /// One LLM call: its latency by provider and outcome (`ok` or `error`), and its tokens.
    static func llmCall(provider: String, model: String, failed: Bool, after duration: Duration, usage: TokenUsage?) {
        Timer(
            label: "agentq_llm_call_duration_seconds",
            dimensions: [("provider", provider), ("outcome", failed ? "error" : "ok")]
        ).record(duration: duration)
        guard let usage else { return }
        let dimensions = [("provider", provider), ("model", model)]
        Counter(label: "agentq_tokens_total", dimensions: dimensions + [("type", "prompt")]).increment(by: usage.promptTokens)
        Counter(label: "agentq_tokens_total", dimensions: dimensions + [("type", "completion")]).increment(by: usage.completionTokens)
    }

    /// Streams this worker is writing deltas to.
    static let liveStreams = Meter(label: "agentq_live_streams")

    /// Jobs this worker holds (claimed and not yet finished).
    static let jobsInHand = Meter(label: "agentq_jobs_in_hand")

    /// Jobs waiting in a queue (sampled by the worker; the same figure for every worker of the queue).
    static func queueDepth(_ queue: String, _ jobs: Int) {
        Meter(label: "agentq_queue_depth", dimensions: [("queue", queue)]).set(jobs)
    }
}

/// Measures a duration from a start instant (a tiny helper for the call sites above).
extension ContinuousClock.Instant {
    var elapsed: Duration { ContinuousClock.now - self }
}
