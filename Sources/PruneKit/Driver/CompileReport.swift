import Foundation
import PruneIR
import PruneRuntime

/// What the compile command measured: `--report` JSON (sorted keys) and the table on stdout.
///
/// JSON: `model`, `output`, `pipeline`, `before` / `after` (`params`, `macs`, `nodes`,
/// `latency_ms`), `drift` (per output: `max_abs`, `rel_l2`, `cosine`), `passes` (per pass: `pass`,
/// `seconds`, `changed`, `statistics`, `before`, `after`), `inputs` (`source`, `sets`), `max_drift`,
/// `passed`, `written`, and `compare` (per `--compare` pipeline: `pipeline`, `params`, `macs`,
/// `drift`).
public struct CompileReport: Encodable {
    /// A baseline pipeline run on the original for comparison (`prunec --compare`).
    public struct Comparison: Encodable {
        /// The baseline's pipeline text.
        public var pipeline: String
        /// Its parameters.
        public var params: Int
        /// Its MACs where shapes are known.
        @NullEncodable public var macs: Int?
        /// Its drift from the original, per output, on the validation inputs.
        public var drift: [String: OutputDrift]
        /// The worst relative L2 drift over the outputs.
        public var worstDrift: Double? { drift.values.map(\.relL2).max() }
        /// Its final samples' drift when the model is a denoiser (``SamplingDrift``).
        @NullEncodable public var samplingRelL2: Double?

        enum CodingKeys: String, CodingKey {
            case pipeline, params, macs, drift
            case samplingRelL2 = "sampling_rel_l2"
        }

        /// A comparison row.
        public init(pipeline: String, params: Int, macs: Int?, drift: [String: OutputDrift], samplingRelL2: Double? = nil) {
            self.pipeline = pipeline
            self.params = params
            self.macs = macs
            self.drift = drift
            self.samplingRelL2 = samplingRelL2
        }
    }

    /// The final-sample comparison of a denoiser (``SamplingDrift``).
    public struct Sampling: Encodable {
        /// The process, as resolved (family, prediction, where it was read from).
        public var process: String
        /// Sampling runs compared.
        public var runs: Int
        /// Steps per run.
        public var steps: Int
        /// Mean relative L2 between the original's and the result's final samples.
        public var relL2: Double

        enum CodingKeys: String, CodingKey {
            case process, runs, steps
            case relL2 = "rel_l2"
        }
    }

    /// One side of the report: parameters, MACs, nodes and latency.
    public struct Side: Encodable {
        public var params: Int
        @NullEncodable public var macs: Int?
        public var nodes: Int
        @NullEncodable public var latencyMs: Double?

        enum CodingKeys: String, CodingKey {
            case params, macs, nodes
            case latencyMs = "latency_ms"
        }
    }

    /// Where the validation inputs came from.
    public struct Inputs: Codable, Sendable {
        public var source: String
        public var sets: Int
    }

    public var model: String
    @NullEncodable public var output: String?
    public var pipeline: String
    public var before: Side
    public var after: Side
    public var drift: [String: OutputDrift]
    public var passes: [PassRecord]
    @NullEncodable public var inputs: Inputs?
    @NullEncodable public var maxDrift: Double?
    public var passed: Bool
    public var written: Bool
    /// Outputs in model order (the JSON object's keys are sorted instead).
    public var driftOrder: [OutputDrift] = []
    /// The `--compare` baselines, in the order given.
    public var compare: [Comparison] = []
    /// The final-sample drift when the model is a denoiser.
    public var sampling: Sampling?

    enum CodingKeys: String, CodingKey {
        case model, output, pipeline, before, after, drift, passes, inputs, passed, written, compare, sampling
        case maxDrift = "max_drift"
    }

    /// The worst relative L2 drift over the outputs.
    public var worstDrift: Double? { driftOrder.map(\.relL2).max() }

    /// The report as pretty-printed JSON with sorted keys (NaN and infinities as strings).
    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return String(decoding: try e.encode(self), as: UTF8.self) + "\n"
    }

    /// The tables printed on stdout: before/after, drift per output, the `--compare` baselines,
    /// and what each pass did.
    public func text() -> String {
        func change(_ a: Double?, _ b: Double?) -> String {
            guard let a, let b, a > 0 else { return "" }
            return String(format: "%+.1f%%", (b - a) / a * 100)
        }
        func count(_ n: Int?) -> String { n.map(TextTable.grouped) ?? "?" }
        func ms(_ x: Double?) -> String { x.map { String(format: "%.3f ms", $0) } ?? "-" }
        var out = "\(model) → \(output ?? "(not written)")\n"
        out += "pipeline  \(pipeline.isEmpty ? "(none)" : pipeline)\n\n"
        out += TextTable.table(
            ["", "before", "after", "change"],
            [
                ["params", count(before.params), count(after.params), change(Double(before.params), Double(after.params))],
                ["MACs", count(before.macs), count(after.macs), change(before.macs.map(Double.init), after.macs.map(Double.init))],
                ["nodes", count(before.nodes), count(after.nodes), change(Double(before.nodes), Double(after.nodes))],
                ["latency", ms(before.latencyMs), ms(after.latencyMs), change(before.latencyMs, after.latencyMs)],
            ], rightAligned: [1, 2, 3])
        if !driftOrder.isEmpty {
            out += "\n"
            out += TextTable.table(
                ["output", "max abs", "rel L2", "cosine"],
                driftOrder.map { [$0.name, String(format: "%.3g", $0.maxAbs), String(format: "%.3g", $0.relL2), String(format: "%.6f", $0.cosine)] },
                rightAligned: [1, 2, 3])
            if let inputs { out += "(on \(inputs.sets) \(inputs.source) input set\(inputs.sets == 1 ? "" : "s"); latency: interpreter median)\n" }
        }
        if let sampling {
            out += "\nfinal samples: rel L2 \(String(format: "%.3g", sampling.relL2)) over \(sampling.runs) runs of \(sampling.steps) steps (\(sampling.process))\n"
        }
        if !compare.isEmpty {
            func g(_ x: Double?) -> String { x.map { String(format: "%.3g", $0) } ?? "-" }
            let withSampling = sampling != nil
            var header = ["compared with", "params", "MACs", "worst rel L2"]
            if withSampling { header.append("final-sample rel L2") }
            let own = [pipeline.isEmpty ? "(none)" : pipeline, count(after.params), count(after.macs), g(worstDrift)] + (withSampling ? [g(sampling?.relL2)] : [])
            out += "\n"
            out += TextTable.table(
                header,
                [own] + compare.map { [$0.pipeline, count($0.params), count($0.macs), g($0.worstDrift)] + (withSampling ? [g($0.samplingRelL2)] : []) },
                rightAligned: withSampling ? [1, 2, 3, 4] : [1, 2, 3])
        }
        if !passes.isEmpty {
            out += "\n"
            out += TextTable.table(
                ["pass", "seconds", "what it did"],
                passes.map { r in
                    let stats = r.statistics.filter { $0.value != 0 }.sorted { $0.key < $1.key }
                        .map { "\($0.key) \($0.value == $0.value.rounded() && abs($0.value) < 1e15 ? String(Int($0.value)) : String(format: "%.3g", $0.value))" }
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
