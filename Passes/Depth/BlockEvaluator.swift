import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// Runs a block-gated model with some blocks skipped, on scoring or held-out inputs, reusing the
/// recorded run with every block on (only the steps below a skipped block are recomputed).
final class BlockEvaluator {
    let gates: TrainableGates
    let interpreter: Interpreter
    let scoring: [[String: NDArray]]
    let held: [[String: NDArray]]
    /// For a causal LM: the token-id input and the logits output.
    let tokens: String?
    let logits: String?
    var isCausalLM: Bool { tokens != nil && logits != nil }
    let inputNames: [String]
    /// Whether the inputs are synthesized (no calibration data).
    let synthesized: Bool
    /// Whether `held` is the scoring inputs themselves (holdout=0).
    let inSample: Bool
    private var tapes: [Bool: [Tape]] = [:]
    /// The blocks skipped in the recorded runs of the scoring inputs (all on until ``rebase(skipping:)``).
    private var base: [Double]?
    /// The outputs with every block on (what drift is measured from).
    private var references: [Bool: [[String: NDArray]]] = [:]

    /// `diffusion`: how a denoiser is noised (`nil`: evaluate it on the data as given).
    init(gates: TrainableGates, context: PassContext, holdout: Int, diffusion: DiffusionOptions? = nil) throws {
        self.gates = gates
        let model = gates.trainingModel
        interpreter = try context.interpreter(for: model)
        let gateNames = Set(gates.blockInputs + gates.inputNames)
        let inputs = model.graph.inputs.filter { $0.initializer == nil && !gateNames.contains($0.name) }
        let names = inputs.map(\.name)
        inputNames = names
        synthesized = context.calibration.isEmpty
        // A causal LM: one integer [batch, seq] input, and an output [batch, seq, vocab].
        let ids = inputs.count == 1 && inputs[0].type?.elementType.map { [.int64, .int32].contains($0) } == true
            && inputs[0].type?.shape?.rank == 2 ? inputs[0] : nil
        let out = model.graph.outputs.first { o in
            guard let s = o.type?.shape, s.rank == 3, let i = ids?.type?.shape else { return false }
            return s.dims[0] == i.dims[0] && s.dims[1] == i.dims[1]
        }
        tokens = ids != nil && out != nil ? ids?.name : nil
        logits = ids != nil ? out?.name : nil
        // A denoiser is evaluated at noise levels of its own process, its latent noised from the
        // calibration sample (as LD-Pruner scores it), not only at the timestep the data holds.
        if let diffusion, tokens == nil, (try? DenoiserInputs.map(model, excluding: gateNames)) != nil {
            let evaluation = try LatentEvaluation.make(model: model, gateInputs: gateNames, samples: 8, holdout: holdout,
                                                       timesteps: 3, diffusion: diffusion, pass: DepthPass.name, context: context)
            scoring = evaluation.scoring
            held = evaluation.heldOut.isEmpty ? evaluation.scoring : evaluation.heldOut
            inSample = evaluation.heldOut.isEmpty
            return
        }
        let given = context.calibration.map { $0.filter { names.contains($0.key) } }
        if !given.isEmpty {
            // Calibration data: the last samples are held out; none with holdout=0, where the
            // report is on the scoring samples themselves (never on synthesized inputs).
            let h = try CalibrationData.heldOutCount(holdout, of: given.count, pass: DepthPass.name)
            scoring = Array(given.dropLast(h))
            held = h > 0 ? Array(given.suffix(h)) : scoring
            inSample = h == 0
            return
        }
        let sets = try (0..<8).map { k in
            try SampleInputs.make(for: model, seed: context.seed &+ UInt64(k)).filter { names.contains($0.key) }
        }
        let h = min(holdout, sets.count - 1)
        scoring = Array(sets.dropLast(h))
        inSample = false
        if h > 0 {
            held = Array(sets.suffix(h))
        } else {
            held = try (0..<max(1, holdout)).map { k in
                try SampleInputs.make(for: model, seed: context.seed &+ 1000 &+ UInt64(k)).filter { names.contains($0.key) }
            }
        }
    }

    /// One recorded run per input set, with every block on (on the scoring inputs, the blocks of
    /// the last ``rebase(skipping:)`` skipped).
    func recorded(heldOut: Bool) throws -> [Tape] {
        if let t = tapes[heldOut] { return t }
        let gateFeeds = !heldOut ? base.map { gates.feeds([], blocks: $0) } ?? gates.ones : gates.ones
        let t = try (heldOut ? held : scoring).map { try interpreter.runRecording($0.merging(gateFeeds) { a, _ in a }) }
        tapes[heldOut] = t
        if heldOut || base == nil { references[heldOut] = t.map(\.outputs) }
        return t
    }

    /// Records the scoring runs again with the blocks whose entry in `skip` is 0 skipped, so that
    /// later evaluations that skip these and more recompute only the steps below the others (a
    /// greedy search's chosen blocks).
    func rebase(skipping skip: [Double]) throws {
        _ = try recorded(heldOut: false)
        base = skip
        tapes[false] = nil
    }

    /// Outputs of every set with the blocks whose entry in `skip` is 0 skipped.
    func outputs(skipping skip: [Double], heldOut: Bool) throws -> [[String: NDArray]] {
        let feeds = gates.feeds([], blocks: skip)
        let recordedWith = heldOut ? nil : base
        let changed = feeds.filter { name, _ in
            guard let i = gates.blockInputs.firstIndex(of: name) else { return false }
            return skip[i] != (recordedWith?[i] ?? 1)
        }
        return try recorded(heldOut: heldOut).map { changed.isEmpty ? $0.outputs : try $0.rerun(changing: changed) }
    }

    /// Perplexity of next-token prediction over the sets.
    func perplexity(skipping skip: [Double], heldOut: Bool) throws -> Double {
        guard let tokens, let logits else { return .nan }
        let sets = heldOut ? held : scoring
        var total = 0.0, count = 0
        for (set, out) in zip(sets, try outputs(skipping: skip, heldOut: heldOut)) {
            guard let ids = set[tokens], let y = out[logits] else { continue }
            let (ce, n) = CausalLM.crossEntropy(logits: y, ids: ids)
            total += ce * Double(n)
            count += n
        }
        guard count > 0 else {
            // exp(0/1) = 1 would read as a perfect model.
            let lengths = Set(sets.compactMap { $0[tokens]?.shape.last }).sorted()
            throw DepthError.noPositions(sets: sets.count, heldOut: heldOut, lengths: lengths, synthesized: synthesized)
        }
        return Foundation.exp(total / Double(count))
    }

    /// Mean relative L2 drift of the float outputs from the run with every block on.
    func drift(skipping skip: [Double], heldOut: Bool) throws -> Double {
        _ = try recorded(heldOut: heldOut)
        let refs = references[heldOut] ?? []
        var total = 0.0, n = 0
        for (ref, out) in zip(refs, try outputs(skipping: skip, heldOut: heldOut)) {
            for (name, r) in ref where r.dtype.isFloatingPoint {
                guard let o = out[name] else { continue }
                total += GateMath.relativeL2(GateMath.values(o), GateMath.values(r))
                n += 1
            }
        }
        return total / Double(max(n, 1))
    }
}

/// Next-token cross-entropy of a causal LM's logits.
enum CausalLM {
    /// Calls `body(row, target, max, Σexp)` for every position that predicts a next token: `row` is
    /// the offset of its logits in `l`, `max` and `Σexp` the log-sum-exp parts of its softmax.
    static func positions(_ y: NDArray, _ ids: NDArray, _ l: [Double], _ body: (Int, Int, Double, Double) -> Void) {
        let (b, s, v) = (y.shape[0], y.shape[1], y.shape[2])
        let tok: [Int] = ids.dtype == .int32 ? ids.buffer(as: Int32.self).map(Int.init) : ids.buffer(as: Int64.self).map(Int.init)
        for bi in 0..<b {
            for t in 0..<(s - 1) {
                let row = (bi * s + t) * v
                let target = tok[bi * s + t + 1]
                guard target >= 0 && target < v else { continue }
                var m = -Double.infinity
                for k in 0..<v { m = max(m, l[row + k]) }
                var z = 0.0
                for k in 0..<v { z += Foundation.exp(l[row + k] - m) }
                body(row, target, m, z)
            }
        }
    }

    /// Mean −log p(ids[t+1] | logits[t]) over batch and positions, and the number of positions.
    static func crossEntropy(logits y: NDArray, ids: NDArray) -> (Double, Int) {
        let l = GateMath.values(y)
        var total = 0.0, n = 0
        positions(y, ids, l) { row, target, m, z in
            total += (m + Foundation.log(z)) - l[row + target]
            n += 1
        }
        return (n > 0 ? total / Double(n) : 0, n)
    }

    /// ∂(mean cross-entropy)/∂logits, with `count` the number of positions over all sets (so
    /// gradients of several sets add up to the gradient of the mean).
    static func crossEntropyGradient(logits y: NDArray, ids: NDArray, count: Int) -> NDArray {
        let v = y.shape[2]
        let l = GateMath.values(y)
        var g = [Double](repeating: 0, count: l.count)
        positions(y, ids, l) { row, target, m, z in
            for k in 0..<v { g[row + k] = Foundation.exp(l[row + k] - m) / z / Double(count) }
            g[row + target] -= 1 / Double(count)
        }
        return GateMath.array(g, like: y)
    }
}

/// Taylor+ importance of residual blocks: Σ|W ⊙ ∂L/∂W| over the weights only the block reads.
enum TaylorScores {
    static func blocks(_ model: Model, blocks: [ResidualBlock], calibration: [[String: NDArray]], isCausalLM: Bool,
                       logits: String?, tokens: String?, context: PassContext) throws -> [Double] {
        // Weights per block: initializers every reader of which is in the branch.
        var owned: [[Value]] = []
        for b in blocks {
            let inBranch = Set(b.branch.map(ObjectIdentifier.init))
            var seen: Set<ObjectIdentifier> = []
            var ws: [Value] = []
            for n in b.branch {
                for case let v? in n.inputs where v.initializer?.dtype.isFloatingPoint == true && seen.insert(ObjectIdentifier(v)).inserted {
                    if v.uses.allSatisfy({ inBranch.contains(ObjectIdentifier($0.node)) }) { ws.append(v) }
                }
            }
            owned.append(ws)
        }
        let names = Array(Set(owned.joined().map(\.name))).sorted()
        // Weights must stay slots of their own: no constant folding into them.
        let interp = try Interpreter(model: model, options: .init(threads: context.threads, profile: false, foldConstants: false))
        let positions = isCausalLM ? calibration.reduce(0) { n, set in
            guard let tokens, let ids = set[tokens] else { return n }
            return n + ids.shape[0] * max(0, ids.shape[1] - 1)
        } : 0
        var sum: [String: [Double]] = [:]
        for set in calibration {
            let tape = try interp.runRecording(set)
            var seeds: [String: NDArray] = [:]
            if isCausalLM, let logits, let tokens, let y = tape.outputs[logits], let ids = set[tokens] {
                seeds[logits] = CausalLM.crossEntropyGradient(logits: y, ids: ids, count: max(positions, 1))
            } else {
                // L = ½·mean(out²) per float output: the output's sensitivity to each weight.
                for (name, y) in tape.outputs where y.dtype.isFloatingPoint {
                    seeds[name] = GateMath.array(GateMath.values(y).map { $0 / Double(y.count * calibration.count) }, like: y)
                }
            }
            let g = try tape.backward(seeds: seeds, wrt: names)
            for (name, a) in g {
                let v = GateMath.values(a)
                sum[name] = sum[name].map { zip($0, v).map(+) } ?? v
            }
        }
        return try owned.map { ws in
            try ws.reduce(0.0) { acc, w in
                guard let t = w.initializer, let g = sum[w.name] else { return acc }
                return acc + zip(try t.floats(), g).reduce(0) { $0 + abs(Double($1.0) * $1.1) }
            }
        }
    }
}
