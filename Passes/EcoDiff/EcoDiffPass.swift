import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `ecodiff`: learnable structured sparsity for diffusion models (EcoDiff). Every attention head
/// and FFN neuron gets a hard-concrete gate (β = 0.83, ζ = 1.1, γ = −0.1, log α = 3); the gates
/// are trained with AdamW against `MSE(final latent with gates, final latent of the original) / E[ref²]
/// + λ·L0` over whole denoising runs (DDIM or DDPM, ε or v prediction, classifier-free guidance
/// when the calibration data has `uncond.<input>` arrays), differentiated by reverse mode through
/// the interpreter with time-step checkpointing. Then the gates are binarized by `log α` to
/// remove `sparsity` of the prunable head+FFN parameters, and left as masks for `fold-masks`.
///
/// `objective=output` trains against the model's outputs on the calibration inputs instead, for
/// any model. The held-out drift of the result (and of magnitude pruning at the same sparsity,
/// with `compare=true`) is reported in the pass statistics.
public struct EcoDiffPass: Pass {
    public struct Options: PassOptions {
        public static let declarations: [OptionSpec] = [
            OptionSpec("sparsity", .fraction, default: .double(0.2), help: "fraction of the prunable head+FFN parameters to remove"),
            OptionSpec("lambda", .double, default: .double(0.5), help: "weight of the sparsity regularizer"),
            OptionSpec("reg", .choice(["l0", "l1"]), default: .string("l0"), help: "regularizer: expected L0 (P(gate ≠ 0)) or L1 of the gates, parameter-weighted"),
            OptionSpec("steps", .int, default: .int(30), help: "optimizer steps (one denoising run each)"),
            OptionSpec("lr", .double, default: .double(0.1), help: "AdamW learning rate on log α"),
            OptionSpec("denoise-steps", .int, default: .int(8), help: "sampler steps per denoising run"),
            OptionSpec("samples", .int, default: .int(4), help: "training samples (prompts from the calibration sets × noise seeds), used in turn"),
            OptionSpec("holdout", .int, default: .int(2), help: "held-out samples (other seeds and prompts) for the reported drift"),
            OptionSpec("kinds", .string, default: .string("heads+neurons"), help: "group kinds to gate, joined by '+' (heads, neurons, channels)"),
            OptionSpec("objective", .choice(["diffusion", "output"]), default: .string("diffusion"),
                       help: "diffusion: final latent of a sampling run; output: the model's outputs on the calibration inputs"),
            OptionSpec("sampler", .choice(["ddim", "ddpm"]), default: .string("ddim"), help: "sampler of the denoising runs"),
            OptionSpec("prediction", .choice(["epsilon", "v"]), default: .string("epsilon"), help: "what the denoiser predicts"),
            OptionSpec("betas", .choice(["scaled-linear", "linear"]), default: .string("scaled-linear"), help: "noise schedule"),
            OptionSpec("guidance", .double, default: .double(5), help: "classifier-free guidance scale (when the calibration data has uncond.<input> arrays)"),
            OptionSpec("sample", .string, default: .string("auto"), help: "the latent input (auto: the float input shaped like the output)"),
            OptionSpec("timestep", .string, default: .string("auto"), help: "the timestep input (auto: by name)"),
            OptionSpec("max-per-group", .fraction, default: .double(0.9), help: "largest fraction of one group that may be removed"),
            OptionSpec("scope", .choice(["global", "layer"]), default: .string("global"),
                       help: "global: binarize by log α across groups; layer: every group loses the same fraction of its units"),
            OptionSpec("min-keep", .int, default: .int(1), help: "fewest units a group keeps"),
            OptionSpec("compare", .bool, default: .bool(true), help: "also report magnitude pruning's held-out drift at the same sparsity"),
        ]
        public var sparsity: Double
        public var lambda: Double
        public var l1: Bool
        public var steps: Int
        public var lr: Double
        public var denoiseSteps: Int
        public var samples: Int
        public var holdout: Int
        public var kinds: Set<GroupKind>
        public var diffusion: Bool
        public var sampler: NoiseSchedule.Sampler
        public var prediction: NoiseSchedule.Prediction
        public var betas: NoiseSchedule.Betas
        public var guidance: Double
        public var sample: String?
        public var timestep: String?
        public var maxPerGroup: Double
        public var global: Bool
        public var minKeep: Int
        public var compare: Bool

        public init(_ v: OptionValues) throws {
            sparsity = v.double("sparsity")
            guard sparsity < 1 else { throw OptionError(key: "sparsity", message: "would remove everything: use a fraction below 1 (100%)") }
            lambda = v.double("lambda")
            guard lambda >= 0 else { throw OptionError(key: "lambda", message: "must be 0 or more") }
            l1 = v.string("reg") == "l1"
            steps = v.int("steps")
            denoiseSteps = v.int("denoise-steps")
            samples = v.int("samples")
            holdout = v.int("holdout")
            for (key, n, least) in [("steps", steps, 0), ("denoise-steps", denoiseSteps, 1), ("samples", samples, 1), ("holdout", holdout, 0)] where n < least {
                throw OptionError(key: key, message: "must be at least \(least), got \(n)")
            }
            lr = v.double("lr")
            guard lr > 0 else { throw OptionError(key: "lr", message: "must be positive") }
            kinds = try GroupKind.parse(v.string("kinds"), allowing: [.channels, .heads, .neurons])
            global = v.string("scope") == "global"
            minKeep = v.int("min-keep")
            guard minKeep >= 1 else { throw OptionError(key: "min-keep", message: "must be 1 or more, got \(minKeep)") }
            diffusion = v.string("objective") == "diffusion"
            sampler = NoiseSchedule.Sampler(rawValue: v.string("sampler")) ?? .ddim
            prediction = NoiseSchedule.Prediction(rawValue: v.string("prediction")) ?? .epsilon
            betas = NoiseSchedule.Betas(rawValue: v.string("betas")) ?? .scaledLinear
            guidance = v.double("guidance")
            sample = v.string("sample") == "auto" ? nil : v.string("sample")
            timestep = v.string("timestep") == "auto" ? nil : v.string("timestep")
            maxPerGroup = v.double("max-per-group")
            compare = v.bool("compare")
        }
    }

    public static let name = "ecodiff"
    public static let summary = "learn hard-concrete head/neuron gates over whole denoising runs (EcoDiff), then gate the least useful"

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let started = Date()
        let gates = try TrainableGates(model: model, kinds: options.kinds)
        let interpreter = try context.interpreter(for: gates.trainingModel)
        let objective: any GateObjective = options.diffusion
            ? try DiffusionObjective(model: gates.trainingModel, gates: gates, interpreter: interpreter, options: options, context: context)
            : try OutputObjective(model: gates.trainingModel, gates: gates, interpreter: interpreter, options: options, context: context)

        let hc = HardConcrete()
        let params = gates.groups.map { $0.paramsPerUnit.map(Double.init) }
        let totalParams = params.joined().reduce(0, +)
        var logAlpha = gates.groups.map { [Double](repeating: 3, count: $0.unitCount) }
        var optimizer = AdamW(learningRate: options.lr, weightDecay: 0)
        var rng = NoiseSource(seed: context.seed ^ 0xEC0D1FF)
        var lastLoss = 0.0, lastFit = 0.0
        for step in 0..<options.steps {
            var z = logAlpha, dz = logAlpha
            for g in z.indices {
                for u in z[g].indices {
                    (z[g][u], dz[g][u]) = hc.sample(logAlpha: logAlpha[g][u], u: rng.uniform())
                }
            }
            let (fit, unitGrads) = try objective.lossAndGradient(sample: step, gates: gates.feeds(z))
            // Regularizer: parameter-weighted mean of P(gate ≠ 0) (L0) or of the gate (L1).
            var reg = 0.0
            var flat: [Double] = [], grads: [Double] = []
            for g in logAlpha.indices {
                for u in logAlpha[g].indices {
                    let w = params[g][u] / max(totalParams, 1)
                    let r: Double, dr: Double
                    if options.l1 {
                        (r, dr) = (z[g][u], dz[g][u])
                    } else {
                        (r, dr) = hc.probabilityNonZero(logAlpha: logAlpha[g][u])
                    }
                    reg += w * r
                    flat.append(logAlpha[g][u])
                    grads.append(unitGrads[g][u] * dz[g][u] + options.lambda * w * dr)
                }
            }
            optimizer.step(&flat, gradients: grads)
            var k = 0
            for g in logAlpha.indices {
                for u in logAlpha[g].indices {
                    logAlpha[g][u] = flat[k]
                    k += 1
                }
            }
            lastLoss = fit + options.lambda * reg
            lastFit = fit
            let open = zip(logAlpha.joined(), params.joined()).reduce(0) { $0 + (hc.gate(logAlpha: $1.0) > 0 ? $1.1 : 0) } / max(totalParams, 1)
            let elapsed = Date().timeIntervalSince(started)
            let eta = elapsed / Double(step + 1) * Double(options.steps - step - 1)
            context.logger.info("\(Self.name) step \(step + 1)/\(options.steps): loss \(fmt(lastLoss)) (fit \(fmt(fit)), reg \(fmt(reg))), sparsity \(String(format: "%.1f", 100 * (1 - open)))% (closed gates' share of the prunable parameters), \(String(format: "%.1f", elapsed)) s, ETA \(String(format: "%.0f", eta)) s")
        }

        // Binarize: remove the units with the smallest log α until `sparsity` of the parameters go.
        let target = PruningTarget(measure: .params, amount: options.sparsity, global: options.global, maxPerGroup: options.maxPerGroup,
                                   minKeep: options.minKeep, kinds: options.kinds)
        func keepFor(_ scores: [[Double]], normalize: Bool) throws -> [[Bool]] {
            var candidates: [UnitSelection.Candidate] = []
            for (g, group) in gates.groups.enumerated() {
                for u in 0..<group.unitCount {
                    candidates.append(.init(group: g, unit: u, score: scores[g][u], params: params[g][u], macs: group.macsPerUnit[u]))
                }
            }
            return try UnitSelection.select(unitCounts: gates.groups.map(\.unitCount), names: gates.groups.map(\.name), candidates: candidates,
                                            target: target, totalParams: Int(totalParams), totalMACs: 0, normalize: normalize)
        }
        // log α compares across groups as it is; weight norms are divided by their group's mean.
        let keep = try keepFor(logAlpha, normalize: false)
        for (g, k) in zip(gates.groups, keep) { try Masks.set(k.map { $0 ? 1 : 0 }, for: g, in: model) }

        var stats: [String: Double] = ["loss": lastLoss, "fit": lastFit, "seconds": Date().timeIntervalSince(started)]
        var removed = 0.0
        for (g, k) in zip(gates.groups, keep) {
            stats["\(g.kind)-removed", default: 0] += Double(k.filter { !$0 }.count)
            for (u, kept) in k.enumerated() where !kept { removed += Double(g.paramsPerUnit[u]) }
        }
        stats["params-removed"] = removed
        stats["prunable-fraction-removed"] = removed / max(totalParams, 1)
        if options.holdout > 0 {
            let drift = try objective.holdoutDrift(gates: gates.feeds(keep.map { $0.map { $0 ? 1 : 0 } }))
            stats["holdout-drift"] = drift
            var line = "\(Self.name): held-out drift (rel L2 of the \(options.diffusion ? "final latent" : "outputs")) \(fmt(drift))"
            if options.compare {
                let magnitude = try keepFor(gates.groups.map { try WeightNorms.unitScores($0) }, normalize: true)
                let md = try objective.holdoutDrift(gates: gates.feeds(magnitude.map { $0.map { $0 ? 1 : 0 } }))
                stats["magnitude-holdout-drift"] = md
                line += "; magnitude at the same sparsity: \(fmt(md))"
            }
            context.logger.info("\(line)")
        }
        return PassResult(changed: true, statistics: stats)
    }

    func fmt(_ x: Double) -> String { String(format: "%.4g", x) }
}

/// What the gates are trained against.
protocol GateObjective {
    /// The loss of training sample `sample` (taken in turn) with these gate feeds, and its
    /// gradient per unit (`[group][unit]`).
    func lossAndGradient(sample: Int, gates: [String: NDArray]) throws -> (Double, [[Double]])
    /// Mean relative L2 drift over the held-out samples.
    func holdoutDrift(gates: [String: NDArray]) throws -> Double
}

/// Final latents of denoising runs.
struct DiffusionObjective: GateObjective {
    let harness: DiffusionHarness
    let gates: TrainableGates
    let train: [DiffusionHarness.Sample]
    let held: [DiffusionHarness.Sample]
    let trainRefs: [[Double]]
    let heldRefs: [[Double]]

    init(model: Model, gates: TrainableGates, interpreter: Interpreter, options: EcoDiffPass.Options, context: PassContext) throws {
        let inputs = try DenoiserInputs.map(model, sample: options.sample, timestep: options.timestep, excluding: Set(gates.inputNames))
        let steps = NoiseSchedule(options.betas).steps(options.denoiseSteps, sampler: options.sampler, prediction: options.prediction)
        // Conditioning: the calibration sets in turn (the last ones held out when there are
        // enough), else synthesized; unconditional arrays from `uncond.<input>` keys.
        var conditions: [[String: NDArray]] = context.calibration.map { set in set.filter { inputs.conditioning.contains($0.key) } }
        if conditions.isEmpty {
            conditions = try (0..<(options.samples + options.holdout)).map { k in
                try SampleInputs.make(for: model, seed: context.seed &+ UInt64(k)).filter { inputs.conditioning.contains($0.key) }
            }
        }
        var unconditional: [String: NDArray]?
        if let url = context.calibrationURL {
            let entries = try TensorData.load(url, displayName: url.relativePath)
            let u = Dictionary(entries.compactMap { e in e.name.hasPrefix("uncond.") ? (String(e.name.dropFirst(7)), e.array) : nil }) { a, _ in a }
            if !u.isEmpty {
                for name in inputs.conditioning where u[name] == nil {
                    throw TensorDataError(file: url.relativePath, reason: "has uncond. arrays but no 'uncond.\(name)' for the conditioning input '\(name)'")
                }
                unconditional = u.filter { inputs.conditioning.contains($0.key) }
            }
        }
        let heldCount = options.holdout
        let trainConds = conditions.count > heldCount ? Array(conditions.dropLast(min(heldCount, conditions.count - 1))) : conditions
        let heldConds = conditions.count > heldCount ? Array(conditions.suffix(min(heldCount, conditions.count - 1))) : conditions
        func make(_ k: Int, _ conds: [[String: NDArray]], seed: UInt64) -> DiffusionHarness.Sample {
            var rng = NoiseSource(seed: seed)
            let noise = rng.normal(inputs.sampleShape, dtype: inputs.sampleType)
            let stepNoise = options.sampler == .ddpm ? steps.map { _ in rng.normal(inputs.sampleShape, dtype: inputs.sampleType) } : []
            return DiffusionHarness.Sample(noise: noise, conditioning: conds[k % conds.count], unconditional: unconditional, stepNoise: stepNoise)
        }
        train = (0..<options.samples).map { make($0, trainConds, seed: context.seed &* 7919 &+ UInt64($0)) }
        held = (0..<heldCount).map { make($0, heldConds, seed: context.seed &* 7919 &+ 1_000_003 &+ UInt64($0)) }
        harness = DiffusionHarness(interpreter: interpreter, inputs: inputs, steps: steps, guidance: options.guidance)
        self.gates = gates
        let ones = gates.ones
        let h = harness
        trainRefs = try train.map { try h.finalLatent($0, extra: ones) }
        heldRefs = try held.map { try h.finalLatent($0, extra: ones) }
    }

    func lossAndGradient(sample: Int, gates feeds: [String: NDArray]) throws -> (Double, [[Double]]) {
        let k = sample % train.count
        let ref = trainRefs[k]
        let scale = max(ref.reduce(0) { $0 + $1 * $1 } / Double(ref.count), 1e-12)
        var loss = 0.0
        let (_, grads) = try harness.gradient(train[k], extra: feeds, wrt: gates.inputNames) { x in
            loss = GateMath.mse(x, ref) / scale
            return zip(x, ref).map { 2 * ($0 - $1) / (Double(x.count) * scale) }
        }
        return (loss, gates.unitGradients(grads))
    }

    func holdoutDrift(gates feeds: [String: NDArray]) throws -> Double {
        guard !held.isEmpty else { return 0 }
        let drifts = try zip(held, heldRefs).map { s, ref in GateMath.relativeL2(try harness.finalLatent(s, extra: feeds), ref) }
        return drifts.reduce(0, +) / Double(drifts.count)
    }
}

/// The model's outputs on calibration (or sample) inputs.
struct OutputObjective: GateObjective {
    let interpreter: Interpreter
    let gates: TrainableGates
    let train: [[String: NDArray]]
    let held: [[String: NDArray]]
    let trainRefs: [[String: NDArray]]
    let heldRefs: [[String: NDArray]]
    let outputs: [String]

    init(model: Model, gates: TrainableGates, interpreter: Interpreter, options: EcoDiffPass.Options, context: PassContext) throws {
        let needed = Set(model.graph.inputs.filter { $0.initializer == nil }.map(\.name)).subtracting(gates.inputNames)
        var sets = context.calibration
        if sets.isEmpty {
            sets = try (0..<(options.samples + options.holdout)).map { k in
                try SampleInputs.make(for: model, seed: context.seed &+ UInt64(k)).filter { needed.contains($0.key) }
            }
        }
        let heldCount = min(options.holdout, max(0, sets.count - 1))
        train = Array(sets.dropLast(heldCount))
        held = heldCount > 0 ? Array(sets.suffix(heldCount)) : []
        outputs = model.graph.outputs.filter { $0.type?.elementType?.isFloatingPoint == true }.map(\.name)
        self.interpreter = interpreter
        self.gates = gates
        let ones = gates.ones
        trainRefs = try train.map { try interpreter.run($0.merging(ones) { a, _ in a }) }
        heldRefs = try held.map { try interpreter.run($0.merging(ones) { a, _ in a }) }
    }

    func lossAndGradient(sample: Int, gates feeds: [String: NDArray]) throws -> (Double, [[Double]]) {
        let k = sample % train.count
        let tape = try interpreter.runRecording(train[k].merging(feeds) { a, _ in a })
        var loss = 0.0
        var seeds: [String: NDArray] = [:]
        for name in outputs {
            guard let y = tape.outputs[name], let r = trainRefs[k][name] else { continue }
            let yv = GateMath.values(y), rv = GateMath.values(r)
            let scale = max(rv.reduce(0) { $0 + $1 * $1 } / Double(max(rv.count, 1)), 1e-12)
            loss += GateMath.mse(yv, rv) / scale
            seeds[name] = GateMath.array(zip(yv, rv).map { 2 * ($0 - $1) / (Double(yv.count) * scale) }, like: y)
        }
        let grads = try tape.backward(seeds: seeds, wrt: gates.inputNames)
        return (loss, gates.unitGradients(grads))
    }

    func holdoutDrift(gates feeds: [String: NDArray]) throws -> Double {
        guard !held.isEmpty else { return 0 }
        var total = 0.0
        for (set, ref) in zip(held, heldRefs) {
            let out = try interpreter.run(set.merging(feeds) { a, _ in a })
            let d = outputs.map { GateMath.relativeL2(GateMath.values(out[$0]!), GateMath.values(ref[$0]!)) }
            total += d.reduce(0, +) / Double(max(d.count, 1))
        }
        return total / Double(held.count)
    }
}
