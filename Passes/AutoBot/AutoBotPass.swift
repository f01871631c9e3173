import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `autobot`: trainable bottlenecks (AutoBot). Every channel, head and neuron gets a gate σ(α)
/// (σ = 0.9 at the start); with the weights frozen, only the gates are trained against
/// preservation (cross-entropy to the original's predictions for a classifier, normalized MSE of
/// the outputs otherwise) + β·L_flops + γ·L_bool, where F is the gated model's MACs as a
/// differentiable function of the gates (``GatedMACs``), T the target,
/// L_flops = (F−T)/(Fmax−T) if F > T else 1 − F/T, and L_bool = mean|λ − round λ|. Then a threshold
/// on the gates is bisected so that the kept MACs meet the target, and binary masks are left for
/// `fold-masks`. Held-out agreement with the original (top-1 for a classifier, cosine otherwise) is
/// reported in the statistics (compare other methods with `prunec --compare PIPELINE`).
public struct AutoBotPass: Pass {
    public struct Options: PassOptions {
        @PassOption("flops", .fraction, help: "fraction of the MACs to remove (0.5 keeps half)",
                    check: { $0 > 0 && $0 < 1 ? nil : "must be between 0 and 1 (the fraction of MACs removed)" })
        public var flops = 0.5
        @PassOption("steps", .between(0, 100_000), help: "optimizer steps")
        public var steps = 60
        @PassOption("lr", .between(1e-9, 100), help: "Adam learning rate on the gate logits")
        public var lr = 0.6
        @PassOption("beta", .between(0, 1e4), help: "weight of the FLOPs term")
        public var beta = 6.0
        @PassOption("gamma", .between(0, 1e4), help: "weight of the bool term")
        public var gamma = 0.4
        @PassOption("batch", .between(1, 1024), help: "calibration samples per step")
        public var batch = 2
        @PassOption("kinds", help: "group kinds to gate, joined by '+'", check: GroupKind.only([.channels, .heads, .neurons]))
        public var kinds: Set<GroupKind> = [.channels, .heads, .neurons]
        @PassOption("holdout", .between(0, 1024), help: "calibration samples held out for the reported agreement")
        public var holdout = 3
        public init() {}
    }

    public static let name = "autobot"
    public static let summary = "train sigmoid bottleneck gates against output preservation and a MACs target (AutoBot), then threshold them"

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let started = Date()
        let gates = try TrainableGates(model: model, kinds: options.kinds)
        let interpreter = try context.interpreter(for: gates.trainingModel)
        let needed = Set(gates.trainingModel.graph.inputs.filter { $0.initializer == nil }.map(\.name)).subtracting(gates.inputNames)
        var sets = context.calibration
        if sets.isEmpty {
            sets = try (0..<8).map { try SampleInputs.make(for: gates.trainingModel, seed: context.seed &+ UInt64($0)).filter { needed.contains($0.key) } }
        }
        let h = context.calibration.isEmpty ? min(options.holdout, max(0, sets.count - 1))
            : try CalibrationData.heldOutCount(options.holdout, of: sets.count, pass: Self.name)
        let train = Array(sets.dropLast(h)), held = h > 0 ? Array(sets.suffix(h)) : sets
        let outputs = gates.trainingModel.graph.outputs.filter { $0.type?.elementType?.isFloatingPoint == true }.map(\.name)
        let ones = gates.ones
        let refs = try train.map { try interpreter.run($0.merging(ones) { a, _ in a }) }
        let heldRefs = try held.map { try interpreter.run($0.merging(ones) { a, _ in a }) }

        // The classifier case: the first output is [N, classes].
        let classifier = refs.first?[outputs[0]].map { $0.rank == 2 && $0.shape[1] > 1 } ?? false
        let cost = try GatedMACs(model: model, groups: gates.groups, shapes: train[0].mapValues { Shape($0.shape) })
        guard cost.total > 0 else { throw PruningError.nothingToPrune(kinds: options.kinds, blocked: [("MACs", "the model's MACs are unknown")]) }
        let fmax = cost.total, target = (1 - options.flops) * fmax
        var alpha = gates.groups.map { [Double](repeating: Foundation.log(9.0), count: $0.unitCount) }
        var adam = AdamW(learningRate: options.lr, weightDecay: 0)
        let unitCount = Double(alpha.joined().count)
        func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }
        for step in 0..<options.steps {
            let lambda = alpha.map { $0.map(sigmoid) }
            var grad = gates.groups.map { [Double](repeating: 0, count: $0.unitCount) }
            var preserve = 0.0
            for b in 0..<options.batch {
                let k = (step * options.batch + b) % train.count
                let tape = try interpreter.runRecording(train[k].merging(gates.feeds(lambda)) { a, _ in a })
                var seeds: [String: NDArray] = [:]
                for (oi, name) in outputs.enumerated() {
                    guard let y = tape.outputs[name], let r = refs[k][name] else { continue }
                    let (l, g) = oi == 0 && classifier ? Preservation.crossEntropy(y, r) : Preservation.mse(y, r)
                    preserve += l / Double(options.batch)
                    seeds[name] = GateMath.array(g.map { $0 / Double(options.batch) }, like: y)
                }
                let g = gates.unitGradients(try tape.backward(seeds: seeds, wrt: gates.inputNames))
                for i in grad.indices { for u in grad[i].indices { grad[i][u] += g[i][u] } }
            }
            let (f, df) = cost.evaluate(lambda)
            let lf = f > target ? (f - target) / max(fmax - target, 1e-9) : 1 - f / target
            let dlf = f > target ? 1 / max(fmax - target, 1e-9) : -1 / target
            var lb = 0.0
            var flat: [Double] = [], flatGrad: [Double] = []
            for i in alpha.indices {
                for u in alpha[i].indices {
                    let l = lambda[i][u]
                    lb += abs(l - l.rounded()) / unitCount
                    let dl = grad[i][u] + options.beta * dlf * df[i][u] + options.gamma * (l >= 0.5 ? -1 : 1) / unitCount
                    flat.append(alpha[i][u])
                    flatGrad.append(dl * l * (1 - l))
                }
            }
            adam.step(&flat, gradients: flatGrad)
            try PruningError.checkFinite([preserve, lf, lb] + flat, pass: Self.name, step: step + 1, what: "the loss or a gate logit",
                                         hint: "lower lr (now \(options.lr)), beta (now \(options.beta)) or gamma (now \(options.gamma))")
            var n = 0
            for i in alpha.indices { for u in alpha[i].indices { alpha[i][u] = flat[n]; n += 1 } }
            let elapsed = Date().timeIntervalSince(started)
            context.progress(PassProgress(
                pass: Self.name, step: step + 1, total: options.steps, elapsed: elapsed,
                detail: "loss \(fmt(preserve + options.beta * lf + options.gamma * lb)) (preserve \(fmt(preserve)), flops \(fmt(lf)), bool \(fmt(lb))), MACs \(String(format: "%.1f", 100 * f / fmax))% of the original"))
        }

        let keep = UnitSelection.keepingOne(of: gates.groups.map(\.partialUnitSets),
                                            in: Threshold.keep(scores: alpha, cost: cost, target: target), scores: alpha)
        for (g, k) in zip(gates.groups, keep) { try Masks.set(k.map { $0 ? 1 : 0 }, for: g, in: model) }
        let kept = cost.evaluate(keep.map { $0.map { $0 ? 1 : 0 } }).macs
        var stats: [String: Double] = [
            "macs-kept-fraction": kept / fmax, "seconds": Date().timeIntervalSince(started),
        ]
        let what = classifier ? "top-1 agreement" : "cosine"
        func measure(_ k: [[Bool]], _ label: String) throws -> String {
            let feeds = gates.feeds(k.map { $0.map { $0 ? 1 : 0 } })
            var agree = 0.0, cos = 0.0
            for (set, ref) in zip(held, heldRefs) {
                let out = try interpreter.run(set.merging(feeds) { a, _ in a })
                agree += Preservation.agreement(out[outputs[0]]!, ref[outputs[0]]!, classifier: classifier)
                cos += Preservation.agreement(out[outputs[0]]!, ref[outputs[0]]!, classifier: false)
            }
            let n = Double(max(held.count, 1))
            stats["\(label)holdout-agreement"] = agree / n
            stats["\(label)holdout-cosine"] = cos / n
            stats["\(label)macs-kept-fraction"] = cost.evaluate(k.map { $0.map { $0 ? 1 : 0 } }).macs / fmax
            return "\(what) \(fmt(agree / n))" + (classifier ? " (cosine \(fmt(cos / n)))" : "")
        }
        let line = "autobot: MACs \(String(format: "%.1f", 100 * kept / fmax))% of the original (target \(String(format: "%.1f", 100 * (1 - options.flops)))%); held-out \(try measure(keep, ""))"
        context.logger.info("\(line)")
        for (g, k) in zip(gates.groups, keep) { stats["\(g.kind)-removed", default: 0] += Double(k.filter { !$0 }.count) }
        return PassResult(changed: true, statistics: stats)
    }

    func fmt(_ x: Double) -> String { String(format: "%.4g", x) }
}

/// Picks the units to keep: the highest scores first, until the gated MACs would exceed the
/// target (a bisection over the number of kept units; every group keeps at least its best unit).
enum Threshold {
    static func keep(scores: [[Double]], cost: GatedMACs, target: Double) -> [[Bool]] {
        let order = scores.enumerated().flatMap { g, s in s.indices.map { (g, $0, s[$0]) } }.sorted { $0.2 > $1.2 }
        func set(_ k: Int) -> [[Bool]] {
            var keep = scores.map { [Bool](repeating: false, count: $0.count) }
            for (g, s) in scores.enumerated() { if let best = s.indices.max(by: { s[$0] < s[$1] }) { keep[g][best] = true } }
            for (g, u, _) in order.prefix(k) { keep[g][u] = true }
            return keep
        }
        func macs(_ k: [[Bool]]) -> Double { cost.evaluate(k.map { $0.map { $0 ? 1 : 0 } }).macs }
        var lo = 0, hi = order.count
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if macs(set(mid)) <= target { lo = mid } else { hi = mid - 1 }
        }
        // Then fill the gap below the target with the next units (in score order) that still fit:
        // a large head skipped for a few small neurons.
        var keep = set(lo)
        for (g, u, _) in order.dropFirst(lo) where !keep[g][u] {
            keep[g][u] = true
            if macs(keep) > target { keep[g][u] = false }
        }
        return keep
    }
}

/// Preservation losses and agreement with the original's outputs.
enum Preservation {
    /// Cross-entropy of the candidate's softmax to the original's (rows of [N, C]), and its gradient.
    static func crossEntropy(_ y: NDArray, _ ref: NDArray) -> (Double, [Double]) {
        let (n, c) = (y.shape[0], y.shape[1])
        let yv = GateMath.values(y), rv = GateMath.values(ref)
        var loss = 0.0
        var g = [Double](repeating: 0, count: yv.count)
        for i in 0..<n {
            let p = softmax(Array(rv[(i * c)..<((i + 1) * c)])), q = softmax(Array(yv[(i * c)..<((i + 1) * c)]))
            for k in 0..<c {
                loss -= p[k] * Foundation.log(max(q[k], 1e-12)) / Double(n)
                g[i * c + k] = (q[k] - p[k]) / Double(n)
            }
        }
        return (loss, g)
    }

    /// MSE / E[ref²] and its gradient.
    static func mse(_ y: NDArray, _ ref: NDArray) -> (Double, [Double]) {
        let yv = GateMath.values(y), rv = GateMath.values(ref)
        let scale = max(rv.reduce(0) { $0 + $1 * $1 } / Double(max(rv.count, 1)), 1e-12)
        return (GateMath.mse(yv, rv) / scale, zip(yv, rv).map { 2 * ($0 - $1) / (Double(yv.count) * scale) })
    }

    /// Top-1 agreement (classifier) or cosine similarity with the original.
    static func agreement(_ y: NDArray, _ ref: NDArray, classifier: Bool) -> Double {
        let yv = GateMath.values(y), rv = GateMath.values(ref)
        if classifier {
            let (n, c) = (y.shape[0], y.shape[1])
            var same = 0
            for i in 0..<n {
                let a = (0..<c).max { yv[i * c + $0] < yv[i * c + $1] }, b = (0..<c).max { rv[i * c + $0] < rv[i * c + $1] }
                if a == b { same += 1 }
            }
            return Double(same) / Double(max(n, 1))
        }
        let dot = zip(yv, rv).reduce(0) { $0 + $1.0 * $1.1 }
        let ny = yv.reduce(0) { $0 + $1 * $1 }.squareRoot(), nr = rv.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return ny > 0 && nr > 0 ? dot / (ny * nr) : 0
    }

    static func softmax(_ x: [Double]) -> [Double] {
        let m = x.max() ?? 0
        let e = x.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }
}
