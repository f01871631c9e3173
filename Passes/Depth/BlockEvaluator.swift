import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// Runs a block-gated model with some blocks skipped, on scoring or held-out inputs, reusing the
/// recorded run with every block on (only the steps below a skipped block are recomputed).
final class BlockEvaluator {
    let gates: TrainableGates
    let interpreter: Interpreter
    private(set) var scoring: [[String: NDArray]]
    private(set) var held: [[String: NDArray]]
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
    /// Only perplexity is measured (after ``joinSets()``): the recorded runs' logits are measured
    /// once and dropped, and drift has no references.
    private var perplexityOnly = false
    /// Perplexities measured so far, by split and skipped blocks.
    private var measured: [String: Double] = [:]
    /// Work so far in whole runs of the inputs of one split: a recording is 1, a rerun the share
    /// of the steps it recomputes.
    private(set) var forwardPasses = 0.0

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

    /// Joins the scoring sets into one batch along axis 0, and the held-out sets into another, when
    /// the model's batch dimension is not fixed and every set has the same shapes past axis 0 (a
    /// causal LM's calibration chunks). A rerun then makes one product per weight for all sets
    /// (the weights packed once, with more rows) instead of one per set. For perplexity only,
    /// which sums over all positions however they are batched (drift averages per set); call it
    /// before anything is recorded.
    func joinSets() {
        precondition(tapes.isEmpty, "joinSets() after a recording")
        perplexityOnly = true
        let graphInputs = gates.trainingModel.graph.inputs
        for name in inputNames {
            guard let shape = graphInputs.first(where: { $0.name == name })?.type?.shape, shape.rank >= 1 else { return }
            if case .known = shape.dims[0] { return }
        }
        func joined(_ sets: [[String: NDArray]]) -> [[String: NDArray]] {
            guard sets.count > 1, let first = sets.first else { return sets }
            var out: [String: NDArray] = [:]
            for name in inputNames {
                let parts = sets.compactMap { $0[name] }
                guard parts.count == sets.count, let a = first[name], a.rank >= 1,
                    parts.allSatisfy({ $0.dtype == a.dtype && $0.rank == a.rank && $0.shape.dropFirst() == a.shape.dropFirst() })
                else { return sets }
                let j = NDArray(zeros: a.dtype, shape: [parts.reduce(0) { $0 + $1.shape[0] }] + a.shape.dropFirst())
                var offset = 0
                for p in parts {
                    (j.rawPointer + offset).copyMemory(from: p.rawPointer, byteCount: p.byteCount)
                    offset += p.byteCount
                }
                out[name] = j
            }
            return [out]
        }
        scoring = joined(scoring)
        held = inSample ? scoring : joined(held)
    }

    /// One recorded run per input set, with every block on (on the scoring inputs, the blocks of
    /// the last ``rebase(skipping:)`` skipped).
    func recorded(heldOut: Bool) throws -> [Tape] {
        if let t = tapes[heldOut] { return t }
        // With holdout=0 the held-out runs are the scoring runs, as long as those have every block
        // on: one recording, not two of the same inputs.
        let allOn = [Double](repeating: 1, count: gates.blockInputs.count)
        if heldOut && inSample && base == nil, let t = tapes[false] {
            tapes[true] = t
            references[true] = references[false]
            measured[Self.key(allOn, true)] = measured[Self.key(allOn, false)]
            return t
        }
        let gateFeeds = !heldOut ? base.map { gates.feeds([], blocks: $0) } ?? gates.ones : gates.ones
        // Each tape keeps only what reruns changing block gates read: on a 1B decoder with 16
        // sequences a full recording is every activation of the batch (17 GB), this is the
        // residual stream and branch at each gate.
        let t = try (heldOut ? held : scoring).map {
            try interpreter.runRecording($0.merging(gateFeeds) { a, _ in a }, forRerunsChanging: gates.blockInputs)
        }
        tapes[heldOut] = t
        forwardPasses += 1
        if perplexityOnly, let logits {
            // A recorded run's logits are as large as a run's largest array (16 × 128 × 128,256
            // float32 is 1 GB): measured now, then dropped; reruns make their own.
            let skip = heldOut ? allOn : (base ?? allOn)
            measured[Self.key(skip, heldOut)] = try perplexity(of: t.map(\.outputs), heldOut: heldOut)
            for tape in t { tape.releaseOutput(named: logits) }
        } else if heldOut || base == nil {
            references[heldOut] = t.map(\.outputs)
        }
        return t
    }

    private static func key(_ skip: [Double], _ heldOut: Bool) -> String { "\(heldOut) \(skip)" }

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
        let tapes = try recorded(heldOut: heldOut)
        if !changed.isEmpty, let t = tapes.first, t.stepCount > 0 {
            forwardPasses += Double(try t.stepsDepending(on: Array(changed.keys))) / Double(t.stepCount)
        }
        return try tapes.map { changed.isEmpty ? $0.outputs : try $0.rerun(changing: changed, fused: true) }
    }

    /// Perplexity of next-token prediction over the sets.
    func perplexity(skipping skip: [Double], heldOut: Bool) throws -> Double {
        // Recording measures the recorded run itself (and drops its logits).
        _ = try recorded(heldOut: heldOut)
        if let p = measured[Self.key(skip, heldOut)] { return p }
        let p = try perplexity(of: try outputs(skipping: skip, heldOut: heldOut), heldOut: heldOut)
        measured[Self.key(skip, heldOut)] = p
        return p
    }

    /// Perplexity of next-token prediction from the outputs of the scoring or held-out sets.
    private func perplexity(of outputs: [[String: NDArray]], heldOut: Bool) throws -> Double {
        guard let tokens, let logits else { return .nan }
        let sets = heldOut ? held : scoring
        var total = 0.0, count = 0
        for (set, out) in zip(sets, outputs) {
            guard let ids = set[tokens], let y = out[logits] else { continue }
            let (ce, n) = CausalLM.crossEntropy(logits: y, ids: ids, threads: interpreter.options.threads)
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
        precondition(!perplexityOnly, "drift has no references after joinSets()")
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
    /// The positions that predict a next token: the offset of each one's logits row in `y`
    /// ([batch, seq, vocab]) and its target id, in batch then position order.
    static func targets(_ y: NDArray, _ ids: NDArray) -> [(row: Int, target: Int)] {
        let (b, s, v) = (y.shape[0], y.shape[1], y.shape[2])
        let tok: [Int] = ids.dtype == .int32 ? ids.buffer(as: Int32.self).map(Int.init) : ids.buffer(as: Int64.self).map(Int.init)
        var out: [(row: Int, target: Int)] = []
        for bi in 0..<b {
            for t in 0..<(s - 1) {
                let target = tok[bi * s + t + 1]
                guard target >= 0 && target < v else { continue }
                out.append(((bi * s + t) * v, target))
            }
        }
        return out
    }

    /// Element `row + k` of `y` for k in 0..<v, as Doubles, into `into` (float32 read directly:
    /// a 49k-word vocabulary makes this the inner loop of every perplexity).
    static func row(_ y: NDArray, _ row: Int, _ v: Int, into l: UnsafeMutableBufferPointer<Double>) {
        if y.dtype == .float {
            let p = y.pointer(as: Float.self) + row
            for k in 0..<v { l[k] = Double(p[k]) }
        } else {
            for k in 0..<v { l[k] = GateMath.element(y, row + k) }
        }
    }

    /// max and Σexp(l − max) of one row: the log-sum-exp parts of its softmax.
    static func logSumExpParts(_ l: UnsafeMutableBufferPointer<Double>) -> (Double, Double) {
        var m = -Double.infinity
        for x in l { m = max(m, x) }
        var z = 0.0
        for x in l { z += Foundation.exp(x - m) }
        return (m, z)
    }

    /// Mean −log p(ids[t+1] | logits[t]) over batch and positions, and the number of positions.
    /// Rows are spread over `threads` threads; each position's term is summed in order, so the
    /// result does not depend on the thread count.
    static func crossEntropy(logits y: NDArray, ids: NDArray, threads: Int = 1) -> (Double, Int) {
        let rows = targets(y, ids)
        let v = y.shape[2]
        var terms = [Double](repeating: 0, count: rows.count)
        let chunks = max(1, min(threads, rows.count))
        terms.withUnsafeMutableBufferPointer { out in
            // Each thread writes its own rows' terms.
            nonisolated(unsafe) let out = out
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let l = UnsafeMutableBufferPointer<Double>.allocate(capacity: v)
                defer { l.deallocate() }
                for i in stride(from: c, to: rows.count, by: chunks) {
                    row(y, rows[i].row, v, into: l)
                    let (m, z) = logSumExpParts(l)
                    out[i] = (m + Foundation.log(z)) - l[rows[i].target]
                }
            }
        }
        let total = terms.reduce(0, +)
        return (rows.isEmpty ? 0 : total / Double(rows.count), rows.count)
    }

    /// ∂(mean cross-entropy)/∂logits, with `count` the number of positions over all sets (so
    /// gradients of several sets add up to the gradient of the mean).
    static func crossEntropyGradient(logits y: NDArray, ids: NDArray, count: Int) -> NDArray {
        let v = y.shape[2]
        var g = [Double](repeating: 0, count: y.count)
        let l = UnsafeMutableBufferPointer<Double>.allocate(capacity: v)
        defer { l.deallocate() }
        for (r, target) in targets(y, ids) {
            row(y, r, v, into: l)
            let (m, z) = logSumExpParts(l)
            for k in 0..<v { g[r + k] = Foundation.exp(l[k] - m) / z / Double(count) }
            g[r + target] -= 1 / Double(count)
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
