import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `ld-pruner`: latent-space importance (LD-Pruner). Every candidate unit (head, neuron, filter,
/// and residual block with `kinds=...+blocks`) is masked alone and the model is run on the
/// calibration samples; its score is how far the output distribution moves,
/// `Σ_outputs ‖mean Z − mean Z′‖₂ + ‖std Z − std Z′‖₂` (mean and std elementwise over the
/// samples). A diffusion denoiser is scored on its prediction at `timesteps` noise levels per
/// sample (see ``LatentEvaluation``). The lowest-scoring units are gated to zero to meet the
/// target (`sparsity`, `params` or `flops`, as in `magnitude`); run `fold-masks` afterwards.
///
/// Scoring dominates the cost: each sample is run once with a tape, and each masked unit re-executes
/// only the steps downstream of its gate (`reuse=true`, ``Tape/rerun(changing:)``). The statistics
/// report the runs, the share of steps recomputed, and the held-out drift of the result (compare it
/// with other methods through `prunec --compare PIPELINE`).
public struct LDPrunerPass: Pass {
    public struct Options: PassOptions {
        /// How much to remove, and where.
        public var target = PruningTarget()
        @PassOption("timesteps", .between(1, 1000),
                    help: "for a denoiser: noise levels per calibration sample, spread over the schedule (the latent is the sample's, noised)")
        public var timesteps = 3
        @PassOption("samples", .between(1, 4096), help: "most calibration samples to score on")
        public var samples = 8
        @PassOption("holdout", .between(0, 1024), help: "calibration samples held out (the last ones) for the reported drift")
        public var holdout = 1
        @PassOption("reuse", help: "rerun only the steps downstream of each masked unit, reusing the recorded run (false: full runs)")
        public var reuse = true
        /// How a denoiser is noised (schedule, σ range, shift).
        public var diffusion = DiffusionOptions()
        public init() {}
    }

    public static let name = "ld-pruner"
    public static let summary = "gate the units whose masking moves the output distribution least (LD-Pruner, latent-space importance)"

    public let options: Options
    public init(options: Options) { self.options = options }

    /// What ``score(_:context:)`` found.
    public struct Scoring {
        /// The gates (now in `model`, all open).
        public let gates: TrainableGates
        /// The inputs scored on and held out.
        public let evaluation: LatentEvaluation
        /// The scores.
        public let scores: LatentShiftScores
        /// The interpreter of ``TrainableGates/trainingModel``.
        public let interpreter: Interpreter
    }

    /// Gates `model`'s groups of the target kinds (all open) and scores every unit and block.
    ///
    /// - Throws: ``PruningError/nothingToPrune(kinds:blocked:)``, ``LDPrunerError``, or what the
    ///   interpreter throws.
    public func score(_ model: Model, context: PassContext) throws -> Scoring {
        let gates = try TrainableGates(model: model, kinds: options.target.kinds)
        let interpreter = try context.interpreter(for: gates.trainingModel)
        let evaluation = try LatentEvaluation.make(
            model: gates.trainingModel, gateInputs: Set(gates.inputNames + gates.blockInputs), samples: options.samples,
            holdout: options.holdout, timesteps: options.timesteps, diffusion: options.diffusion, pass: Self.name,
            context: context)
        let units = gates.groups.reduce(0) { $0 + $1.unitCount }
        let blocks = gates.blockInputs.filter { !$0.isEmpty }.count
        let source = context.calibration.isEmpty ? "seeded" : "calibration"
        let what = evaluation.denoiser.map { d in
            "\(evaluation.samples) \(source) samples × \(evaluation.timesteps.count) timesteps (\(evaluation.timesteps.map { String(format: "%g", $0) }.joined(separator: ", "))) of denoiser output '\(d.output)'"
        } ?? "\(evaluation.samples) \(source) inputs"
        context.logger.info("\(Self.name): scoring \(units) units in \(gates.groups.count) groups\(blocks > 0 ? " and \(blocks) blocks" : "") on \(what), reuse \(options.reuse ? "on" : "off")")
        let scorer = LatentShiftScorer(interpreter: interpreter, gates: gates, inputs: evaluation.scoring, outputs: evaluation.outputs,
                                       reuse: options.reuse)
        let probes = units + blocks
        var lastLog = Date()
        let scores = try scorer.score { done, total, elapsed in
            let now = Date()
            guard done == total || now.timeIntervalSince(lastLog) >= 1 else { return }
            lastLog = now
            let perInput = max(1, total / max(probes, 1))
            context.progress(PassProgress(pass: Self.name, step: done / perInput, total: probes, elapsed: elapsed, detail: "units scored"))
        }
        return Scoring(gates: gates, evaluation: evaluation, scores: scores, interpreter: interpreter)
    }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let started = Date()
        // Nothing to remove: scoring every unit (the whole cost of the pass) would decide nothing.
        guard options.target.amount > 0 else {
            context.logger.info("\(Self.name): the target removes nothing (\(options.target.measure.rawValue)=0); no unit scored")
            return .unchanged
        }
        let totalParams = CostModel.parameterCount(model), totalMACs = CostModel().totalMACs(model) ?? 0
        let s = try score(model, context: context)
        let gates = s.gates, target = options.target

        // Output distances compare across groups as they are: no per-group normalization.
        let keep = try selectUnits(gates: gates, scores: s.scores.units, totalParams: totalParams, totalMACs: totalMACs, normalize: false)
        var stats: [String: Double] = [
            "units-scored": Double(gates.groups.reduce(0) { $0 + $1.unitCount } + gates.blocks.count),
            "groups": Double(gates.groups.count),
            "evaluation-inputs": Double(s.evaluation.scoring.count),
            "evaluations": Double(s.scores.maskedRuns),
            "reference-runs": Double(s.scores.referenceRuns),
            "scoring-seconds": s.scores.seconds,
            "steps-recomputed": Double(s.scores.stepsRecomputed),
            "steps-full": Double(s.scores.stepsFull),
            "recomputed-fraction": Double(s.scores.stepsRecomputed) / Double(max(1, s.scores.stepsFull)),
        ]
        var removedParams = 0.0, removedMACs = 0.0
        for (g, k) in zip(gates.groups, keep) {
            stats["\(g.kind)-removed", default: 0] += Double(k.filter { !$0 }.count)
            for (u, kept) in k.enumerated() where !kept {
                removedParams += Double(g.paramsPerUnit[u])
                removedMACs += g.macsPerUnit[u]
            }
            try Masks.set(k.map { $0 ? 1 : 0 }, for: g, in: model)
        }
        let unitsRemoved = removedParams
        let blockKeep = try selectBlocks(gates.blocks, scores: s.scores.blocks, removedParams: removedParams, removedMACs: removedMACs,
                                         totalParams: totalParams, totalMACs: totalMACs)
        for (b, kept) in zip(gates.blocks, blockKeep) where !kept {
            try Masks.set(0, for: b, in: model)
            removedParams += Double(b.params)
        }
        if !gates.blocks.isEmpty { stats["blocks-removed"] = Double(blockKeep.filter { !$0 }.count) }
        stats["params-removed"] = removedParams
        stats["params-fraction-removed"] = removedParams / Double(max(1, totalParams))
        context.logger.info("\(Self.name): scored \(Int(stats["units-scored"] ?? 0)) units in \(String(format: "%.1f", s.scores.seconds)) s (\(s.scores.maskedRuns) masked runs; recomputed \(String(format: "%.1f", 100 * (stats["recomputed-fraction"] ?? 1)))% of their steps\(options.reuse ? "" : ", reuse off")); removed \(Int(unitsRemoved)) unit params and \(Int(removedParams - unitsRemoved)) block params")

        let held = s.evaluation.heldOut
        if !held.isEmpty {
            let refs = try held.map { try s.interpreter.run($0.merging(gates.ones) { _, b in b }) }
            func drift(_ keep: [[Bool]], _ blocks: [Bool]) throws -> Double {
                let feeds = gates.feeds(keep.map { $0.map { $0 ? 1 : 0 } }, blocks: blocks.map { $0 ? 1 : 0 })
                var total = 0.0
                for (input, ref) in zip(held, refs) {
                    let out = try s.interpreter.run(input.merging(feeds) { _, b in b })
                    let d = try s.evaluation.outputs.map { name -> Double in
                        guard let y = out[name], let r = ref[name] else { throw LDPrunerError.missingOutput(name) }
                        return GateMath.relativeL2(GateMath.values(y), GateMath.values(r))
                    }
                    total += d.reduce(0, +) / Double(max(1, d.count))
                }
                return total / Double(held.count)
            }
            let ld = try drift(keep, blockKeep)
            stats["holdout-drift"] = ld
            let line = "\(Self.name): held-out drift (rel L2 of the \(s.evaluation.denoiser == nil ? "outputs" : "prediction"), \(held.count) inputs) \(fmt(ld))"
            context.logger.info("\(line)")
        }
        stats["seconds"] = Date().timeIntervalSince(started)
        return PassResult(changed: true, statistics: stats)
    }

    /// Keep flags per group for these scores (higher = more important).
    func selectUnits(gates: TrainableGates, scores: [[Double]], totalParams: Int, totalMACs: Int, normalize: Bool) throws -> [[Bool]] {
        guard !gates.groups.isEmpty else { return [] }
        var candidates: [UnitSelection.Candidate] = []
        for (g, group) in gates.groups.enumerated() {
            for u in 0..<group.unitCount {
                candidates.append(.init(group: g, unit: u, score: scores[g][u], params: Double(group.paramsPerUnit[u]), macs: group.macsPerUnit[u]))
            }
        }
        return try UnitSelection.select(
            unitCounts: gates.groups.map(\.unitCount), names: gates.groups.map(\.name), candidates: candidates, target: options.target,
            totalParams: totalParams, totalMACs: totalMACs, roundable: gates.groups.map { $0.kind != .heads }, normalize: normalize,
            keepOneOf: gates.groups.map(\.partialUnitSets))
    }

    /// Keep flags per block: `round(sparsity × blocks)` of the lowest-scoring go; for `params` and
    /// `flops`, the lowest-scoring go until the target (less what the units removed) is met.
    func selectBlocks(_ blocks: [ResidualBlock], scores: [Double], removedParams: Double, removedMACs: Double,
                      totalParams: Int, totalMACs: Int) throws -> [Bool] {
        guard !blocks.isEmpty else { return [] }
        let target = options.target
        var keep = [Bool](repeating: true, count: blocks.count)
        let order = scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }
        switch target.measure {
        case .sparsity:
            let k = Int((target.amount * Double(blocks.count)).rounded(.toNearestOrEven))
            guard k < blocks.count else {
                throw SelectionError.emptied(group: "residual blocks", units: blocks.count, amount: target.amount)
            }
            for i in order.prefix(k) { keep[i] = false }
        case .params, .flops:
            let params = target.measure == .params
            var done = params ? removedParams : removedMACs
            let goal = target.amount * Double(params ? totalParams : totalMACs)
            for i in order.dropLast() where done < goal {
                keep[i] = false
                done += Double(params ? blocks[i].params : blocks[i].macs)
            }
        }
        return keep
    }

    func fmt(_ x: Double) -> String { String(format: "%.4g", x) }
}
