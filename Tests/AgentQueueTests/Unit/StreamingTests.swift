import Testing

@testable import AgentQueue

@Suite struct SSEParserTests {
    static let stream = Array(
        """
        : keep-alive\r
        data: {"a":1}\r
        \r
        event: note\n\
        data: line one\n\
        data:line two\n\
        id: 7\n\
        \n\
        data: [DONE]\r\r\
        data: unterminated
        """.utf8)

    static let expected = [
        SSEEvent(data: #"{"a":1}"#),
        SSEEvent(event: "note", data: "line one\nline two", id: "7"),
        SSEEvent(data: "[DONE]", id: "7")
    ]

    @Test func parsesInOneChunk() {
        var p = SSEParser()
        #expect(p.feed(Self.stream) == Self.expected)
    }

    @Test func chunkBordersAnywhereGiveTheSameEvents() {
        for cut in 0...Self.stream.count {
            var p = SSEParser()
            let events = p.feed(Self.stream[..<cut]) + p.feed(Self.stream[cut...])
            #expect(events == Self.expected, "split at byte \(cut)")
        }
    }

    @Test func byteAtATime() {
        var p = SSEParser()
        var events: [SSEEvent] = []
        for b in Self.stream { events += p.feed([b]) }
        #expect(events == Self.expected)
    }

    @Test func anEventWithoutDataIsNotDispatchedAndFinishDropsTheTail() {
        var p = SSEParser()
        #expect(p.feed(Array("event: ping\n\ndata: x".utf8)).isEmpty)
        p.finish()
        #expect(p.feed(Array("\n\n".utf8)).isEmpty)
    }
}

@Suite struct ToolCallAssemblerTests {
    @Test func assemblesFragmentsByIndex() throws {
        var a = ToolCallAssembler()
        a.add(index: 1, id: "call_b", name: "lookup", argumentsFragment: "")
        a.add(index: 0, id: "call_a", name: "get_weather", argumentsFragment: "{\"ci")
        a.add(index: 0, id: nil, name: nil, argumentsFragment: "ty\": \"Oslo\"}")
        a.add(index: 1, id: nil, name: nil, argumentsFragment: "{\"q\": 1}")
        let calls = try a.calls()
        #expect(
            calls == [
                AssembledToolCall(id: "call_a", name: "get_weather", arguments: "{\"city\": \"Oslo\"}"),
                AssembledToolCall(id: "call_b", name: "lookup", arguments: "{\"q\": 1}")
            ])
    }

    @Test func missingNameIsAnErrorAndMissingArgumentsAreAnEmptyObject() throws {
        var a = ToolCallAssembler()
        a.add(index: 0, id: nil, name: "ping", argumentsFragment: nil)
        #expect(try a.calls() == [AssembledToolCall(id: "call_0", name: "ping", arguments: "{}")])
        a.add(index: 1, id: "x", name: nil, argumentsFragment: "{}")
        #expect(throws: GenerationError.self) { try a.calls() }
    }
}

@Suite struct StreamDeltaBufferTests {
    @Test func seqIsContiguousAndTextConcatenatesExactly() {
        var b = StreamDeltaBuffer<Int>(throttle: .milliseconds(100))
        let clock = ContinuousClock.now
        b.open(1)
        var written: [StreamDeltaBuffer<Int>.Delta] = []
        let tokens = ["Hel", "lo", " wor", "ld", ". Next", " one", "\n", "end"]
        for (i, t) in tokens.enumerated() {
            b.append(t, to: 1)
            let now = clock + .milliseconds(30 * i)
            if b.isDue(now: now) { written += b.takeTick(now: now) }
        }
        if let last = b.finish(1) { written.append(last) }
        #expect(written.map(\.seq) == Array(0..<written.count))
        #expect(written.map(\.text).joined() == tokens.joined())
        #expect(written.count < tokens.count)  // batched, not one row per token
    }

    @Test func aSentenceEndIsDueAtOnceOtherTextWaitsForTheThrottle() {
        var b = StreamDeltaBuffer<String>(throttle: .milliseconds(100))
        let t0 = ContinuousClock.now
        b.open("s")
        b.append("a", to: "s")
        #expect(b.isDue(now: t0))  // first write: nothing to wait for
        _ = b.takeTick(now: t0)
        b.append("b", to: "s")
        #expect(!b.isDue(now: t0 + .milliseconds(50)))
        #expect(b.isDue(now: t0 + .milliseconds(100)))
        b.append(" end.", to: "s")
        #expect(b.isDue(now: t0 + .milliseconds(10)))  // sentence end
    }

    @Test func oneTickCarriesEveryStream() {
        var b = StreamDeltaBuffer<Int>()
        for id in 0..<1000 { b.open(id); b.append("x\(id)", to: id) }
        let tick = b.takeTick(now: .now)
        #expect(tick.count == 1000)
        #expect(Set(tick.map(\.seq)) == [0])
        #expect(b.takeTick(now: .now).isEmpty)
        #expect(b.finish(3) == nil)
        #expect(b.nextSeq(of: 4) == 1)
        #expect(b.openStreams == 999)
    }

    @Test func aFailedWriteIsSentAgainUnchangedAheadOfNewText() {
        var b = StreamDeltaBuffer<Int>(throttle: .milliseconds(100))
        let t0 = ContinuousClock.now
        b.open(1)
        b.append("one ", to: 1)
        let failed = b.takeTick(now: t0)
        #expect(b.timeUntilDue(now: t0) == nil)  // nothing waits after a tick
        b.append("two", to: 1)
        b.putBack(failed)
        #expect(b.timeUntilDue(now: t0 + .milliseconds(40)) == .milliseconds(60))
        // The same seq and text as before (the database tells a landed duplicate apart), then the new text.
        #expect(b.takeTick(now: t0 + .milliseconds(100)) == [.init(stream: 1, seq: 0, text: "one ")])
        #expect(b.timeUntilDue(now: t0 + .milliseconds(100)) == .milliseconds(100))
        #expect(b.takeTick(now: t0 + .milliseconds(200)) == [.init(stream: 1, seq: 1, text: "two")])
        b.append("three.", to: 1)
        #expect(b.isDue(now: t0 + .milliseconds(201)))
        #expect(b.finish(1) == .init(stream: 1, seq: 2, text: "three."))
        #expect(!b.isDue(now: t0 + .milliseconds(500)) && b.timeUntilDue(now: t0) == nil)  // counters follow the finish
    }

    @Test func aStreamFinishedWithAPutBackDeltaEndsWithItAndTheNewText() {
        var b = StreamDeltaBuffer<Int>()
        b.open(1)
        b.append("Hello ", to: 1)
        b.putBack(b.takeTick(now: .now))
        b.append("world.", to: 1)
        #expect(b.finish(1) == .init(stream: 1, seq: 0, text: "Hello world."))
        #expect(b.timeUntilDue(now: .now) == nil)
    }
}
