import Logging

/// Starts a claimed batch: hands each kind's jobs to its handler to prepare (the kinds in
/// parallel), registers every job with its time budget, and runs each in a task of `jobs`, racing
/// its stop switch; the outcome goes to the completion queue, which frees the slot once written.
struct JobDispatcher: Sendable {
    let generate: GenerateHandler
    let embed: EmbedHandler
    let state: WorkerState
    let policy: OutcomePolicy
    let logger: Logger

    func start(_ claimed: [ClaimedJob], in jobs: inout DiscardingTaskGroup) async {
        let claimedAt = ContinuousClock.now
        WorkerMetrics.jobsInHand.increment(by: Double(claimed.count))
        let byKind = Dictionary(grouping: claimed, by: \.kind)
        async let generations = generate.prepare(byKind[.generate] ?? [], logger: logger)
        async let embeddings = embed.prepare(byKind[.embed] ?? [], logger: logger)
        let (prepared, embedPrepared) = await (generations, embeddings)
        for job in claimed {
            switch job.kind {
            case .generate: schedule(job, prepared[job.id], handler: generate, claimedAt: claimedAt, in: &jobs)
            case .embed: schedule(job, embedPrepared[job.id], handler: embed, claimedAt: claimedAt, in: &jobs)
            case .unknown(let kind):
                let item = policy.failed(job, error: "job kind \"\(kind)\" is not handled by this worker")
                schedule(job, decided: item, claimedAt: claimedAt, in: &jobs)
            }
        }
    }

    private func schedule<Handler: JobHandler>(
        _ job: ClaimedJob, _ preparation: Preparation<Handler.Prepared>?,
        handler: Handler, claimedAt: ContinuousClock.Instant,
        in jobs: inout DiscardingTaskGroup
    ) {
        switch preparation {
        case .ready(let prepared, let budget)?:
            let control = state.registry.add(job.id, attempt: job.attempt, budget: budget)
            jobs.addTask {
                let item = await execute(job, control: control) { logger in
                    await handler.run(job, prepared, stopReason: { control.reason }, logger: logger)
                }
                await finish(job, item: item, claimedAt: claimedAt)
            }
        case .decided(let item)?:
            schedule(job, decided: item, claimedAt: claimedAt, in: &jobs)
        case nil:
            schedule(job, decided: policy.retry(job, error: "the job was not prepared"), claimedAt: claimedAt, in: &jobs)
        }
    }

    /// A job whose outcome was decided without running it. It stays held until that outcome is
    /// written, so the heartbeat keeps its lease meanwhile.
    private func schedule(
        _ job: ClaimedJob, decided item: FinishItem, claimedAt: ContinuousClock.Instant,
        in jobs: inout DiscardingTaskGroup
    ) {
        _ = state.registry.add(job.id, attempt: job.attempt)
        jobs.addTask { await finish(job, item: item, claimedAt: claimedAt) }
    }

    /// Runs a job's `work`, racing it against its stop switch (cancel, lost lease, shutdown, time budget).
    private func execute(
        _ job: ClaimedJob, control: JobControl,
        work: @escaping @Sendable (Logger) async -> FinishItem
    ) async -> FinishItem {
        var jobLogger = logger
        jobLogger[metadataKey: "job_id"] = "\(job.id)"
        if let thread = job.threadID { jobLogger[metadataKey: "thread_id"] = "\(thread)" }
        let logger = jobLogger
        logger.debug("job started", metadata: ["attempt": "\(job.attempt)"])
        return await withTaskGroup(of: FinishItem?.self) { group in
            group.addTask { await work(logger) }
            group.addTask {
                await control.waitForStop()
                return nil
            }
            while let next = await group.next() {
                if let item = next {
                    group.cancelAll()
                    return item
                }
                if control.reason != nil { group.cancelAll() }  // stop the work; its item follows
            }
            return policy.stopped(job, control.reason ?? .shutdown)
        }
    }

    /// Hands the outcome to the completion queue (which frees the slot once it is written).
    private func finish(_ job: ClaimedJob, item: FinishItem, claimedAt: ContinuousClock.Instant) async {
        let applied = await state.completions.submit(item)
        WorkerMetrics.jobsInHand.decrement()
        WorkerMetrics.finished(job, outcome: applied ? item.outcome.rawValue : "lease_lost", after: claimedAt.elapsed)
        if !applied {
            logger.warning(
                "job outcome not applied: the lease was lost",
                metadata: ["job_id": "\(job.id)", "outcome": "\(item.outcome.rawValue)"])
        }
    }
}
