import AgentQueue
import Foundation
import Testing

@Suite struct ToolStepPlanTests {
    let tools: [String: ToolDefinition] = [
        "order": ToolDefinition(
            name: "order", description: "",
            parameters: .object([
                "type": .string("object"), "required": .array([.string("item")]),
                "properties": .object(["item": .object(["type": .string("string")])])
            ]),
            kind: .sql),
        "fetch": ToolDefinition(
            name: "fetch", description: "", parameters: .object(["type": .string("object")]),
            kind: .http(url: "http://x/y")),
        "ask": ToolDefinition(name: "ask", description: "", parameters: .object(["type": .string("object")]), kind: .client),
        "pay": ToolDefinition(
            name: "pay", description: "", parameters: .object(["type": .string("object")]), kind: .sql,
            needsApproval: true)
    ]

    func call(_ name: String, _ args: String, id: String = "c") -> AssembledToolCall {
        AssembledToolCall(id: id, name: name, arguments: args)
    }

    @Test func eachCallGetsItsDisposition() {
        let plan = ToolStepPlan(
            [
                call("order", #"{"item": "tea"}"#, id: "1"), call("fetch", "{}", id: "2"),
                call("ask", "", id: "3"), call("pay", "{}", id: "4")
            ], tools: tools)
        #expect(plan.calls.map(\.disposition) == [.runInTransaction, .runAfterCommit, .awaitClient, .awaitApproval])
        #expect(plan.calls.map(\.status) == [.running, .running, .awaitingClient, .awaitingApproval])
        #expect(plan.calls[2].arguments == .object([:]), "empty arguments are an empty object")
        #expect(plan.parks)
    }

    @Test func badCallsAreRejectedWithAReasonTheModelCanUse() {
        let plan = ToolStepPlan([call("nope", "{}"), call("order", "{not json"), call("order", #"{"item": 1}"#)], tools: tools)
        #expect(
            plan.calls.map(\.disposition) == [
                .rejected("unknown tool \"nope\" (tools: ask, fetch, order, pay)"),
                .rejected("the arguments are not JSON: {not json"),
                .rejected("invalid arguments: $.item must be string, got number")
            ])
        #expect(plan.calls.map(\.kindName) == ["invalid", "sql", "sql"])
        #expect(!plan.parks)
    }
}

@Suite struct ToolContextTests {
    func row(_ ord: Int, _ step: Int, _ role: MessageRole, _ text: String, parts: String = "[]", tool: Bool = false) -> ContextMessage {
        ContextMessage(id: UUID(), role: role, contentJSON: parts, text: text, ord: ord, step: step, tool: tool)
    }

    func callRow(_ ord: Int, _ step: Int, _ ids: [String], text: String = "") -> ContextMessage {
        let parts = ids.map { #"{"type": "tool-call", "tool_call_id": "\#($0)", "tool_name": "f", "args": {"a": 1}}"# }
        return row(ord, step, .assistant, text, parts: "[" + parts.joined(separator: ",") + "]", tool: true)
    }

    func resultRow(_ ord: Int, _ step: Int, _ id: String, _ result: String) -> ContextMessage {
        row(
            ord, step, .tool, result,
            parts: #"[{"type": "tool-result", "tool_call_id": "\#(id)", "tool_name": "f", "result": \#(result), "is_error": false}]"#,
            tool: true)
    }

    @Test func resultsFollowTheirCallsAndOrphansAreDropped() {
        let rows = [
            row(0, 0, .user, "q"),
            callRow(0, 1, ["a", "b", "lost"], text: "checking"),
            resultRow(0, 2, "b", #""B""#), resultRow(0, 3, "a", #"{"x": 1}"#), resultRow(0, 4, "stray", "1"),
            row(0, 5, .assistant, "done"),
            row(1, 0, .user, "q2"), callRow(1, 1, ["a"]), resultRow(1, 2, "a", "2")
        ]
        let out = ContextAssembler(limit: 100).assemble(messages: rows, promptOrd: 1, promptStep: 0, promptText: nil)
        #expect(out.map(\.role) == [.user, .assistant, .tool, .tool, .assistant, .user, .assistant, .tool])
        #expect(out[1].toolCalls.map(\.id) == ["a", "b"] && out[1].text == "checking" && out[1].toolCalls[0].arguments == #"{"a":1}"#)
        #expect(out[2].toolCallID == "a" && out[2].text == #"{"x":1}"#)
        #expect(out[3].toolCallID == "b" && out[3].text == "B")
        #expect(out[7].toolCallID == "a" && out[7].text == "2", "call ids pair within their own turn")
    }

    @Test func excludingToolMessagesKeepsTheText() {
        let rows = [
            row(0, 0, .user, "q"), callRow(0, 1, ["a"], text: "let me see"), resultRow(0, 2, "a", "1"),
            callRow(0, 3, ["b"]), resultRow(0, 4, "b", "2"), row(0, 5, .assistant, "done")
        ]
        let out = ContextAssembler(limit: 100, excludeTools: true).assemble(messages: rows, promptOrd: 0, promptStep: 0, promptText: nil)
        #expect(out.map(\.text) == ["q", "let me see", "done"] && out.allSatisfy(\.toolCalls.isEmpty))
    }
}
