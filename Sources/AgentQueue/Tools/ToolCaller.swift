import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Runs the tools that run outside the step's transaction: HTTP tools (POST `{"args", "ctx"}` with an
/// `Idempotency-Key`, only to hosts on the allow-list) and Swift tools. Every fault (a refused host,
/// a timeout, a non-2xx answer, a body over the limit, a thrown error) becomes an error result.
public struct ToolCaller: Sendable {
    public var http: HTTPClient
    /// Hosts HTTP tools may call (`host` or `host:port`), from `AGENTQ_HTTP_TOOL_HOSTS`.
    public var allowedHosts: Set<String>

    public init(http: HTTPClient, allowedHosts: Set<String>) {
        self.http = http
        self.allowedHosts = allowedHosts
    }

    /// The allow-list in `AGENTQ_HTTP_TOOL_HOSTS` (comma-separated).
    public static func allowedHosts(from environment: [String: String] = ProcessInfo.processInfo.environment) -> Set<String> {
        Set(
            (environment["AGENTQ_HTTP_TOOL_HOSTS"] ?? "").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty })
    }

    public func run(_ tool: ToolDefinition, arguments: JSONValue, context: ToolContext) async -> ToolResult {
        do {
            return try await withThrowingTaskGroup(of: ToolResult.self) { group in
                group.addTask {
                    switch tool.kind {
                    case .http(let url): return try await post(url, tool: tool, arguments: arguments, context: context)
                    case .swift(let swift): return ToolResult(value: try await swift.handler(arguments, context), isError: false)
                    case .sql, .client:
                        return ToolResult(value: ToolStepPlan.errorResult("\(tool.kindName) tools do not run here"), isError: true)
                    }
                }
                group.addTask {
                    try await Task.sleep(for: tool.timeout)
                    return Self.timedOut(tool)
                }
                defer { group.cancelAll() }
                return Self.capped(try await group.next()!, tool)
            }
        } catch let error as HTTPClientError where [.deadlineExceeded, .readTimeout, .connectTimeout].contains(error) {
            return Self.timedOut(tool)  // the HTTP client's deadline (the same timeout) can fire first
        } catch is CancellationError {
            return ToolResult(value: ToolStepPlan.errorResult("tool \"\(tool.name)\" was cancelled"), isError: true)
        } catch {
            return ToolResult(value: ToolStepPlan.errorResult("tool \"\(tool.name)\" failed: \(error)"), isError: true)
        }
    }

    /// The result, or an error result when its JSON is over `Limits.toolOutputBytes` (README: Limits).
    static func capped(_ result: ToolResult, _ tool: ToolDefinition) -> ToolResult {
        let size = result.value.jsonString.utf8.count
        guard size > Limits.toolOutputBytes else { return result }
        return ToolResult(
            value: ToolStepPlan.errorResult("tool \"\(tool.name)\" returned \(size) bytes, over the limit of \(Limits.toolOutputBytes)"),
            isError: true)
    }

    /// The error result of a tool that ran out of its `timeout_ms`.
    static func timedOut(_ tool: ToolDefinition) -> ToolResult {
        ToolResult(value: ToolStepPlan.errorResult("tool \"\(tool.name)\" timed out after \(tool.timeout)"), isError: true)
    }

    /// Whether an HTTP tool may call `url`.
    public func allows(_ url: URL) -> Bool {
        guard let host = url.host?.lowercased() else { return false }
        let port = url.port ?? (url.scheme == "https" ? 443 : 80)
        return allowedHosts.contains(host) || allowedHosts.contains("\(host):\(port)")
    }

    private func post(_ target: String, tool: ToolDefinition, arguments: JSONValue, context: ToolContext) async throws -> ToolResult {
        guard let url = URL(string: target), allows(url) else {
            let host = URL(string: target)?.host ?? target
            return ToolResult(
                value: ToolStepPlan.errorResult("host \(host) is not on AGENTQ_HTTP_TOOL_HOSTS; the call was not made"),
                isError: true)
        }
        var request = HTTPClientRequest(url: target)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: "agentq-\(context.jobID)-\(context.toolCallID)")
        request.body = .bytes(ByteBuffer(string: JSONValue.object(["args": arguments, "ctx": context.json]).jsonString))
        let response = try await http.execute(request, timeout: .nanoseconds(Int64(tool.timeout.seconds * 1e9)))
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: min(tool.maxResponseBytes, Limits.toolOutputBytes))
        } catch is NIOTooManyBytesError {
            return ToolResult(
                value: ToolStepPlan.errorResult("the response is over \(min(tool.maxResponseBytes, Limits.toolOutputBytes)) bytes"),
                isError: true)
        }
        let text = String(buffer: body)
        let value = (try? JSONValue.parse(text)) ?? .string(text)
        guard (200..<300).contains(Int(response.status.code)) else {
            return ToolResult(value: .object(["error": .string("HTTP \(response.status.code)"), "body": value]), isError: true)
        }
        return ToolResult(value: value, isError: false)
    }
}
