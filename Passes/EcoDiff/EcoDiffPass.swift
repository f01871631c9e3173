import Foundation
import PruneIR
import PruneKit
import PruneRuntime
import ReconstructPasses

/// `ecodiff`: learnable structured sparsity for diffusion models (EcoDiff). Every attention head
/// and FFN neuron gets a hard-concrete gate (β = 0.83, ζ = 1.1, γ = −0.1); the gates are trained
/// with AdamW against `MSE(final latent with gates, final latent of the original) / E[ref²]` over
/// whole denoising runs (``DiffusionProcess``: DDIM or DDPM with ε, v or x₀ prediction, learned
/// variance, EDM and consistency models with the preconditioning inside or outside the graph,
/// rectified flow; read from the pipeline's `scheduler_config.json` when there is one;
/// classifier-free guidance when the calibration data has `uncond.<input>` arrays), differentiated
/// by reverse mode through the interpreter with time-step checkpointing. Then the gates are
/// binarized by `log α` to remove `sparsity` of the prunable head+FFN parameters, and left as
/// masks for `fold-masks`.
///
/// Two choices make the gates learn on a real model in tens of steps (issue 22):
/// - `init=score`: log α starts from fluctuation's score per parameter (``GatePrior``), the
///   units that score would cut closed and the units near the cut undecided, instead of every gate
///   at log α = 3, where samples clip to 1 and the fit has no gradient;
/// - `budget=center`: log α is shifted after every step so the binarized gates remove exactly
///   `sparsity`, instead of a fixed penalty λ whose sparsity is found only at the end.
///
/// `objective=output` trains against the model's outputs on the calibration inputs instead, for
/// any model. The held-out drift of the result is reported in the pass statistics (compare other
/// methods with `prunec --compare PIPELINE`). Follow it with `reconstruct`.
///
/// `compensate=mean` (the default) trains with closed gates leaving the unit's calibration mean
/// (``MeanCompensation``) and ends by folding those means into the next layers' biases
/// (`reconstruct{mode=bias}`), so the model written is the one trained. The fold records the
/// biases it changes (``Masks/keepReference(_:for:in:)``), so a `reconstruct` after it still fits
/// toward the original model.
public struct EcoDiffPass: Pass {
    public struct Options: PassOptions {
        /// The sparsity regularizer.
        public enum Regularizer: String, PassOptionEnum { case l0, l1 }
        /// What the gates are trained against.
        public enum Objective: String, PassOptionEnum { case diffusion, output }
        /// How the learned log α become masks.
        public enum Scope: String, PassOptionEnum { case global, layer }
        /// Where the gates start.
        public enum Initialization: String, PassOptionEnum {
            /// From fluctuation's score per parameter: the units it would cut start closed.
            case score
            /// Every gate at log α = 3 (open), as the EcoDiff paper.
            case constant
        }
        /// What a closed gate leaves in the training model.
        public enum Compensation: String, PassOptionEnum {
            /// The unit's mean activation (what reconstruct folds into the next bias).
            case mean
            /// Zero.
            case none
        }
        /// How the sparsity target is held during training.
        public enum Budget: String, PassOptionEnum {
            /// log α is shifted after every step so that the binarized gates remove `sparsity`.
            case center
            /// A fixed penalty `lambda`·(expected L0 or L1).
            case penalty
        }
        /// Which masks the pass keeps.
        public enum Selection: String, PassOptionEnum {
            /// The learned masks, or the starting ones when those fit the training samples better
            /// (training is stochastic, and a good start is not always improved on).
            case best
            /// The learned masks.
            case learned
        }

        @PassOption("sparsity", .fractionBelowOne, help: "fraction of the prunable head+FFN parameters to remove")
        public var sparsity = 0.2
        @PassOption("init", help: "score: gates start from fluctuation's score per parameter (the units it would cut start closed); constant: every log α at 3")
        public var initialization: Initialization = .score
        @PassOption("compensate", help: "mean: a closed gate leaves the unit's calibration mean in the training model, and the pass folds the means into the next biases (see fold-means); none: zero")
        public var compensate: Compensation = .mean
        @PassOption("budget", help: "center: log α is shifted after every step so the binarized gates remove sparsity; penalty: lambda times the regularizer")
        public var budget: Budget = .center
        @PassOption("fold-means", help: "compensate=mean: fold the closed units' means into the next layer's bias when the pass ends (reconstruct{mode=bias}), so the model is the one the gates were trained as")
        public var foldMeans = true
        @PassOption("init-scale", .between(0.01, 100), help: "init=score: log α per standard deviation of log score from the cut (larger: fewer gates start undecided)")
        public var initScale = 4.0
        @PassOption("select", help: "best: the learned masks, or the starting masks when their hard-gate fit on the training samples is lower; learned: the learned masks")
        public var select: Selection = .best
        @PassOption("batch", .between(0, 1024), help: "training samples per optimizer step, gradients averaged (0: 4 calibration samples with objective=output, 1 denoising run with diffusion)")
        public var batch = 0
        @PassOption("lambda", .between(0, 1e6), help: "weight of the sparsity regularizer (budget=penalty)")
        public var lambda = 0.5
        @PassOption("reg", help: "regularizer: expected L0 (P(gate ≠ 0)) or L1 of the gates, parameter-weighted")
        public var reg: Regularizer = .l0
        @PassOption("steps", .between(0, 1_000_000), help: "optimizer steps (batch denoising runs or calibration samples each)")
        public var steps = 40
        @PassOption("lr", .between(1e-9, 100), help: "AdamW learning rate on log α")
        public var lr = 0.1
        @PassOption("denoise-steps", .between(1, 1000), help: "sampler steps per denoising run")
        public var denoiseSteps = 8
        @PassOption("samples", .between(1, 1024), help: "training samples (prompts from the calibration sets × noise seeds), used in turn")
        public var samples = 4
        @PassOption("holdout", .between(0, 64), help: "held-out samples (other seeds and prompts) for the reported drift")
        public var holdout = 2
        @PassOption("kinds", help: "group kinds to gate, joined by '+' (heads, neurons, channels)",
                    check: GroupKind.only([.channels, .heads, .neurons]))
        public var kinds: Set<GroupKind> = [.heads, .neurons]
        @PassOption("objective", help: "diffusion: final latent of a sampling run; output: the model's outputs on the calibration inputs")
        public var objective: Objective = .diffusion
        /// How the denoiser is sampled (schedule, prediction, sampler, σ range, shift).
        public var diffusionProcess = DiffusionOptions()
        @PassOption("guidance", .between(0, 100), help: "classifier-free guidance scale (when the calibration data has uncond.<input> arrays)")
        public var guidance = 5.0
        @PassOption("sample", help: "the latent input (auto: the float input shaped like the output)")
        public var sampleInput = "auto"
        @PassOption("timestep", help: "the timestep input (auto: by name)")
        public var timestepInput = "auto"
        @PassOption("max-per-group", .fraction, help: "largest fraction of one group that may be removed")
        public var maxPerGroup = 0.9
        @PassOption("scope", help: "global: binarize by log α across groups; layer: every group loses the same fraction of its units")
        public var scope: Scope = .global
        @PassOption("min-keep", .between(1, 1_000_000), help: "fewest units a group keeps")
        public var minKeep = 1

        public func validate() throws {
            if objective == .output {
                for (key, value) in [("sample", sampleInput), ("timestep", timestepInput)] where value != "auto" {
                    throw OptionError(key: key, message: "names a denoiser input, which objective=output does not use (it trains on the model's outputs for the calibration inputs)")
                }
            }
        }

        /// The regularizer is L1 of the gates rather than the expected L0.
        public var l1: Bool { reg == .l1 }
        /// Trained over denoising runs (rather than on the outputs).
        public var diffusion: Bool { objective == .diffusion }
        /// Binarized across groups.
        public var global: Bool { scope == .global }
        /// Samples per optimizer step: a denoising run is already a batch of latents.
        public var stepBatch: Int { batch > 0 ? batch : diffusion ? 1 : 4 }
        /// The latent input, `nil` for auto.
        public var sample: String? { sampleInput == "auto" ? nil : sampleInput }
        /// The timestep input, `nil` for auto.
        public var timestep: String? { timestepInput == "auto" ? nil : timestepInput }
        public init() {}
    }

    public static let name = "ecodiff"
    public static let summary = "learn hard-concrete head/neuron gates over whole denoising runs (EcoDiff), then gate the least useful"

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let started = Date()
        let gates = try TrainableGates(model: model, kinds: options.kinds)
        var stats: [String: Double] = [:]
        // The calibration inputs the model itself reads (a denoiser's may hold only conditioning).
        let needed = Set(gates.trainingModel.graph.inputs.filter { $0.initializer == nil }.map(\.name)).subtracting(gates.inputNames + gates.blockInputs)
        let probeSets = Array(context.calibration.filter { Set($0.keys).isSuperset(of: needed) }.prefix(256))
        if options.compensate == .mean {
            if probeSets.isEmpty {
                context.logger.info("\(Self.name): compensate=mean needs calibration inputs that run the model; closed gates leave zero")
            } else {
                let n = try MeanCompensation.apply(to: gates, probing: model, sets: probeSets, threads: context.threads)
                stats["compensated-gates"] = Double(n)
            }
        }
        let interpreter = try context.interpreter(for: gates.trainingModel)
        let objective: any GateObjective = options.diffusion
            ? try DiffusionObjective(model: gates.trainingModel, gates: gates, interpreter: interpreter, options: options, context: context)
            : try OutputObjective(model: gates.trainingModel, gates: gates, interpreter: interpreter, options: options, context: context)

        let hc = HardConcrete()
        let params = gates.groups.map { $0.paramsPerUnit.map(Double.init) }
        let totalParams = params.joined().reduce(0, +)
        var logAlpha = gates.groups.map { [Double](repeating: 3, count: $0.unitCount) }
        var prior: [[Double]]?
        if options.initialization == .score {
            let (values, why) = GatePrior.logAlpha(gates: gates, model: model, sets: probeSets, sparsity: options.sparsity, spread: options.initScale, limit: 6,
                                                   context: context)
            if let values {
                logAlpha = values
                prior = values
                context.logger.info("\(Self.name): gates start from \(why)")
            } else {
                context.logger.info("\(Self.name): gates start open (log α = 3): init=score found \(why)")
            }
        }
        if options.budget == .center { center(&logAlpha, params: params) }
        var optimizer = AdamW(learningRate: options.lr, weightDecay: 0)
        var rng = NoiseSource(seed: context.seed ^ 0xEC0D1FF)
        var lastLoss = 0.0, lastFit = 0.0
        for step in 0..<options.steps {
            var fit = 0.0
            var grads = [Double](repeating: 0, count: params.joined().count)
            for b in 0..<options.stepBatch {
                var z = logAlpha, dz = logAlpha
                for g in z.indices {
                    for u in z[g].indices {
                        (z[g][u], dz[g][u]) = hc.sample(logAlpha: logAlpha[g][u], u: rng.uniform())
                    }
                }
                let (f, unitGrads) = try objective.lossAndGradient(sample: step * options.stepBatch + b, gates: gates.feeds(z))
                fit += f / Double(options.stepBatch)
                var k = 0
                for g in unitGrads.indices {
                    for u in unitGrads[g].indices {
                        grads[k] += unitGrads[g][u] * dz[g][u] / Double(options.stepBatch)
                        k += 1
                    }
                }
            }
            // Regularizer (budget=penalty): parameter-weighted mean of P(gate ≠ 0) (L0) or of the gate (L1).
            var reg = 0.0
            var flat: [Double] = []
            var k = 0
            for g in logAlpha.indices {
                for u in logAlpha[g].indices {
                    flat.append(logAlpha[g][u])
                    if options.budget == .penalty {
                        let w = params[g][u] / max(totalParams, 1)
                        let a = logAlpha[g][u]
                        let (r, dr) = options.l1 ? (hc.gate(logAlpha: a), Self.gateSlope(hc, a)) : hc.probabilityNonZero(logAlpha: a)
                        reg += w * r
                        grads[k] += options.lambda * w * dr
                    }
                    k += 1
                }
            }
            optimizer.step(&flat, gradients: grads)
            k = 0
            for g in logAlpha.indices {
                for u in logAlpha[g].indices {
                    logAlpha[g][u] = flat[k]
                    k += 1
                }
            }
            if options.budget == .center { center(&logAlpha, params: params) }
            lastLoss = fit + (options.budget == .penalty ? options.lambda * reg : 0)
            try PruningError.checkFinite([lastLoss] + flat, pass: Self.name, step: step + 1, what: "the loss or a gate's log α",
                                         hint: "lower lr (now \(options.lr)) or lambda (now \(options.lambda))")
            lastFit = fit
            let open = zip(logAlpha.joined(), params.joined()).reduce(0) { $0 + (hc.gate(logAlpha: $1.0) > 0 ? $1.1 : 0) } / max(totalParams, 1)
            let elapsed = Date().timeIntervalSince(started)
            let regText = options.budget == .penalty ? " (fit \(fmt(fit)), reg \(fmt(reg)))" : ""
            context.progress(PassProgress(
                pass: Self.name, step: step + 1, total: options.steps, elapsed: elapsed,
                detail: "loss \(fmt(lastLoss))\(regText), sparsity \(String(format: "%.1f", 100 * (1 - open)))% (closed gates' share of the prunable parameters)"))
        }

        // Binarize: remove the units with the smallest log α until `sparsity` of the parameters go.
        let target = PruningTarget(measure: .params, amount: options.sparsity, global: options.global, maxPerGroup: options.maxPerGroup,
                                   minKeep: options.minKeep, kinds: options.kinds)
        // log α compares across groups as it is (no normalization by the group mean).
        func keepFor(_ scores: [[Double]], normalize: Bool) throws -> [[Bool]] {
            var candidates: [UnitSelection.Candidate] = []
            for (g, group) in gates.groups.enumerated() {
                for u in 0..<group.unitCount {
                    candidates.append(.init(group: g, unit: u, score: scores[g][u], params: params[g][u], macs: group.macsPerUnit[u]))
                }
            }
            return try UnitSelection.select(unitCounts: gates.groups.map(\.unitCount), names: gates.groups.map(\.name), candidates: candidates,
                                            target: target, totalParams: Int(totalParams), totalMACs: 0, normalize: normalize,
                                            keepOneOf: gates.groups.map(\.partialUnitSets))
        }
        var keep = try keepFor(logAlpha, normalize: false)
        if let prior, options.steps > 0 {
            // Training is stochastic: keep what it learned only if the hard masks fit better.
            let start = try keepFor(prior, normalize: false)
            if start != keep {
                let n = min(objective.trainingCount, 32)
                func fit(_ k: [[Bool]]) throws -> Double {
                    let feeds = gates.feeds(k.map { $0.map { $0 ? 1 : 0 } })
                    return try (0..<n).reduce(0) { $0 + (try objective.loss(sample: $1, gates: feeds)) } / Double(max(n, 1))
                }
                let learned = try fit(keep), initial = try fit(start)
                stats["fit-learned"] = learned
                stats["fit-start"] = initial
                let changed = zip(keep.joined(), start.joined()).filter { $0 != $1 }.count / 2
                let back = options.select == .best && initial < learned
                context.logger.info("\(Self.name): hard-mask fit on \(n) training samples: learned \(fmt(learned)), start \(fmt(initial)) (\(changed) units swapped); keeping the \(back ? "starting" : "learned") masks")
                if back { keep = start }
                stats["kept-start"] = back ? 1 : 0
            }
        }
        for (g, k) in zip(gates.groups, keep) { try Masks.set(k.map { $0 ? 1 : 0 }, for: g, in: model) }
        if (stats["compensated-gates"] ?? 0) > 0 && options.foldMeans {
            // The gates were trained with closed units standing at their means: leave that model.
            var fold = context
            fold.calibration = probeSets
            var bias = ReconstructPass.Options()
            bias.mode = .bias
            let folded = try ReconstructPass(options: bias).run(on: model, context: fold)
            stats["means-folded"] = folded.statistics["layers-refit"] ?? 0
        }

        stats["loss"] = lastLoss
        stats["fit"] = lastFit
        stats["seconds"] = Date().timeIntervalSince(started)
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
            let line = "\(Self.name): held-out drift (rel L2 of the \(options.diffusion ? "final latent" : "outputs")) \(fmt(drift))"
            context.logger.info("\(line)")
        }
        return PassResult(changed: true, statistics: stats)
    }

    /// Shifts log α so that the units binarization removes (the lowest, `sparsity` of the
    /// parameters, across groups or per group with scope=layer) sit below 0 and the rest above.
    func center(_ logAlpha: inout [[Double]], params: [[Double]]) {
        func cut(_ entries: [(Double, Double)]) -> Double {
            // Midway between the last unit removed and the first kept.
            guard let c = GatePrior.cut(entries.map { ($0.0, $0.1) }, removing: options.sparsity) else { return 0 }
            return c.kept.map { (c.removed + $0) / 2 } ?? c.removed
        }
        if options.global {
            let c = cut(zip(logAlpha.joined(), params.joined()).map { ($0, $1) })
            logAlpha = logAlpha.map { $0.map { $0 - c } }
        } else {
            for g in logAlpha.indices {
                let c = cut(zip(logAlpha[g], params[g]).map { ($0, $1) })
                logAlpha[g] = logAlpha[g].map { $0 - c }
            }
        }
    }

    /// d(deterministic gate)/d log α.
    static func gateSlope(_ hc: HardConcrete, _ logAlpha: Double) -> Double {
        let s = 1 / (1 + Foundation.exp(-logAlpha))
        let g = s * (hc.zeta - hc.gamma) + hc.gamma
        return g > 0 && g < 1 ? (hc.zeta - hc.gamma) * s * (1 - s) : 0
    }

    func fmt(_ x: Double) -> String { String(format: "%.4g", x) }
}

/// What the gates are trained against.
protocol GateObjective {
    /// The loss of training sample `sample` (taken in turn) with these gate feeds, and its
    /// gradient per unit (`[group][unit]`).
    func lossAndGradient(sample: Int, gates: [String: NDArray]) throws -> (Double, [[Double]])
    /// The loss of training sample `sample` with these gate feeds (no gradient).
    func loss(sample: Int, gates: [String: NDArray]) throws -> Double
    /// How many training samples there are.
    var trainingCount: Int { get }
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
        let (process, summary) = try options.diffusionProcess.resolve(model: model, inputs: inputs, modelURL: context.modelURL)
        context.logger.info("\(EcoDiffPass.name): denoiser '\(inputs.sample)' → '\(inputs.output)'\(inputs.learnedSigma ? " (learned variance: first half of the channels)" : ""): \(summary), \(options.denoiseSteps) steps")
        let steps = process.steps(options.denoiseSteps)
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
            .seeded(seed, inputs: inputs, process: process, steps: steps.count, conditioning: conds[k % conds.count], unconditional: unconditional)
        }
        train = (0..<options.samples).map { make($0, trainConds, seed: context.seed &* 7919 &+ UInt64($0)) }
        held = (0..<heldCount).map { make($0, heldConds, seed: context.seed &* 7919 &+ 1_000_003 &+ UInt64($0)) }
        harness = DiffusionHarness(interpreter: interpreter, inputs: inputs, steps: steps, guidance: options.guidance, initialScale: process.initialScale)
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

    var trainingCount: Int { train.count }

    func loss(sample: Int, gates feeds: [String: NDArray]) throws -> Double {
        let k = sample % train.count
        let ref = trainRefs[k]
        let scale = max(ref.reduce(0) { $0 + $1 * $1 } / Double(ref.count), 1e-12)
        return GateMath.mse(try harness.finalLatent(train[k], extra: feeds), ref) / scale
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
        let heldCount = context.calibration.isEmpty ? min(options.holdout, max(0, sets.count - 1))
            : try CalibrationData.heldOutCount(options.holdout, of: sets.count, pass: EcoDiffPass.name)
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

    var trainingCount: Int { train.count }

    func loss(sample: Int, gates feeds: [String: NDArray]) throws -> Double {
        let k = sample % train.count
        let out = try interpreter.run(train[k].merging(feeds) { a, _ in a })
        var loss = 0.0
        for name in outputs {
            guard let y = out[name], let r = trainRefs[k][name] else { continue }
            let yv = GateMath.values(y), rv = GateMath.values(r)
            loss += GateMath.mse(yv, rv) / max(rv.reduce(0) { $0 + $1 * $1 } / Double(max(rv.count, 1)), 1e-12)
        }
        return loss
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
