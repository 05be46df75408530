import Synchronization

/// The stream a generation currently writes to: each tool step finishes one and opens the next.
final class LiveTarget: Sendable {
    let streams: LiveStreams
    private let current: Mutex<LiveStreams.Handle?>

    init(streams: LiveStreams, handle: LiveStreams.Handle) {
        self.streams = streams
        current = Mutex(handle)
    }

    var handle: LiveStreams.Handle? {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}
