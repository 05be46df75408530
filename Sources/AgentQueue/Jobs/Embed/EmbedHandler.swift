import Logging

/// Prepares and runs `embed` jobs: preparing a claimed batch reads the texts to embed of all its
/// jobs in one statement. A fault reading them retries those jobs only, never the generations.
struct EmbedHandler: JobHandler {
    let runner: EmbedRunner

    /// An embed job's budget when its options name none: one request or a few, so a minute (a
    /// generation gets ten).
    static let defaultBudget: Duration = .seconds(60)

    /// The model and the inputs to embed (nil: nothing left to embed).
    typealias Prepared = EmbedRunner.Work?

    func prepare(_ jobs: [ClaimedJob], logger: Logger) async -> [Int64: Preparation<Prepared>] {
        guard !jobs.isEmpty else { return [:] }
        let work: [Int64: EmbedRunner.Work]
        do {
            work = try await runner.store.embedInputs(jobIDs: jobs.map(\.id), logger: logger)
        } catch {
            logger.error("loading embed jobs' texts failed; retrying them later", metadata: ["error": "\(describeDatabaseError(error))"])
            return Dictionary(
                uniqueKeysWithValues: jobs.map {
                    ($0.id, .decided(runner.policy.retry($0, error: "could not read the texts to embed")))
                })
        }
        return Dictionary(
            uniqueKeysWithValues: jobs.map { job in
                let budget = job.options["timeout_ms"]?.intValue.map { Duration.milliseconds($0) } ?? Self.defaultBudget
                return (job.id, .ready(work[job.id], budget: budget))
            })
    }

    func run(
        _ job: ClaimedJob, _ prepared: Prepared, stopReason: @escaping @Sendable () -> StopReason?,
        logger: Logger
    ) async -> FinishItem {
        await runner.run(job, work: prepared, stopReason: stopReason, logger: logger)
    }
}
