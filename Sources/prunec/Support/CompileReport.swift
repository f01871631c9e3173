import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// What the compile command measured: `--report` JSON (sorted keys) and the table on stdout.
///
/// JSON: `model`, `output`, `pipeline`, `before` / `after` (`params`, `macs`, `nodes`,
/// `latency_ms`), `drift` (per output: `max_abs`, `rel_l2`, `cosine`), `passes` (per pass: `pass`,
/// `seconds`, `changed`, `statistics`, `before`, `after`), `inputs` (`source`, `sets`), `max_drift`,
/// `passed`, `written`.
struct CompileReport: Encodable {
    struct Side: Encodable {
        var params: Int
        @NullEncodable var macs: Int?
        var nodes: Int
        @NullEncodable var latencyMs: Double?

        enum CodingKeys: String, CodingKey {
            case params, macs, nodes
            case latencyMs = "latency_ms"
        }
    }

    struct Inputs: Codable {
        var source: String
        var sets: Int
    }

    var model: String
    @NullEncodable var output: String?
    var pipeline: String
    var before: Side
    var after: Side
    var drift: [String: OutputDrift]
    var passes: [PassRecord]
    @NullEncodable var inputs: Inputs?
    @NullEncodable var maxDrift: Double?
    var passed: Bool
    var written: Bool
    /// Outputs in model order (the JSON object's keys are sorted instead).
    var driftOrder: [OutputDrift] = []

    enum CodingKeys: String, CodingKey {
        case model, output, pipeline, before, after, drift, passes, inputs, passed, written
        case maxDrift = "max_drift"
    }

    /// The worst relative L2 drift over the outputs.
    var worstDrift: Double? { driftOrder.map(\.relL2).max() }

    func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return String(decoding: try e.encode(self), as: UTF8.self) + "\n"
    }

    func text() -> String {
        func change(_ a: Double?, _ b: Double?) -> String {
            guard let a, let b, a > 0 else { return "" }
            return String(format: "%+.1f%%", (b - a) / a * 100)
        }
        func count(_ n: Int?) -> String { n.map(InspectTables.grouped) ?? "?" }
        func ms(_ x: Double?) -> String { x.map { String(format: "%.3f ms", $0) } ?? "-" }
        var out = "\(model) → \(output ?? "(not written)")\n"
        out += "pipeline  \(pipeline.isEmpty ? "(none)" : pipeline)\n\n"
        out += InspectTables.table(
            ["", "before", "after", "change"],
            [
                ["params", count(before.params), count(after.params), change(Double(before.params), Double(after.params))],
                ["MACs", count(before.macs), count(after.macs), change(before.macs.map(Double.init), after.macs.map(Double.init))],
                ["nodes", count(before.nodes), count(after.nodes), change(Double(before.nodes), Double(after.nodes))],
                ["latency", ms(before.latencyMs), ms(after.latencyMs), change(before.latencyMs, after.latencyMs)],
            ], rightAligned: [1, 2, 3])
        if !driftOrder.isEmpty {
            out += "\n"
            out += InspectTables.table(
                ["output", "max abs", "rel L2", "cosine"],
                driftOrder.map { [$0.name, String(format: "%.3g", $0.maxAbs), String(format: "%.3g", $0.relL2), String(format: "%.6f", $0.cosine)] },
                rightAligned: [1, 2, 3])
            if let inputs { out += "(on \(inputs.sets) \(inputs.source) input set\(inputs.sets == 1 ? "" : "s"); latency: interpreter median)\n" }
        }
        if !passes.isEmpty {
            out += "\n"
            out += InspectTables.table(
                ["pass", "seconds", "what it did"],
                passes.map { r in
                    let stats = r.statistics.filter { $0.value != 0 }.sorted { $0.key < $1.key }
                        .map { "\($0.key) \($0.value == $0.value.rounded() ? String(Int($0.value)) : String(format: "%.3g", $0.value))" }
                    return [r.pass, String(format: "%.3f", r.seconds), stats.isEmpty ? (r.changed ? "changed" : "unchanged") : stats.joined(separator: ", ")]
                }, rightAligned: [1])
        }
        if let maxDrift, let worst = worstDrift {
            out += "\n" + (passed ? "drift \(String(format: "%.3g", worst)) within --max-drift \(maxDrift)\n"
                : "drift \(String(format: "%.3g", worst)) exceeds --max-drift \(maxDrift): nothing written\n")
        }
        return out
    }
}
