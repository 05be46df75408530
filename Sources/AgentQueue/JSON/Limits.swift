/// The caps on what producers, tools and models hand a worker (README: Limits). Past a cap a job
/// fails (or a tool call gets an error result) with an error naming the cap; nothing traps, and the
/// worker's other jobs go on.
public enum Limits {
    /// JSON nesting read from a producer, a tool or a model (`JSONValue.parse`): deeper is refused.
    public static let jsonDepth = 128
    /// One line of a model's SSE stream, in bytes.
    public static let sseLineBytes = 8 << 20
    /// The data of one SSE event (its `data:` lines joined), in bytes.
    public static let sseEventBytes = 8 << 20
    /// The text of one model reply, in UTF-8 bytes (streamed or whole).
    public static let replyTextBytes = 4 << 20
    /// The arguments of one tool call a model makes, in UTF-8 bytes.
    public static let toolArgumentsBytes = 1 << 20
    /// Tool calls a model may make in one step.
    public static let toolCallsPerStep = 128
    /// One tool output (SQL, HTTP, Swift or submitted by the application), as JSON text in bytes.
    public static let toolOutputBytes = 1 << 20
    /// A JSON Schema `pattern`, in characters.
    public static let schemaPatternLength = 1_000
    /// A string checked against a schema `pattern`, in characters (longer strings fail the check).
    public static let patternInputLength = 100_000
    /// The time one schema check may spend matching `pattern`s; a match still running then fails.
    public static let patternTime = Duration.milliseconds(250)
    /// (Schema, value) pairs one schema check visits, at most (nested `anyOf` could multiply them).
    public static let schemaSteps = 100_000
    /// `timeout_ms` of a job, at most (a day, as the SQL option check says).
    public static let timeoutMilliseconds = 86_400_000
    /// `max_steps`, at most (as the SQL option check says).
    public static let maxSteps = 100
    /// `max_retries`, at most (as the SQL option check says).
    public static let maxRetries = 20
    /// `context.recent_messages`, at most.
    public static let recentMessages = 10_000
    /// `max_tokens`, at most.
    public static let maxTokens = 10_000_000
    /// A `Retry-After` a model server asks for, at most.
    public static let retryAfter = Duration.seconds(3_600)
    /// `[mock words=N]`, at most.
    public static let mockWords = 100_000
    /// Items or characters the mock's structured output makes for `minItems` / `minLength`, at most.
    public static let mockSampleSize = 10_000

    /// The integer clamped to `range` (an out-of-range value from a producer or a model becomes the
    /// nearest bound, never a trap).
    static func clamp(_ value: Int, _ range: ClosedRange<Int>) -> Int {
        min(max(value, range.lowerBound), range.upperBound)
    }
}
