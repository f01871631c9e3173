import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `distill`: recovery after pruning by knowledge distillation (BK-SDM style). The original model
/// (``PassContext/original``: the pipeline's input, or `--teacher`) is the teacher, the model in
/// the pipeline the student.
///
/// The student's remaining weights (all, norms and biases, a `nodes=` subset, or low-rank adapters
/// merged back at the end) are trained with AdamW on the calibration data against
/// `loss = Σ_outputs MSE(student, teacher) / E[teacher²]` (or KL on logits) `+ feature-weight ×
/// mean over matched feature points of the same normalized MSE` (see ``FeatureMatching``).
/// Gradients come from reverse mode over the interpreter's tape, on a copy of the student whose
/// trained initializers are graph inputs. For a diffusion denoiser every training sample gets a
/// fresh timestep `t` and noise `ε` from the schedule: `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε`, `x₀` the
/// calibration latent. A held-out fraction of the calibration sets measures the loss and the
/// drift to the teacher before and after, drives early stopping and picks the weights kept.
///
/// Preconditions: calibration data (`--calib`), a teacher whose graph outputs the student has
/// under the same names and shapes. Effect: initializer values only (same nodes, names, shapes).
public struct DistillPass: Pass {
    public struct Options: PassOptions {
        /// Which weights train.
        public enum Train: String, PassOptionEnum {
            /// Every float initializer with more than one element.
            case all
            /// Rank-1 tensors: norm scales and shifts, biases.
            case normsBiases = "norms-biases"
            /// Low-rank adapters on MatMul/Gemm weights, merged at the end.
            case lora
        }

        /// The output loss.
        public enum Loss: String, PassOptionEnum {
            /// `kl` for outputs named like logits, `mse` otherwise.
        case auto
        /// Normalized mean squared error.
        case mse
        /// KL divergence of the softmax over the last axis.
        case kl
        }

        /// Whether each training sample draws a timestep and noise.
        public enum Diffusion: String, PassOptionEnum { case auto, on, off }

        /// Optimizer steps.
        @PassOption("steps", .between(0, 1_000_000), help: "optimizer steps")
        public var steps = 100
        /// Learning rate.
        @PassOption("lr", .between(1e-12, 10), help: "AdamW learning rate")
        public var lr = 1e-4
        /// Samples per step.
        @PassOption("batch", .between(1, 1024), help: "samples per step (gradients averaged; one sample's activations in memory at a time)")
        public var batch = 1
        /// Which weights train.
        @PassOption("train", help: "which weights train: all, norms-biases (rank-1 tensors), lora (low-rank adapters on MatMul/Gemm weights, merged at the end)")
        public var train: Train = .all
        /// The `nodes=` glob.
        @PassOption("nodes", help: "only weights whose name, or a reading node's name, matches this glob (e.g. *attn*)")
        public var nodesGlob = "*"
        /// Adapter rank.
        @PassOption("rank", .between(1, 4096), help: "adapter rank for train=lora")
        public var rank = 4
        /// Weight decay on matrices.
        @PassOption("weight-decay", .between(0, 10), help: "AdamW decoupled weight decay on matrices and adapters (norms and biases get none)")
        public var weightDecay = 0.01
        /// Weight of the feature loss.
        @PassOption("feature-weight", .between(0, 1e4), help: "weight of the feature loss (mean over matched block outputs); 0 for outputs only")
        public var featureWeight = 1.0
        /// Output loss.
        @PassOption("loss", help: "output loss: mse, kl (on the last axis, for logits), auto (kl for outputs named *logits*, else mse)")
        public var loss: Loss = .auto
        /// Held-out fraction of the calibration sets.
        @PassOption("held-out", .fraction, help: "fraction of the calibration samples held out for the report and early stopping",
                    check: { $0 < 1 ? nil : "must leave some sets to train on (below 1)" })
        public var heldOut = 0.25
        /// Steps between evaluations.
        @PassOption("eval-every", .between(1, 1_000_000), help: "steps between held-out evaluations (and progress lines)")
        public var evalEvery = 10
        /// Early-stopping patience in evaluations (0: off).
        @PassOption("patience", .between(0, 1_000_000), help: "evaluations without a better held-out loss before stopping (0: never stop early)")
        public var patience = 3
        /// Diffusion sampling.
        @PassOption("diffusion", help: "sample a timestep and noise per training sample (auto: when the model is a denoiser with a timestep input)")
        public var diffusionMode: Diffusion = .auto
        /// How a denoiser is noised (schedule, σ range, shift).
        public var process = DiffusionOptions()
        /// Held-out draws per held-out set (denoisers).
        @PassOption("draws", .between(1, 1024), help: "held-out (timestep, noise) draws per held-out set (denoisers)")
        public var draws = 2

        /// The `nodes=` glob, `nil` for `*`.
        public var nodes: String? { nodesGlob == "*" ? nil : nodesGlob }
        /// Diffusion sampling: `nil` for auto.
        public var diffusion: Bool? { diffusionMode == .auto ? nil : diffusionMode == .on }
        /// The defaults.
        public init() {}
    }

    /// The pipeline spelling.
    public static let name = "distill"
    /// The teacher and the data to train on.
    public static let requirements: PassRequirements = [.originalModel, .calibration]
    /// One line for `prunec passes`.
    public static let summary = "train the pruned model's weights back toward the original (output + feature distillation, BK-SDM style)"

    /// The parsed options.
    public let options: Options
    /// A pass with these options.
    public init(options: Options) { self.options = options }

    /// Trains `model`'s weights toward ``PassContext/original`` and writes the best ones back.
    ///
    /// - Throws: ``DistillError`` without a teacher or calibration data, for outputs that do not
    ///   match, or when no weight is selected; runtime errors of the interpreter.
    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let started = Date()
        guard let teacher = context.original else { throw DistillError.noTeacher }
        guard !context.calibration.isEmpty else { throw DistillError.noCalibration }
        let outputs = try Self.matchOutputs(teacher: teacher, student: model)
        let features = options.featureWeight > 0 ? FeatureMatching.points(teacher: teacher, student: model) : []
        let weights = try TrainableWeights(student: model, mode: options.train, pattern: options.nodes, features: features)
        for s in weights.skipped { context.logger.info("\(Self.name): not training '\(s.name)': its gradient would cross \(s.op), which has no VJP") }
        guard !weights.params.isEmpty else { throw DistillError.nothingToTrain(train: options.train.rawValue, nodes: options.nodes ?? "*") }

        let teacherCopy = teacher.copy()
        for f in features {
            if let v = teacherCopy.graph.value(named: f) { teacherCopy.graph.outputs.append(v) }
        }
        let teacherRun = try context.interpreter(for: teacherCopy)
        let studentRun = try context.interpreter(for: weights.trainingModel)
        let data = try DistillData(student: model, options: options, context: context)
        let lossKinds = outputs.map { name -> Bool in
            switch options.loss {
            case .kl: return true
            case .mse: return false
            case .auto: return name.lowercased().contains("logits")
            }
        }
        let objective = DistillObjective(teacher: teacherRun, student: studentRun, weights: weights, outputs: outputs, kl: lossKinds,
                                         features: features, featureWeight: options.featureWeight)
        let heldRefs = try data.held.map { try objective.teacherValues($0) }
        if let first = try heldRefs.first ?? data.train.first.map({ try objective.teacherValues($0) }) {
            objective.dropMismatchedFeatures(reference: first, feeds: data.held.first ?? data.train[0], weights: weights.params.map(\.values),
                                             log: { context.logger.info("\(Self.name): \($0)") })
        }
        context.logger.info("\(Self.name): training \(weights.params.count) tensors (\(weights.params.reduce(0) { $0 + $1.values.count }) weights, train=\(options.train.rawValue)) against \(outputs.count) outputs and \(objective.features.count) feature points; \(data.train.count) training sets, \(data.held.count) held-out samples\(data.diffusion != nil ? ", timesteps and noise drawn per sample" : "")")

        // Trained variables: the weights themselves, or the adapters over frozen weights.
        let base = weights.params.map(\.values)
        let lora = options.train == .lora ? LowRankAdapters(params: weights.params, rank: options.rank) : nil
        var rng = NoiseSource(seed: context.seed ^ 0xD157_111)
        var variables = lora?.initial(rng: &rng) ?? base
        let decays: [Bool] = lora.map { l in l.shapes.flatMap { _ in [true, true] } } ?? weights.params.map { $0.shape.count >= 2 }
        var optimizers = decays.map { AdamW(learningRate: options.lr, weightDecay: $0 ? options.weightDecay : 0) }
        func effective(_ vars: [[Double]]) -> [[Double]] { lora?.merged(base: base, adapters: vars) ?? vars }

        let evalSet = data.held.isEmpty ? Array(data.train.prefix(2)) : data.held
        let evalRefs = data.held.isEmpty ? try evalSet.map { try objective.teacherValues($0) } : heldRefs
        let before = try objective.evaluate(evalSet, refs: evalRefs, weights: base)
        context.logger.info("\(Self.name): held-out loss before \(fmt(before.loss)) (output rel L2 \(fmt(before.relL2)), cosine \(fmt(before.cosine)))")
        var best = (loss: before.loss, vars: variables, step: 0)
        var stale = 0
        var stepsRun = 0
        var lastTrain = 0.0
        var order: [Int] = []
        var trainRefs: [Int: [String: NDArray]] = [:]
        for step in 0..<options.steps {
            var gradSum: [[Double]] = variables.map { [Double](repeating: 0, count: $0.count) }
            var lossSum = 0.0
            let current = effective(variables)
            for _ in 0..<options.batch {
                if order.isEmpty { order = Self.shuffled(data.train.count, &rng) }
                let k = order.removeLast()
                let feeds = data.diffusion.map { $0.draw(data.train[k], rng: &rng) } ?? data.train[k]
                // Fixed samples: the teacher runs once per set (cached); denoiser draws are new each time.
                let refs: [String: NDArray]
                if data.diffusion == nil, let cached = trainRefs[k] {
                    refs = cached
                } else {
                    refs = try objective.teacherValues(feeds)
                    if data.diffusion == nil { trainRefs[k] = refs }
                }
                let (l, g) = try objective.lossAndGradient(feeds, refs: refs, weights: current)
                let vg = lora?.gradients(g, adapters: variables) ?? g
                lossSum += l
                for i in gradSum.indices { for j in gradSum[i].indices { gradSum[i][j] += vg[i][j] } }
            }
            let scale = 1 / Double(options.batch)
            for i in variables.indices {
                optimizers[i].step(&variables[i], gradients: gradSum[i].map { $0 * scale })
            }
            lastTrain = lossSum * scale
            stepsRun = step + 1
            for values in [[lastTrain]] + variables {
                try PruningError.checkFinite(values, pass: Self.name, step: stepsRun, what: "the training loss or a weight",
                                             hint: "lower lr (now \(options.lr))")
            }
            if stepsRun % options.evalEvery == 0 || stepsRun == options.steps {
                let held = try objective.evaluate(evalSet, refs: evalRefs, weights: effective(variables)).loss
                if held < best.loss {
                    best = (held, variables, stepsRun)
                    stale = 0
                } else {
                    stale += 1
                }
                let elapsed = Date().timeIntervalSince(started)
                context.progress(PassProgress(
                    pass: Self.name, step: stepsRun, total: options.steps, elapsed: elapsed,
                    detail: "train loss \(fmt(lastTrain)), held-out loss \(fmt(held)) (best \(fmt(best.loss)) at step \(best.step))"))
                if options.patience > 0 && stale >= options.patience && !data.held.isEmpty {
                    context.logger.info("\(Self.name): no better held-out loss in \(options.patience) evaluations; stopping at step \(stepsRun)")
                    break
                }
            }
        }
        let final = effective(best.vars)
        let after = try objective.evaluate(evalSet, refs: evalRefs, weights: final)
        let changed = best.step > 0
        if changed { weights.write(final, into: model) }
        context.logger.info("\(Self.name): held-out \(String(repeating: " ", count: 0))loss \(fmt(before.loss)) → \(fmt(after.loss)), output MSE \(fmt(before.mse)) → \(fmt(after.mse)), rel L2 \(fmt(before.relL2)) → \(fmt(after.relL2)), cosine \(fmt(before.cosine)) → \(fmt(after.cosine))\(changed ? " (weights of step \(best.step))" : " (no step improved the held-out loss: weights unchanged)")")
        return PassResult(changed: changed, statistics: [
            "heldout-loss-before": before.loss, "heldout-loss-after": after.loss,
            "heldout-mse-before": before.mse, "heldout-mse-after": after.mse,
            "heldout-rel-l2-before": before.relL2, "heldout-rel-l2-after": after.relL2,
            "heldout-cosine-before": before.cosine, "heldout-cosine-after": after.cosine,
            "train-loss": lastTrain, "steps": Double(stepsRun), "best-step": Double(best.step),
            "trained-tensors": Double(weights.params.count), "trained-weights": Double(variables.reduce(0) { $0 + $1.count }),
            "feature-points": Double(objective.features.count), "seconds": Date().timeIntervalSince(started),
        ])
    }

    /// The teacher's floating-point outputs, each checked against the student's output of the
    /// same name (element type and known dims).
    ///
    /// - Throws: ``DistillError/outputMismatch(output:reason:)`` naming the first output that does not match.
    static func matchOutputs(teacher: Model, student: Model) throws -> [String] {
        var names: [String] = []
        for t in teacher.graph.outputs where t.type?.elementType?.isFloatingPoint ?? true {
            guard let s = student.graph.outputs.first(where: { $0.name == t.name }) else {
                throw DistillError.outputMismatch(output: t.name, reason: "the student has no output of that name (its outputs: \(student.graph.outputs.map(\.name).joined(separator: ", ")))")
            }
            guard FeatureMatching.sameShape(t, s) else {
                throw DistillError.outputMismatch(output: t.name, reason: "the teacher's is \(t.type.map { "\($0)" } ?? "?"), the student's \(s.type.map { "\($0)" } ?? "?")")
            }
            names.append(t.name)
        }
        guard !names.isEmpty else { throw DistillError.outputMismatch(output: "-", reason: "the teacher has no floating-point output to distill") }
        return names
    }

    static func shuffled(_ n: Int, _ rng: inout NoiseSource) -> [Int] {
        var a = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            a.swapAt(i, j)
        }
        return a
    }

    func fmt(_ x: Double) -> String { String(format: "%.4g", x) }
}

/// Why `distill` cannot run.
public enum DistillError: Error, CustomStringConvertible {
    /// No teacher in the pass context.
    case noTeacher
    /// No calibration sets.
    case noCalibration
    /// A teacher output the student does not match.
    case outputMismatch(output: String, reason: String)
    /// No weight matched the selection.
    case nothingToTrain(train: String, nodes: String)
    /// The calibration data lacks an input the teacher or student needs.
    case missingInput(String)

    /// The message the compile command prints.
    public var description: String {
        switch self {
        case .noTeacher:
            return "distill needs the original model as the teacher: run it in a prunec pipeline (the input model is the teacher) or name it with --teacher ORIGINAL.onnx"
        case .noCalibration:
            return "distill needs calibration data to train on: pass --calib DATA.npz (several sets: set1.<input>, set2.<input>, ...)"
        case .outputMismatch(let o, let r):
            return "the student's outputs do not match the teacher's: output '\(o)': \(r)"
        case .nothingToTrain(let t, let n):
            return "no weight to train with train=\(t), nodes=\(n)"
        case .missingInput(let name):
            return "the calibration data has no '\(name)', an input of the teacher"
        }
    }
}
