import Foundation
import PruneIR
import PruneKit

/// The human-readable form of `prunec inspect`.
enum InspectTables {
    static func render(_ s: ModelSummary, allNodes: Bool) -> String {
        var out = ""
        let opsets = s.opsets.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        out += "model     \(s.file)\n"
        out += "ir        \(s.irVersion)    opsets: \(opsets)\n"
        if !s.producer.isEmpty { out += "producer  \(s.producer) \(s.producerVersion)\n" }
        out += "nodes     \(s.nodes)\n"
        out += "params    \(TextTable.grouped(s.params)) (\(Format.bytes(s.paramBytes)))\n"
        let dynamic = s.inputs.filter { $0.shape?.allSatisfy { Int($0) != nil } != true }
        let hint = dynamic.map { "--shape \($0.name)=" + ($0.shape ?? ["1"]).map { Int($0) == nil ? "1" : $0 }.joined(separator: "x") }.joined(separator: " ")
        out += "MACs      \(s.macs.map { "\(TextTable.grouped($0)) (\(Format.si($0)))" } ?? "unknown: bind dynamic inputs, e.g. \(hint)")\n"
        if let c = s.check {
            out += "libonnx   \(c.status)\(c.message.map { ": \($0)" } ?? "") (libonnx \(c.libonnx))\n"
        }
        out += "\n"
        out += TextTable.table(["input", "type", "shape"], s.inputs.map { [$0.name, $0.dtype ?? "?", shape($0.shape)] })
        out += "\n"
        out += TextTable.table(["output", "type", "shape"], s.outputs.map { [$0.name, $0.dtype ?? "?", shape($0.shape)] })
        out += "\n"
        let totalMacs = max(1, s.macs ?? 0)
        out += TextTable.table(
            ["op", "count", "MACs", "%MACs"],
            s.opTable.map { e in
                [e.op, String(e.count), e.macs.map(TextTable.grouped) ?? "?", e.macs.map { String(format: "%.1f", 100 * Double($0) / Double(totalMacs)) } ?? "?"]
            }, rightAligned: [1, 2, 3])
        out += "\n"
        let nodes = s.perNode.filter { ($0.macs ?? 1) > 0 }.sorted { ($0.macs ?? .max) > ($1.macs ?? .max) }
        let shown = allNodes ? nodes : Array(nodes.prefix(10))
        if !shown.isEmpty {
            out += TextTable.table(
                ["node", "op", "MACs", "params"],
                shown.map { [$0.name.isEmpty ? "(unnamed)" : $0.name, $0.op, $0.macs.map(TextTable.grouped) ?? "?", TextTable.grouped($0.params)] },
                rightAligned: [2, 3])
            if !allNodes && nodes.count > shown.count { out += "(\(nodes.count - shown.count) more; --all-nodes lists them)\n" }
            out += "\n"
        }
        out += TextTable.table(
            ["largest tensors", "type", "shape", "bytes", ""],
            s.largestTensors.map { [$0.name, $0.dtype, "[" + $0.shape.map(String.init).joined(separator: ",") + "]", Format.bytes($0.bytes), $0.external ? "external" : ""] },
            rightAligned: [3])
        if !s.opsWithoutShapeRule.isEmpty {
            out += "\nno shape rule for: " + s.opsWithoutShapeRule.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ") + "\n"
        }
        return out
    }

    static func shape(_ dims: [String]?) -> String {
        dims.map { "[" + $0.joined(separator: ",") + "]" } ?? "[*]"
    }
}
