import Foundation
import PruneIR
import PruneRuntime

/// How far one output of a candidate model moved from the reference model's, over all the input
/// sets it was measured on.
///
/// With `a` the reference output and `b` the candidate's, each flattened and concatenated over
/// the input sets:
/// - ``maxAbs`` is `max |a − b|`;
/// - ``relL2`` is `‖a − b‖₂ / ‖a‖₂` (0 when both are all zero, infinity when only `a` is);
/// - ``cosine`` is `a·b / (‖a‖₂ ‖b‖₂)` (1 when both are all zero, 0 when only one is).
///
/// Integer and boolean outputs are compared as `Double`. Elements that are NaN in both, or the
/// same infinity in both, count as equal; any other NaN or infinity makes the measures NaN or
/// infinite, which fails every threshold.
///
/// Encodes to JSON with the keys `name`, `max_abs`, `rel_l2` and `cosine`.
public struct OutputDrift: Codable, Sendable, Equatable {
    /// The output's name.
    public var name: String
    /// The largest absolute difference of one element.
    public var maxAbs: Double
    /// The L2 norm of the difference relative to the reference's.
    public var relL2: Double
    /// The cosine similarity of the two outputs.
    public var cosine: Double

    /// A drift record.
    public init(name: String, maxAbs: Double, relL2: Double, cosine: Double) {
        self.name = name
        self.maxAbs = maxAbs
        self.relL2 = relL2
        self.cosine = cosine
    }

    enum CodingKeys: String, CodingKey {
        case name, cosine
        case maxAbs = "max_abs"
        case relL2 = "rel_l2"
    }
}

/// Running the original and the pruned model side by side: output drift and latency.
///
/// Both run on the reference interpreter (PruneRuntime), so what is measured is the models'
/// difference, not a difference between runtimes.
///
/// ```swift
/// let sets = try CalibrationData.load(URL(fileURLWithPath: "calib.npz"), for: original)
/// let drift = try Validation.drift(reference: original, candidate: pruned, inputs: sets, threads: 4)
/// let worst = drift.map(\.relL2).max() ?? 0
/// ```
///
/// ### See Also
/// - ``OutputDrift``
/// - ``SampleInputs``
/// - ``CalibrationData``
public enum Validation {
    /// Runs `reference` and `candidate` on every input set and measures, per output of the
    /// reference, how far the candidate's moved.
    ///
    /// Outputs are matched by name and listed in the reference's order; outputs only the
    /// candidate has are ignored. Each model is fed only the arrays that name its inputs, so a
    /// candidate that lost an unused input still runs.
    ///
    /// - Parameters:
    ///   - reference: The original model.
    ///   - candidate: The model to compare with it (pruned, folded, ...).
    ///   - inputs: Input sets, each keyed by input name; the measures cover all of them.
    ///   - threads: Threads for the interpreter.
    ///   - progress: Called after each set with the sets done and the sets in all.
    /// - Returns: One record per output of the reference (empty when `inputs` is empty).
    /// - Throws: ``DriftError`` when an output is missing from the candidate or has another
    ///   shape; `RuntimeError` when either model cannot be built or run on a set.
    public static func drift(reference: Model, candidate: Model, inputs: [[String: NDArray]], threads: Int,
                             progress: ((Int, Int) -> Void)? = nil) throws -> [OutputDrift] {
        let names = reference.graph.outputs.map(\.name)
        let candidateOutputs = Set(candidate.graph.outputs.map(\.name))
        for name in names where !candidateOutputs.contains(name) {
            throw DriftError.missingOutput(name)
        }
        guard !inputs.isEmpty else { return [] }
        let options = Interpreter.Options(threads: threads, profile: false)
        let referenceRun = try Interpreter(model: reference, options: options)
        let candidateRun = try Interpreter(model: candidate, options: options)
        var sums = Array(repeating: DriftSums(), count: names.count)
        for (index, set) in inputs.enumerated() {
            let a = try referenceRun.run(feeds(set, for: reference))
            let b = try candidateRun.run(feeds(set, for: candidate))
            for (k, name) in names.enumerated() {
                guard let x = a[name], let y = b[name] else { throw DriftError.missingOutput(name) }
                guard x.shape == y.shape else {
                    throw DriftError.shapeMismatch(output: name, reference: x.shape, candidate: y.shape, set: index)
                }
                sums[k].add(x, y)
            }
            progress?(index + 1, inputs.count)
        }
        return zip(names, sums).map { $1.drift(name: $0) }
    }

    /// The median latency of `model` on `inputs`, in milliseconds.
    ///
    /// Runs `warmup` unmeasured runs (they also grow the interpreter's arena to its final size),
    /// then `runs` timed ones, with per-node profiling off.
    ///
    /// - Parameters:
    ///   - model: The model to time.
    ///   - inputs: Arrays keyed by input name.
    ///   - runs: Timed runs (at least 1 is made).
    ///   - warmup: Untimed runs first.
    ///   - threads: Threads for the interpreter.
    /// - Throws: `RuntimeError` when the model cannot be built or run on `inputs`.
    public static func latency(model: Model, inputs: [String: NDArray], runs: Int, warmup: Int, threads: Int) throws -> Double {
        let interpreter = try Interpreter(model: model, options: Interpreter.Options(threads: threads, profile: false))
        interpreter.profiling = false
        let fed = feeds(inputs, for: model)
        for _ in 0..<max(0, warmup) { _ = try interpreter.run(fed) }
        let clock = ContinuousClock()
        var ms: [Double] = []
        for _ in 0..<max(1, runs) {
            let t0 = clock.now
            _ = try interpreter.run(fed)
            let d = (clock.now - t0).components
            ms.append(Double(d.seconds) * 1e3 + Double(d.attoseconds) * 1e-15)
        }
        ms.sort()
        let n = ms.count
        return n % 2 == 1 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2
    }

    /// MACs of `model` with its inputs bound to the shapes of `inputs`, counted on a copy so the
    /// model keeps its symbolic dims (`nil` where the shape rules do not reach).
    public static func macs(model: Model, at inputs: [String: NDArray]) -> Int? {
        let copy = model.copy()
        ShapeInference(overrides: inputs.mapValues { Shape($0.shape) }).run(on: copy)
        return CostModel().totalMACs(copy)
    }

    /// The arrays of `set` that name an input of `model`.
    private static func feeds(_ set: [String: NDArray], for model: Model) -> [String: NDArray] {
        let names = Set(model.graph.inputs.map(\.name))
        return set.filter { names.contains($0.key) }
    }
}

/// Why two models' outputs cannot be compared.
public enum DriftError: Error, CustomStringConvertible, Equatable {
    /// The reference has an output the candidate does not.
    case missingOutput(String)
    /// An output has different shapes in the two models (on input set `set`, counted from 0).
    case shapeMismatch(output: String, reference: [Int], candidate: [Int], set: Int)

    public var description: String {
        switch self {
        case .missingOutput(let name):
            return "output '\(name)' of the reference model is missing from the candidate"
        case .shapeMismatch(let name, let a, let b, let set):
            func dims(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ",") + "]" }
            return "output '\(name)' has shape \(dims(a)) in the reference and \(dims(b)) in the candidate (input set \(set))"
        }
    }
}

/// Running sums from which the drift of one output is computed, so input sets need not be kept.
/// Running sums of two outputs' differences over calibration sets: what ``Validation/drift``
/// and the sweep's quality probe reduce to max abs, relative L2 and cosine.
struct DriftSums {
    var maxAbs = 0.0
    var diffSquares = 0.0
    var referenceSquares = 0.0
    var candidateSquares = 0.0
    var dot = 0.0
    var poisoned = false  // a NaN where the other output has none

    mutating func add(_ a: NDArray, _ b: NDArray) {
        if a.dtype == .float && b.dtype == .float {
            let pa = a.pointer(as: Float.self), pb = b.pointer(as: Float.self)
            for i in 0..<a.count { add(Double(pa[i]), Double(pb[i])) }
        } else {
            for i in 0..<a.count { add(a.element(at: i), b.element(at: i)) }
        }
    }

    mutating func add(_ x: Double, _ y: Double) {
        if x.isNaN || y.isNaN {
            if !(x.isNaN && y.isNaN) { poisoned = true }
            return
        }
        if x == y && x.isInfinite { return }
        let d = x - y
        maxAbs = max(maxAbs, abs(d))
        diffSquares += d * d
        referenceSquares += x * x
        candidateSquares += y * y
        dot += x * y
    }

    func drift(name: String) -> OutputDrift {
        if poisoned { return OutputDrift(name: name, maxAbs: .nan, relL2: .nan, cosine: .nan) }
        let relL2: Double
        if referenceSquares > 0 {
            relL2 = diffSquares.squareRoot() / referenceSquares.squareRoot()
        } else {
            relL2 = diffSquares == 0 ? 0 : .infinity
        }
        let cosine: Double
        switch (referenceSquares > 0, candidateSquares > 0) {
        case (false, false): cosine = 1
        case (true, true):
            // sqrt(a²·b²) rather than sqrt(a²)·sqrt(b²): exact for identical outputs (cosine 1, not 1 − ulp).
            let product = referenceSquares * candidateSquares
            let norms = product.isFinite ? product.squareRoot() : referenceSquares.squareRoot() * candidateSquares.squareRoot()
            cosine = min(1, max(-1, dot / norms))
        default: cosine = 0
        }
        return OutputDrift(name: name, maxAbs: maxAbs, relL2: relL2, cosine: cosine)
    }
}
