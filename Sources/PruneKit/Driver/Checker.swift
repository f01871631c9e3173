import Foundation
import PruneIR
import PruneRuntime

/// The limits `prunec check` enforces; `nil` means not checked.
public struct CheckThresholds: Sendable {
    /// Least `(baseline − model) / baseline` of the parameter count, as a fraction.
    public var minParamReduction: Double?
    /// Least `(baseline − model) / baseline` of the MACs, as a fraction.
    public var minMACReduction: Double?
    /// Most parameters the model may have.
    public var maxParams: Int?
    /// Most MACs the model may have.
    public var maxMACs: Int?
    /// Most relative L2 drift of the worst output.
    public var maxDrift: Double?

    public var isEmpty: Bool {
        minParamReduction == nil && minMACReduction == nil && maxParams == nil && maxMACs == nil && maxDrift == nil
    }

    /// Thresholds; `nil` skips that check.
    public init(minParamReduction: Double? = nil, minMACReduction: Double? = nil, maxParams: Int? = nil, maxMACs: Int? = nil,
                maxDrift: Double? = nil) {
        self.minParamReduction = minParamReduction
        self.minMACReduction = minMACReduction
        self.maxParams = maxParams
        self.maxMACs = maxMACs
        self.maxDrift = maxDrift
    }
}

/// One evaluated threshold: what was measured, the limit, and whether it holds.
public struct CheckResult: Encodable {
    /// The flag's name without dashes: `min-param-reduction`, `max-params`, `max-macs`, `max-drift`, ...
    public var name: String
    /// The measured value; `nil` when it could not be measured (MACs of dynamic shapes).
    @NullEncodable public var measured: Double?
    public var limit: Double
    /// `at_least` or `at_most`.
    public var comparison: String
    public var passed: Bool
    /// One line for people: `param reduction 30.5% (at least 20.0%)`.
    public var message: String
}

/// Everything `prunec check` measured and decided. JSON (sorted keys): `baseline`, `model` (files),
/// `params`, `macs` (`{baseline, model, reduction}`), `drift` (per output), `inputs`
/// (`{source, sets}`), `checks` (per threshold), `passed`.
public struct CheckReport: Encodable {
    /// A count in both models.
    public struct Count: Encodable {
        @NullEncodable public var baseline: Int?
        @NullEncodable public var model: Int?
        @NullEncodable public var reduction: Double?

        public init(baseline: Int?, model: Int?) {
            self.baseline = baseline
            self.model = model
            reduction = ModelDiff.reduction(baseline, model)
        }
    }

    /// Where the drift inputs came from.
    public struct Inputs: Encodable {
        /// The source of synthesized inputs.
        public static let synthesized = "synthesized (seed 0)"

        /// The data file, or ``synthesized``.
        public var source: String
        public var sets: Int

        /// `8 input sets from calib.npz`, `1 synthesized input set (seed 0)`.
        public var phrase: String {
            let count = "\(sets) input set\(sets == 1 ? "" : "s")"
            return source == Self.synthesized ? "1 synthesized input set (seed 0)" : "\(count) from \(source)"
        }
    }

    public var model: String
    public var baseline: String
    public var params: Count
    public var macs: Count
    public var drift: [OutputDrift]
    public var inputs: Inputs
    public var checks: [CheckResult]
    public var passed: Bool

    /// The worst relative L2 drift over the outputs (NaN wins: it fails every limit).
    public var worstDrift: Double? {
        drift.map(\.relL2).reduce(nil) { worst, x in
            guard let worst else { return x }
            return x.isNaN || worst.isNaN ? .nan : max(worst, x)
        }
    }

    /// Measures `modelFile` against `baselineFile` (params, MACs, drift on the same inputs) and
    /// applies `thresholds`: what `prunec check` reports.
    ///
    /// - Parameters:
    ///   - inputs: An .npz, .npy or test_data_set folder; `nil` synthesizes one set (seed 0) with
    ///     `shapes` binding dynamic dims.
    /// - Throws: ``ModelFileError``/import errors for a bad model, ``SampleInputsError`` for a
    ///   shape that names no input or inputs that cannot be synthesized, ``CheckError`` when the
    ///   two models cannot be run on the same inputs.
    public static func measure(model modelFile: String, baseline baselineFile: String, inputs dataFile: String?,
                               shapes: [String: Shape], threads: Int, thresholds: CheckThresholds) throws -> CheckReport {
        let baselineModel = try ModelFile.load(baselineFile)
        let model = try ModelFile.load(modelFile)
        try ModelFile.checkInputNames(shapes.keys, in: baselineModel, file: baselineFile)
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
            throw CheckError.comparisonFailed(model: modelFile, baseline: baselineFile, reason: "\(e)")
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

    public func evaluate(_ thresholds: CheckThresholds) -> [CheckResult] {
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
        func count(_ x: Double) -> String { TextTable.grouped(Int(x)) }
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
    public static func number(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x < 0 ? "-inf" : "inf" }
        return String(format: "%.4g", x)
    }

    /// One JSON object with sorted keys (NaN and infinities as the strings `NaN`, `Infinity`, `-Infinity`).
    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return String(decoding: try e.encode(self), as: UTF8.self)
    }
}

/// Why `prunec check` could not compare two models.
public enum CheckError: Error, CustomStringConvertible {
    /// The interpreter failed on one of them with the shared inputs.
    case comparisonFailed(model: String, baseline: String, reason: String)

    public var description: String {
        switch self {
        case .comparisonFailed(let model, let baseline, let reason): return "comparing \(model) with \(baseline): \(reason)"
        }
    }
}
