import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// LD-Pruner's unit scores: for each unit (and residual block), the shift of the output
/// distribution over the evaluation inputs when that unit alone is masked,
/// `Σ_outputs ‖mean Z − mean Z′‖₂ + ‖std Z − std Z′‖₂`, with mean and std taken elementwise
/// over the evaluations.
public struct LatentShiftScores {
    /// Per group of ``TrainableGates/groups``, per unit.
    public let units: [[Double]]
    /// Per block of ``TrainableGates/blocks`` (infinity for a block without a gate input).
    public let blocks: [Double]
    /// Masked evaluations run (units × evaluation inputs).
    public let maskedRuns: Int
    /// Reference (all gates open) runs, recorded on a tape.
    public let referenceRuns: Int
    /// Interpreter steps the masked evaluations executed.
    public let stepsRecomputed: Int
    /// Interpreter steps full runs would have executed for them.
    public let stepsFull: Int
    /// Wall time of the scoring.
    public let seconds: Double
}

/// Computes ``LatentShiftScores`` on the interpreter of a ``TrainableGates/trainingModel``.
///
/// Each evaluation input is run once with every gate open, recording a tape (the reference `Z`).
/// Each unit is then masked alone (its group's gate inputs changed, one element zeroed) and, with
/// `reuse`, only the steps downstream of those gate inputs are re-executed from the tape
/// (``Tape/rerun(changing:)``), so a unit late in the graph costs its cone, not the whole model.
/// Units are scored in chunks sized to bound the accumulators (two doubles per output element per
/// unit); each chunk re-records the reference tapes (one chunk unless the outputs are large).
public struct LatentShiftScorer {
    /// The interpreter of ``TrainableGates/trainingModel``.
    public let interpreter: Interpreter
    /// The gates.
    public let gates: TrainableGates
    /// Evaluation feeds, without gate inputs.
    public let inputs: [[String: NDArray]]
    /// The outputs compared.
    public let outputs: [String]
    /// Rerun only the changed cone from the tape (`false`: full runs, for comparison).
    public var reuse: Bool
    /// Samples each input holds, stacked along the batch axis (``SampleStack``): every output
    /// splits into this many equal parts along its first axis, one per sample.
    public var rows = 1
    /// Bytes the per-unit accumulators of one chunk may take.
    public var accumulatorBudget: Int = 256 << 20

    public init(interpreter: Interpreter, gates: TrainableGates, inputs: [[String: NDArray]], outputs: [String], reuse: Bool) {
        self.interpreter = interpreter
        self.gates = gates
        self.inputs = inputs
        self.outputs = outputs
        self.reuse = reuse
    }

    enum Probe {
        case unit(group: Int, unit: Int)
        case block(Int)
    }

    /// Scores every unit and block; `progress(masked runs done, total, seconds)` is called after
    /// each masked run.
    ///
    /// - Parameters:
    ///   - only: Per group, per unit, whether to score it (`nil`: every unit); a unit left out
    ///     scores NaN. Blocks are always scored.
    /// - Throws: ``LDPrunerError`` when there is nothing to evaluate on or the outputs change shape
    ///   between evaluations; `RuntimeError` from the interpreter.
    public func score(only: [[Bool]]? = nil, progress: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> LatentShiftScores {
        let started = Date()
        guard !inputs.isEmpty else { throw LDPrunerError.noInputs }
        guard !outputs.isEmpty else { throw LDPrunerError.noOutputs }
        var probes: [Probe] = []
        for (g, group) in gates.groups.enumerated() {
            for u in 0..<group.unitCount where only?[g][u] ?? true { probes.append(.unit(group: g, unit: u)) }
        }
        for (b, name) in gates.blockInputs.enumerated() where !name.isEmpty { probes.append(.block(b)) }
        let masksOf = Dictionary(grouping: gates.masks, by: \.group)
        let ones = gates.ones
        func changed(_ p: Probe) -> [String: NDArray] {
            switch p {
            case .unit(let g, let u):
                var out: [String: NDArray] = [:]
                for m in masksOf[g] ?? [] {
                    let v = m.units.map { $0 == u ? 0.0 : 1.0 }
                    switch m.dtype {
                    case .double: out[m.name] = NDArray(v, shape: m.shape)
                    case .float16: out[m.name] = NDArray(v.map { Float16($0) }, shape: m.shape)
                    default: out[m.name] = NDArray(v.map { Float($0) }, shape: m.shape)
                    }
                }
                return out
            case .block(let b):
                let name = gates.blockInputs[b]
                guard let one = ones[name] else { return [:] }
                return [name: GateMath.array([0], like: one)]
            }
        }

        // Output layout: every compared output flattened into one vector per sample.
        var sizes: [Int] = []
        let rows = max(1, self.rows)
        func flatten(_ outs: [String: NDArray], evaluation e: Int) throws -> [[Double]] {
            var flat = [[Double]](repeating: [], count: rows)
            for (i, name) in outputs.enumerated() {
                guard let y = outs[name] else { throw LDPrunerError.missingOutput(name) }
                let v = GateMath.values(y), per = v.count / rows
                if sizes.count == outputs.count, per != sizes[i] || v.count % rows != 0 {
                    throw LDPrunerError.shapeChanged(output: name, first: sizes[i] * rows, evaluation: e, count: v.count)
                }
                if sizes.count < outputs.count { sizes.append(per) }
                for r in 0..<rows { flat[r] += v[(r * per)..<((r + 1) * per)] }
            }
            return flat
        }

        let n = Double(inputs.count * rows)
        let total = probes.count * inputs.count
        // The first reference run sizes the outputs; accumulating around it keeps `E[x²] − E[x]²`
        // from cancelling (variance is shift-invariant).
        let shift = try flatten(interpreter.run(inputs[0].merging(ones) { _, b in b }), evaluation: 0)[0]
        var referenceRuns = 1
        var refSum = [Double](repeating: 0, count: shift.count), refSq = refSum
        let chunk = max(1, min(probes.count, accumulatorBudget / max(1, 16 * shift.count)))
        var scores = [Double](repeating: 0, count: probes.count)
        var dependent = [Int?](repeating: nil, count: probes.count)
        var done = 0, recomputed = 0, full = 0
        for start in stride(from: 0, to: probes.count, by: chunk) {
            let end = min(start + chunk, probes.count)
            var sum = [[Double]](repeating: [Double](repeating: 0, count: shift.count), count: end - start), sq = sum
            for (e, feeds) in inputs.enumerated() {
                let base = feeds.merging(ones) { _, b in b }
                // Reruns change gates only: a recording on the fused plan that keeps what they read.
                let tape = reuse ? try interpreter.runRecording(base, forRerunsChanging: Array(ones.keys)) : try interpreter.runRecording(base)
                referenceRuns += 1
                if start == 0 {
                    for ref in try flatten(tape.outputs, evaluation: e) {
                        for i in ref.indices {
                            let d = ref[i] - shift[i]
                            refSum[i] += d
                            refSq[i] += d * d
                        }
                    }
                }
                for p in start..<end {
                    let ch = changed(probes[p])
                    let outs = reuse ? try tape.rerun(changing: ch, fused: true) : try interpreter.run(base.merging(ch) { _, b in b })
                    if dependent[p] == nil { dependent[p] = reuse ? try tape.stepsDepending(on: Array(ch.keys)) : tape.stepCount }
                    recomputed += dependent[p] ?? 0
                    full += tape.stepCount
                    let k = p - start
                    for z in try flatten(outs, evaluation: e) {
                        sum[k].withUnsafeMutableBufferPointer { s in
                            sq[k].withUnsafeMutableBufferPointer { q in
                                for i in z.indices {
                                    let d = z[i] - shift[i]
                                    s[i] += d
                                    q[i] += d * d
                                }
                            }
                        }
                    }
                    done += 1
                    progress(done, total, Date().timeIntervalSince(started))
                }
            }
            for p in start..<end {
                let k = p - start
                var offset = 0, score = 0.0
                for size in sizes {
                    var dMean = 0.0, dStd = 0.0
                    for i in offset..<(offset + size) {
                        let mr = refSum[i] / n, mz = sum[k][i] / n
                        let sr = max(0, refSq[i] / n - mr * mr).squareRoot(), sz = max(0, sq[k][i] / n - mz * mz).squareRoot()
                        dMean += (mr - mz) * (mr - mz)
                        dStd += (sr - sz) * (sr - sz)
                    }
                    score += dMean.squareRoot() + dStd.squareRoot()
                    offset += size
                }
                scores[p] = score
            }
        }

        var units = gates.groups.map { [Double](repeating: only == nil ? 0 : .nan, count: $0.unitCount) }
        // A block whose gate input could not be made is never scored, so never chosen.
        var blocks = [Double](repeating: .infinity, count: gates.blocks.count)
        for (p, probe) in probes.enumerated() {
            switch probe {
            case .unit(let g, let u): units[g][u] = scores[p]
            case .block(let b): blocks[b] = scores[p]
            }
        }
        return LatentShiftScores(units: units, blocks: blocks, maskedRuns: done, referenceRuns: referenceRuns,
                                 stepsRecomputed: recomputed, stepsFull: full, seconds: Date().timeIntervalSince(started))
    }
}

/// Evaluation inputs of one shape stacked along the batch axis, so that one run (and one rerun per
/// masked unit, one backward pass per projection) serves every sample: GEMMs over all the samples'
/// rows instead of one per sample.
public enum SampleStack {
    /// `inputs` concatenated along axis 0, or `nil` when there is one input, or they differ in
    /// names, shapes or element types, or an array is a scalar.
    public static func stack(_ inputs: [[String: NDArray]]) -> [String: NDArray]? {
        guard inputs.count > 1, let first = inputs.first else { return nil }
        var out: [String: NDArray] = [:]
        for (name, a) in first {
            guard a.rank >= 1 else { return nil }
            var shape = a.shape
            shape[0] *= inputs.count
            let c = NDArray(uninitialized: a.dtype, shape: shape)
            for (i, set) in inputs.enumerated() {
                guard set.count == first.count, let b = set[name], b.shape == a.shape, b.dtype == a.dtype else { return nil }
                (c.rawPointer + i * a.byteCount).copyMemory(from: b.rawPointer, byteCount: a.byteCount)
            }
            out[name] = c
        }
        return out
    }

    /// `inputs` stacked when the model computes each sample's outputs from its own row alone: the
    /// stacked run's outputs, split along their first axis, match the samples' own runs (relative
    /// L2 within 1e-4). `nil` when they do not (a batch fixed in the graph, rows that interact) or
    /// the stacked run fails.
    public static func verified(_ inputs: [[String: NDArray]], interpreter: Interpreter, extra: [String: NDArray],
                                outputs: [String]) -> [String: NDArray]? {
        guard let stacked = stack(inputs),
              let all = try? interpreter.run(stacked.merging(extra) { _, b in b }) else { return nil }
        var singles: [[String: NDArray]] = []
        for set in inputs {
            guard let outs = try? interpreter.run(set.merging(extra) { _, b in b }) else { return nil }
            singles.append(outs)
        }
        for name in outputs {
            guard let y = all[name], y.rank >= 1 else { return nil }
            let parts = singles.compactMap { $0[name] }
            guard parts.count == inputs.count, let p = parts.first, p.rank >= 1, y.shape[0] == p.shape[0] * inputs.count,
                  Array(y.shape.dropFirst()) == Array(p.shape.dropFirst()) else { return nil }
            let joined = parts.flatMap(GateMath.values)
            guard GateMath.relativeL2(GateMath.values(y), joined) <= 1e-4 else { return nil }
        }
        return stacked
    }
}

/// Why LD-Pruner could not score.
public enum LDPrunerError: Error, CustomStringConvertible {
    case noInputs
    case noOutputs
    case missingOutput(String)
    case shapeChanged(output: String, first: Int, evaluation: Int, count: Int)

    public var description: String {
        switch self {
        case .noInputs:
            return "ld-pruner has no input to evaluate the model on (samples=0?)"
        case .noOutputs:
            return "ld-pruner needs a floating-point output to compare, and the model has none"
        case .missingOutput(let name):
            return "the model did not produce its output '\(name)'"
        case .shapeChanged(let name, let first, let e, let count):
            return "ld-pruner compares output '\(name)' elementwise across the calibration samples, but it has \(first) elements in the first and \(count) in evaluation \(e + 1); use calibration sets of one shape"
        }
    }
}
