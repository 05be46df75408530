import AgentQueue
import Testing

@Suite struct BackoffTests {
    @Test func doublesPerAttemptUpToTheCap() {
        let backoff = Backoff(base: .seconds(1), cap: .seconds(10))
        #expect(backoff.delay(afterAttempt: 1, jitter: 1) == .seconds(1))
        #expect(backoff.delay(afterAttempt: 2, jitter: 1) == .seconds(2))
        #expect(backoff.delay(afterAttempt: 4, jitter: 1) == .seconds(8))
        #expect(backoff.delay(afterAttempt: 5, jitter: 1) == .seconds(10))
        #expect(backoff.delay(afterAttempt: 60, jitter: 1) == .seconds(10))
    }

    @Test func jitterScalesBetweenHalfAndOneAndAHalf() {
        let backoff = Backoff(base: .seconds(2), cap: .seconds(100))
        #expect(backoff.delay(afterAttempt: 1, jitter: 0.5) == .seconds(1))
        #expect(backoff.delay(afterAttempt: 1, jitter: 1.499) == .milliseconds(2998))
        for _ in 0..<200 {
            let d = backoff.delay(afterAttempt: 3)
            #expect(d >= .seconds(4) && d <= .seconds(12))  // [4, 12) before rounding to milliseconds
        }
    }
}
