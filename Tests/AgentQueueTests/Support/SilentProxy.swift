import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP proxy on 127.0.0.1 that the test can make go silent: from `goSilent()` on, every byte in
/// either direction of the connections open then is dropped, and the connections stay open (no reset,
/// no FIN), as when a network path dies; connections made while silent are accepted and then
/// dropped the same way. After `heal()` new connections are forwarded again; the silent ones stay
/// silent, so only the client's own timeouts can notice them. Written by hand: the tests need only
/// this, with blocking sockets on threads of its own.
final class SilentProxy: @unchecked Sendable {  // state behind `lock`
    private final class Link: @unchecked Sendable {  // fields behind the proxy's lock
        var dead = false
        var fds: [Int32] = []
    }

    let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var silent = false
    private var links: [Link] = []
    private var stopped = false

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else { throw TestFailure("proxy: cannot listen") }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: actual.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Drops every byte of the open connections, and of new ones until `heal()`.
    func goSilent() {
        lock.withLock {
            silent = true
            for link in links { link.dead = true }
        }
    }

    /// Forwards new connections again (the silent ones stay silent).
    func heal() { lock.withLock { silent = false } }

    /// Closes everything.
    func stop() {
        let fds: [Int32] = lock.withLock {
            stopped = true
            return links.flatMap(\.fds)
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            let link = Link()
            let (isSilent, isStopped) = lock.withLock { (silent, stopped) }
            if isStopped {
                close(client)
                return
            }
            link.dead = isSilent
            link.fds = [client]
            var upstream: Int32 = -1
            if !isSilent {
                upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = Self.loopback(port: upstreamPort)
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                if connected != 0 {
                    close(upstream)
                    close(client)
                    continue
                }
                link.fds.append(upstream)
            }
            lock.withLock { links.append(link) }
            let server = upstream
            Thread { [self] in pump(from: client, to: server, link: link) }.start()
            if server >= 0 { Thread { [self] in pump(from: server, to: client, link: link) }.start() }
        }
    }

    /// Copies `from` to `to` until either side closes; drops the bytes once the link is dead.
    private func pump(from: Int32, to: Int32, link: Link) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, 65536) }
            if n <= 0 { break }
            if lock.withLock({ link.dead }) || to < 0 { continue }
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { write(to, $0.baseAddress! + sent, n - sent) }
                if m <= 0 { break }
                sent += m
            }
        }
        if !lock.withLock({ link.dead }) {
            shutdown(from, Int32(SHUT_RDWR))
            if to >= 0 { shutdown(to, Int32(SHUT_RDWR)) }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
