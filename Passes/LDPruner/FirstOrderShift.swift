import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// First-order estimates of LD-Pruner's scores (``LatentShiftScores``) for every unit at once,
/// from reverse-mode passes instead of one masked run per unit.
///
/// Masking unit `u` (its gate 1 → 0) changes output `Z_s` of evaluation `s` by
/// `ΔZ_s ≈ −∂Z_s/∂g_u`. Both terms of the score are norms of linear functionals of the `ΔZ_s`:
/// - the mean shift `mean_s ΔZ_s`;
/// - the std shift, to first order `δstd_e = Σ_s w_se ΔZ_se` with
///   `w_se = (Z_se − mean_e) / (S · std_e)` (elements whose std is zero are left out).
///
/// Their norms are sketched with `projections` Gaussian vectors `r` per output and term
/// (Johnson–Lindenstrauss: `‖v‖² ≈ mean_k (r_k·v)²`): one backward pass of `Σ (r ⊙ w_s)·Z_s`
/// per evaluation, projection, term and output yields `r·∂Z_s/∂g` for every gate at once. The
/// cost is `2 · projections · outputs` backward passes per evaluation, whatever the unit count;
/// the sketch's relative error on a norm is about `1/√(2·projections)`.
public struct FirstOrderShiftEstimator {
    /// The interpreter of ``TrainableGates/trainingModel``.
    public let interpreter: Interpreter
    /// The gates.
    public let gates: TrainableGates
    /// Evaluation feeds, without gate inputs.
    public let inputs: [[String: NDArray]]
    /// The outputs compared.
    public let outputs: [String]
    /// Random projections per output and term.
    public var projections: Int
    /// Seed of the projections.
    public var seed: UInt64
    /// Samples each input holds, stacked along the batch axis (``SampleStack``): one backward
    /// pass then serves them all.
    public var rows = 1

    public init(interpreter: Interpreter, gates: TrainableGates, inputs: [[String: NDArray]], outputs: [String], projections: Int,
                seed: UInt64) {
        self.interpreter = interpreter
        self.gates = gates
        self.inputs = inputs
        self.outputs = outputs
        self.projections = projections
        self.seed = seed
    }

    /// What ``estimate(progress:)`` found.
    public struct Estimates {
        /// Per group of ``TrainableGates/groups``, per unit: the estimated score.
        public let units: [[Double]]
        /// Per block of ``TrainableGates/blocks`` (infinity for a block without a gate input).
        public let blocks: [Double]
        /// The projections of each term, `[output][term: 0 mean, 1 std][projection][group][unit]`,
        /// for estimates from fewer projections (``scores(projections:)``).
        public let sketches: [[[[[Double]]]]]
        /// Backward passes run.
        public let backwardRuns: Int
        /// Wall time.
        public let seconds: Double

        /// The estimates from the first `k` projections of each term.
        public func scores(projections k: Int) -> [[Double]] {
            var out = units.map { [Double](repeating: 0, count: $0.count) }
            for terms in sketches {
                for term in terms {
                    let used = term.prefix(max(1, k))
                    for g in out.indices {
                        for u in out[g].indices {
                            let sq = used.reduce(0) { $0 + $1[g][u] * $1[g][u] }
                            out[g][u] += (sq / Double(used.count)).squareRoot()
                        }
                    }
                }
            }
            return out
        }
    }

    /// Estimates every unit's score; `progress(backward passes done, total, seconds)` is called
    /// after each backward pass.
    ///
    /// - Throws: ``LDPrunerError`` when there is nothing to evaluate on or the outputs change shape
    ///   between evaluations; `RuntimeError` from the interpreter (a node on the gradient path
    ///   without a VJP).
    public func estimate(progress: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> Estimates {
        let started = Date()
        guard !inputs.isEmpty else { throw LDPrunerError.noInputs }
        guard !outputs.isEmpty else { throw LDPrunerError.noOutputs }
        let ones = gates.ones
        let blockNames = gates.blockInputs.filter { !$0.isEmpty }
        let wrt = gates.inputNames + blockNames
        let rows = max(1, self.rows)
        let k = max(1, projections), s = Double(inputs.count * rows)

        // The reference outputs (per input, per output: the rows' values one after another), their
        // mean and std per element over every sample.
        var refs: [[[Double]]] = []  // [input][output]
        for (e, feeds) in inputs.enumerated() {
            let outs = try interpreter.run(feeds.merging(ones) { _, b in b })
            refs.append(try outputs.enumerated().map { i, name in
                guard let y = outs[name] else { throw LDPrunerError.missingOutput(name) }
                let v = GateMath.values(y)
                if let first = refs.first, first[i].count != v.count || v.count % rows != 0 {
                    throw LDPrunerError.shapeChanged(output: name, first: first[i].count, evaluation: e, count: v.count)
                }
                return v
            })
        }
        // Std weights per output, `(Z_se − mean_e) / (S · std_e)` without the evaluation's Z.
        var means: [[Double]] = [], inverseStd: [[Double]] = []
        for o in outputs.indices {
            let n = refs[0][o].count / rows
            var mean = [Double](repeating: 0, count: n), variance = mean
            for r in refs { for row in 0..<rows { for i in 0..<n { mean[i] += r[o][row * n + i] / s } } }
            for r in refs {
                for row in 0..<rows { for i in 0..<n { variance[i] += (r[o][row * n + i] - mean[i]) * (r[o][row * n + i] - mean[i]) / s } }
            }
            // An element that (nearly) does not vary across the evaluations has no first-order std shift.
            let rms = (variance.reduce(0, +) / Double(max(n, 1))).squareRoot()
            means.append(mean)
            inverseStd.append(variance.map { v in v.squareRoot() > 1e-6 * rms && v > 0 ? 1 / (s * v.squareRoot()) : 0 })
        }
        // Gaussian projections per output and term.
        var rng = NoiseSource(seed: seed ^ 0x1D_F1E5)
        let directions: [[[[Double]]]] = outputs.indices.map { o in
            (0..<2).map { _ in (0..<k).map { _ in (0..<(refs[0][o].count / rows)).map { _ in rng.normal() } } }
        }

        let zeroUnits = gates.groups.map { [Double](repeating: 0, count: $0.unitCount) }
        var sketches = outputs.map { _ in (0..<2).map { _ in [[[Double]]](repeating: zeroUnits, count: k) } }
        var blockSketches = outputs.map { _ in (0..<2).map { _ in [[Double]](repeating: [Double](repeating: 0, count: blockNames.count), count: k) } }
        let total = inputs.count * outputs.count * 2 * k
        var done = 0
        for (e, feeds) in inputs.enumerated() {
            let tape = try interpreter.runRecording(feeds.merging(ones) { _, b in b })
            for (o, name) in outputs.enumerated() {
                guard let y = tape.outputs[name] else { throw LDPrunerError.missingOutput(name) }
                let z = refs[e][o], n = means[o].count
                let weights = z.indices.map { (z[$0] - means[o][$0 % n]) * inverseStd[o][$0 % n] }
                for term in 0..<2 {
                    for p in 0..<k {
                        let r = directions[o][term][p]
                        let seed = term == 0 ? z.indices.map { r[$0 % n] / s } : z.indices.map { r[$0 % n] * weights[$0] }
                        let grads = try tape.backward(seeds: [name: GateMath.array(seed, like: y)], wrt: wrt)
                        let g = gates.unitGradients(grads)
                        for gi in g.indices {
                            for u in g[gi].indices { sketches[o][term][p][gi][u] += g[gi][u] }
                        }
                        for (b, bn) in blockNames.enumerated() {
                            if let a = grads[bn], a.count > 0 { blockSketches[o][term][p][b] += GateMath.element(a, 0) }
                        }
                        done += 1
                        progress(done, total, Date().timeIntervalSince(started))
                    }
                }
            }
        }
        var units = zeroUnits
        var blocks = [Double](repeating: 0, count: blockNames.count)
        for o in outputs.indices {
            for term in 0..<2 {
                for gi in units.indices {
                    for u in units[gi].indices {
                        let sq = sketches[o][term].reduce(0) { $0 + $1[gi][u] * $1[gi][u] }
                        units[gi][u] += (sq / Double(k)).squareRoot()
                    }
                }
                for b in blocks.indices {
                    blocks[b] += (blockSketches[o][term].reduce(0) { $0 + $1[b] * $1[b] } / Double(k)).squareRoot()
                }
            }
        }
        // Back to the order of ``TrainableGates/blocks`` (a block without a gate input is never chosen).
        var blockScores = [Double](repeating: .infinity, count: gates.blocks.count)
        var next = 0
        for (b, name) in gates.blockInputs.enumerated() where !name.isEmpty {
            blockScores[b] = blocks[next]
            next += 1
        }
        return Estimates(units: units, blocks: blockScores, sketches: sketches, backwardRuns: done,
                         seconds: Date().timeIntervalSince(started))
    }
}
