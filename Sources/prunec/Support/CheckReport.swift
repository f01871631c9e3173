import ArgumentParser
import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// The limits `prunec check` enforces; `nil` means not checked.
struct CheckThresholds {
    /// Least `(baseline − model) / baseline` of the parameter count, as a fraction.
    var minParamReduction: Double?
    /// Least `(baseline − model) / baseline` of the MACs, as a fraction.
    var minMACReduction: Double?
    /// Most parameters the model may have.
    var maxParams: Int?
    /// Most MACs the model may have.
    var maxMACs: Int?
    /// Most relative L2 drift of the worst output.
    var maxDrift: Double?

    var isEmpty: Bool {
        minParamReduction == nil && minMACReduction == nil && maxParams == nil && maxMACs == nil && maxDrift == nil
    }
}

/// One evaluated threshold: what was measured, the limit, and whether it holds.
struct CheckResult: Encodable {
    /// The flag's name without dashes: `min-param-reduction`, `max-params`, `max-macs`, `max-drift`, ...
    var name: String
    /// The measured value; `nil` when it could not be measured (MACs of dynamic shapes).
    @NullEncodable var measured: Double?
    var limit: Double
    /// `at_least` or `at_most`.
    var comparison: String
    var passed: Bool
    /// One line for people: `param reduction 30.5% (at least 20.0%)`.
    var message: String
}

/// Everything `prunec check` measured and decided. JSON (sorted keys): `baseline`, `model` (files),
/// `params`, `macs` (`{baseline, model, reduction}`), `drift` (per output), `inputs`
/// (`{source, sets}`), `checks` (per threshold), `passed`.
struct CheckReport: Encodable {
    /// A count in both models.
    struct Count: Encodable {
        @NullEncodable var baseline: Int?
        @NullEncodable var model: Int?
        @NullEncodable var reduction: Double?

        init(baseline: Int?, model: Int?) {
            self.baseline = baseline
            self.model = model
            reduction = ModelDiff.reduction(baseline, model)
        }
    }

    /// Where the drift inputs came from.
    struct Inputs: Encodable {
        /// The source of synthesized inputs.
        static let synthesized = "synthesized (seed 0)"

        /// The data file, or ``synthesized``.
        var source: String
        var sets: Int

        /// `8 input sets from calib.npz`, `1 synthesized input set (seed 0)`.
        var phrase: String {
            let count = "\(sets) input set\(sets == 1 ? "" : "s")"
            return source == Self.synthesized ? "1 synthesized input set (seed 0)" : "\(count) from \(source)"
        }
    }

    var model: String
    var baseline: String
    var params: Count
    var macs: Count
    var drift: [OutputDrift]
    var inputs: Inputs
    var checks: [CheckResult]
    var passed: Bool

    /// The worst relative L2 drift over the outputs (NaN wins: it fails every limit).
    var worstDrift: Double? {
        drift.map(\.relL2).reduce(nil) { worst, x in
            guard let worst else { return x }
            return x.isNaN || worst.isNaN ? .nan : max(worst, x)
        }
    }

    /// Loads both models, measures them and evaluates `thresholds`.
    ///
    /// Drift runs on every set of `inputs` (via ``CalibrationData``), or on one synthesized set
    /// (``SampleInputs``, seed 0, `shapes` binding dynamic dims). MACs are counted with the
    /// shapes of the first input set.
    static func measure(model modelFile: String, baseline baselineFile: String, inputs dataFile: String?,
                        shapes: [String: Shape], threads: Int, thresholds: CheckThresholds) throws -> CheckReport {
        let baselineModel = try ModelInputOptions.load(baselineFile)
        let model = try ModelInputOptions.load(modelFile)
        try InputShapes.checkNames(shapes, in: baselineModel, file: baselineFile)
        let sets: [[String: NDArray]]
        if let dataFile {
            sets = try CalibrationData.load(URL(fileURLWithPath: dataFile), for: baselineModel)
        } else {
            sets = [try SampleInputs.make(for: baselineModel, shapes: shapes, seed: 0)]
        }
        let drift: [OutputDrift]
        do {
            drift = try Validation.drift(reference: baselineModel, candidate: model, inputs: sets, threads: threads)
        } catch let e as RuntimeError {
            // The interpreter's errors name nodes, not files: say which comparison failed.
            Diagnostics.error("comparing \(modelFile) with \(baselineFile): \(e)")
            throw ExitCode(PrunecExit.badInput)
        }
        // After the runs: inference binds the inputs' dims, which other sets might not share.
        let bound = sets.first?.mapValues { Shape($0.shape) } ?? shapes
        for m in [baselineModel, model] {
            let inputs = Set(m.graph.inputs.map(\.name))
            ShapeInference(overrides: bound.filter { inputs.contains($0.key) }).run(on: m)
        }
        var report = CheckReport(
            model: modelFile, baseline: baselineFile,
            params: Count(baseline: CostModel.parameterCount(baselineModel), model: CostModel.parameterCount(model)),
            macs: Count(baseline: CostModel().totalMACs(baselineModel), model: CostModel().totalMACs(model)),
            drift: drift, inputs: Inputs(source: dataFile ?? Inputs.synthesized, sets: sets.count),
            checks: [], passed: true)
        report.checks = report.evaluate(thresholds)
        report.passed = report.checks.allSatisfy(\.passed)
        return report
    }

    /// The checks `thresholds` asks for, in a fixed order.
    func evaluate(_ thresholds: CheckThresholds) -> [CheckResult] {
        var out: [CheckResult] = []
        func percent(_ x: Double) -> String { String(format: "%.1f%%", 100 * x) }
        // A tiny slack, so that 20 of 100 parameters removed meets "20%" despite rounding.
        func atLeast(_ name: String, _ what: String, _ measured: Double?, _ limit: Double, _ show: (Double) -> String) {
            let ok = measured.map { $0 >= limit - 1e-12 } ?? false
            out.append(CheckResult(name: name, measured: measured, limit: limit, comparison: "at_least", passed: ok,
                                   message: "\(what) \(measured.map(show) ?? "unknown") (at least \(show(limit)))"))
        }
        func atMost(_ name: String, _ what: String, _ measured: Double?, _ limit: Double, _ show: (Double) -> String) {
            let ok = measured.map { $0 <= limit } ?? false
            out.append(CheckResult(name: name, measured: measured, limit: limit, comparison: "at_most", passed: ok,
                                   message: "\(what) \(measured.map(show) ?? "unknown") (at most \(show(limit)))"))
        }
        func count(_ x: Double) -> String { InspectTables.grouped(Int(x)) }
        if let limit = thresholds.minParamReduction {
            atLeast("min-param-reduction", "param reduction", params.reduction, limit, percent)
        }
        if let limit = thresholds.minMACReduction {
            atLeast("min-mac-reduction", "MAC reduction", macs.reduction, limit, percent)
        }
        if let limit = thresholds.maxParams {
            atMost("max-params", "params", params.model.map(Double.init), Double(limit), count)
        }
        if let limit = thresholds.maxMACs {
            atMost("max-macs", "MACs", macs.model.map(Double.init), Double(limit), count)
        }
        if let limit = thresholds.maxDrift {
            let worst = worstDrift
            let output = drift.first { $0.relL2 == worst || ($0.relL2.isNaN && worst?.isNaN == true) }?.name
            atMost("max-drift", "drift (rel L2\(output.map { " of '\($0)'" } ?? ""))", worst, limit, CheckReport.number)
        }
        return out
    }

    /// `0.0123`-style numbers: 4 significant digits.
    static func number(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x < 0 ? "-inf" : "inf" }
        return String(format: "%.4g", x)
    }

    /// One JSON object with sorted keys (NaN and infinities as the strings `NaN`, `Infinity`, `-Infinity`).
    func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return String(decoding: try e.encode(self), as: UTF8.self)
    }
}
