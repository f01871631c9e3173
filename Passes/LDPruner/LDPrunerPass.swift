import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `ld-pruner`: latent-space importance (LD-Pruner). Every candidate unit (head, neuron, filter,
/// and residual block with `kinds=...+blocks`) is scored by how far masking it alone moves the
/// output distribution over the calibration samples,
/// `Σ_outputs ‖mean Z − mean Z′‖₂ + ‖std Z − std Z′‖₂` (mean and std elementwise over the
/// samples; when the samples differ in shape, those of one shape are scored on). A diffusion
/// denoiser is scored on its prediction at `timesteps` noise levels per sample (see
/// ``LatentEvaluation``). The lowest-scoring units are gated to zero to meet the target
/// (`sparsity`, `params` or `flops`, as in `magnitude`); run `fold-masks` afterwards.
///
/// Scoring dominates the cost. `estimate` chooses how:
/// 1. `exact`: each sample is run once with a tape, and each masked unit re-executes only the steps
///    downstream of its gate (`reuse=true`, ``Tape/rerun(changing:)``): one rerun per unit and sample.
/// 2. `first-order`: every unit at once from `2 · projections` backward passes per sample and
///    output (``FirstOrderShiftEstimator``: `ΔZ ≈ −∂Z/∂g`, norms sketched by random projections).
/// 3. `shortlist` (default): the first-order estimate, then exact reruns for the share `exact` of
///    the units whose estimate lies nearest the cut the target implies; the other units keep their
///    estimate scaled by the median ratio of exact score to estimate over the rerun units (per
///    group, else per kind), so both rank together. Blocks are always rerun.
///
/// The statistics report the runs, the share of steps recomputed, the estimate's rank correlation
/// with the exact scores over the rerun units, and the held-out drift of the result (compare it
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
        /// How the units are scored.
        public enum Estimate: String, PassOptionEnum {
            /// Every unit masked and rerun.
            case exact
            /// Every unit from the first-order sketch alone.
            case firstOrder = "first-order"
            /// The sketch, then exact reruns of the units nearest the cut.
            case shortlist
        }
        @PassOption("estimate", help: "exact: rerun every unit masked; first-order: estimate every unit from backward passes (2·projections per input); shortlist: estimate, then rerun exactly the share 'exact' of the units nearest the cut")
        public var estimate: Estimate = .shortlist
        @PassOption("exact", .fraction, help: "for estimate=shortlist: share of the units rerun exactly (those whose estimate is nearest the cut)")
        public var exact = 0.2
        @PassOption("stack", help: "for estimate=first-order and shortlist: stack the samples along the batch axis, so one run (rerun, backward pass) serves them all, when the model's rows are independent (checked; memory grows with the samples)")
        public var stack = true
        // Off by default: on MiniLM at 20% of head+FFN params it removes heads and ends lower
        // (0.838 mean cosine, 0.868 with reconstruct, against 0.880 and 0.952 ranked by score).
        @PassOption("per-cost", help: "rank units by score per removed parameter (params/sparsity targets) or per MAC (flops target), so a head and a neuron compete on what each parameter costs")
        public var perCost = false
        @PassOption("projections", .between(1, 1024), help: "random projections per output and term of the first-order estimate (its error on a score is about 1/√(2·projections))")
        public var projections = 64
        /// How a denoiser is noised (schedule, σ range, shift).
        public var diffusion = DiffusionOptions()
        public init() {}

        public func validate() throws {
            let defaults = Options()
            if estimate != .shortlist, exact != defaults.exact {
                throw OptionError(key: "exact", message: "is the share of units rerun by estimate=shortlist, and estimate is \(estimate.rawValue)")
            }
            if estimate == .exact, stack != defaults.stack {
                throw OptionError(key: "stack", message: "applies to estimate=first-order and shortlist; estimate=exact runs each sample alone")
            }
            if estimate == .exact, projections != defaults.projections {
                throw OptionError(key: "projections", message: "sizes the first-order estimate, which estimate=exact does not make")
            }
        }
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
        /// The scores the units are ranked by: exact, estimated, or both (``exactUnits``).
        public let scores: LatentShiftScores
        /// The first-order estimates (`estimate=first-order` and `shortlist`).
        public let estimates: FirstOrderShiftEstimator.Estimates?
        /// Per group, per unit: whether its score is exact (`nil`: every unit's is).
        public let exactUnits: [[Bool]]?
        /// Per group: the factor the estimates were scaled by to compare with exact scores
        /// (`estimate=shortlist`; the median ratio of exact score to estimate over the rerun units).
        public let scales: [Double]?
        /// The interpreter of ``TrainableGates/trainingModel``.
        public let interpreter: Interpreter
        /// The model's parameters and MACs before gating.
        public let totalParams: Int, totalMACs: Int
    }

    /// Gates `model`'s groups of the target kinds (all open) and scores every unit and block.
    ///
    /// - Throws: ``PruningError/nothingToPrune(kinds:blocked:)``, ``LDPrunerError``, or what the
    ///   interpreter throws.
    public func score(_ model: Model, context: PassContext) throws -> Scoring {
        let totalParams = CostModel.parameterCount(model), totalMACs = CostModel().totalMACs(model) ?? 0
        let gates = try TrainableGates(model: model, kinds: options.target.kinds)
        let interpreter = try context.interpreter(for: gates.trainingModel)
        let evaluation = try LatentEvaluation.make(
            model: gates.trainingModel, gateInputs: Set(gates.inputNames + gates.blockInputs), samples: options.samples,
            holdout: options.holdout, timesteps: options.timesteps, diffusion: options.diffusion, pass: Self.name, oneShape: true,
            context: context)
        let units = gates.groups.reduce(0) { $0 + $1.unitCount }
        let blocks = gates.blockInputs.filter { !$0.isEmpty }.count
        let source = context.calibration.isEmpty ? "seeded" : "calibration"
        let what = evaluation.denoiser.map { d in
            "\(evaluation.samples) \(source) samples × \(evaluation.timesteps.count) timesteps (\(evaluation.timesteps.map { String(format: "%g", $0) }.joined(separator: ", "))) of denoiser output '\(d.output)'"
        } ?? "\(evaluation.samples) \(source) inputs"
        let how: String
        switch options.estimate {
        case .exact: how = "exactly"
        case .firstOrder: how = "to first order (\(options.projections) projections)"
        case .shortlist: how = "to first order (\(options.projections) projections), then \(fmt(100 * options.exact))% exactly"
        }
        context.logger.info("\(Self.name): scoring \(units) units in \(gates.groups.count) groups\(blocks > 0 ? " and \(blocks) blocks" : "") \(how) on \(what), reuse \(options.reuse ? "on" : "off")")
        // Samples stacked along the batch axis: one run serves them all (not for estimate=exact,
        // which keeps its per-sample runs).
        var inputs = evaluation.scoring, rows = 1
        if options.estimate != .exact, options.stack, inputs.count > 1,
           let stacked = SampleStack.verified(inputs, interpreter: interpreter, extra: gates.ones, outputs: evaluation.outputs) {
            inputs = [stacked]
            rows = evaluation.scoring.count
            context.logger.info("\(Self.name): the \(rows) inputs run stacked along the batch axis")
        }
        var scorer = LatentShiftScorer(interpreter: interpreter, gates: gates, inputs: inputs, outputs: evaluation.outputs,
                                       reuse: options.reuse)
        scorer.rows = rows
        func exactScores(only: [[Bool]]?, probes: Int) throws -> LatentShiftScores {
            var lastLog = Date()
            return try scorer.score(only: only) { done, total, elapsed in
                let now = Date()
                guard done == total || now.timeIntervalSince(lastLog) >= 1 else { return }
                lastLog = now
                let perInput = max(1, total / max(probes, 1))
                context.progress(PassProgress(pass: Self.name, step: done / perInput, total: probes, elapsed: elapsed, detail: "units scored"))
            }
        }
        func result(_ scores: LatentShiftScores, estimates: FirstOrderShiftEstimator.Estimates? = nil, exactUnits: [[Bool]]? = nil,
                    scales: [Double]? = nil) -> Scoring {
            Scoring(gates: gates, evaluation: evaluation, scores: scores, estimates: estimates, exactUnits: exactUnits, scales: scales,
                    interpreter: interpreter, totalParams: totalParams, totalMACs: totalMACs)
        }
        guard options.estimate != .exact else { return result(try exactScores(only: nil, probes: units + blocks)) }

        var estimator = FirstOrderShiftEstimator(interpreter: interpreter, gates: gates, inputs: inputs,
                                                 outputs: evaluation.outputs, projections: options.projections, seed: context.seed)
        estimator.rows = rows
        var lastLog = Date()
        let estimates = try estimator.estimate { done, total, elapsed in
            let now = Date()
            guard done == total || now.timeIntervalSince(lastLog) >= 1 else { return }
            lastLog = now
            context.progress(PassProgress(pass: Self.name, step: done, total: total, elapsed: elapsed, detail: "backward passes (first-order estimate)"))
        }
        context.logger.info("\(Self.name): first-order estimate of \(units) units in \(String(format: "%.1f", estimates.seconds)) s (\(estimates.backwardRuns) backward passes)")
        guard options.estimate == .shortlist else {
            let scores = LatentShiftScores(units: estimates.units, blocks: estimates.blocks, maskedRuns: 0, referenceRuns: evaluation.scoring.count,
                                           stepsRecomputed: 0, stepsFull: 0, seconds: estimates.seconds)
            return result(scores, estimates: estimates, exactUnits: gates.groups.map { [Bool](repeating: false, count: $0.unitCount) })
        }

        // Rerun the units nearest the cut the estimates imply; blocks are always rerun.
        let band = try shortlist(gates: gates, estimates: estimates.units, totalParams: totalParams, totalMACs: totalMACs)
        let rerun = band.joined().filter { $0 }.count
        let exact = try exactScores(only: band, probes: rerun + blocks)
        let scales = calibrationScales(gates: gates, estimates: estimates.units, exact: exact.units, band: band)
        var combined = estimates.units
        for g in combined.indices {
            for u in combined[g].indices { combined[g][u] = band[g][u] ? exact.units[g][u] : scales[g] * estimates.units[g][u] }
        }
        let scores = LatentShiftScores(units: combined, blocks: exact.blocks, maskedRuns: exact.maskedRuns, referenceRuns: exact.referenceRuns,
                                       stepsRecomputed: exact.stepsRecomputed, stepsFull: exact.stepsFull,
                                       seconds: estimates.seconds + exact.seconds)
        return result(scores, estimates: estimates, exactUnits: band, scales: scales)
    }

    /// Per group, per unit: the share ``Options/exact`` of the units whose estimate is nearest the
    /// cut that selecting by the estimates makes (by `|ln(estimate / cut)|`, the cut being the
    /// geometric mean of the highest estimate removed and the lowest kept, per group with
    /// `scope=layer`).
    func shortlist(gates: TrainableGates, estimates: [[Double]], totalParams: Int, totalMACs: Int) throws -> [[Bool]] {
        var band = estimates.map { [Bool](repeating: false, count: $0.count) }
        let all = estimates.reduce(0) { $0 + $1.count }
        let count = min(all, Int((options.exact * Double(all)).rounded()))
        guard count > 0 else { return band }
        guard count < all else { return estimates.map { [Bool](repeating: true, count: $0.count) } }
        let keep = try selectUnits(gates: gates, scores: estimates, totalParams: totalParams, totalMACs: totalMACs, normalize: false)
        // Distances to the cut are taken in the order the selection ranks by.
        let estimates = ranked(estimates, gates: gates)
        let tiny = Double.leastNormalMagnitude
        func cut(_ groups: [Int]) -> Double {
            var removed = -Double.infinity, kept = Double.infinity
            for g in groups {
                for (u, x) in estimates[g].enumerated() {
                    if keep[g][u] { kept = min(kept, x) } else { removed = max(removed, x) }
                }
            }
            if !removed.isFinite { return kept }
            if !kept.isFinite { return removed }
            return (max(removed, tiny) * max(kept, tiny)).squareRoot()
        }
        let global = cut(Array(estimates.indices))
        var distance: [(Double, Int, Int)] = []
        for g in estimates.indices {
            let c = max(options.target.global ? global : cut([g]), tiny)
            for (u, x) in estimates[g].enumerated() { distance.append((abs(Foundation.log(max(x, tiny) / c)), g, u)) }
        }
        distance.sort { ($0.0, $0.1, $0.2) < ($1.0, $1.1, $1.2) }
        for (_, g, u) in distance.prefix(count) { band[g][u] = true }
        return band
    }

    /// Per group: the median ratio of exact score to estimate over its rerun units (with at least
    /// 8 of them), else over the rerun units of its kind, else over all rerun units, else 1.
    func calibrationScales(gates: TrainableGates, estimates: [[Double]], exact: [[Double]], band: [[Bool]]) -> [Double] {
        func median(_ xs: [Double]) -> Double? {
            guard !xs.isEmpty else { return nil }
            let s = xs.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        var ratios = estimates.map { _ in [Double]() }
        for g in estimates.indices {
            for u in estimates[g].indices where band[g][u] && estimates[g][u] > 0 && exact[g][u].isFinite {
                ratios[g].append(exact[g][u] / estimates[g][u])
            }
        }
        let overall = median(ratios.flatMap { $0 }) ?? 1
        return gates.groups.indices.map { g in
            if ratios[g].count >= 8, let m = median(ratios[g]) { return m }
            let kind = gates.groups.indices.filter { gates.groups[$0].kind == gates.groups[g].kind }.flatMap { ratios[$0] }
            return kind.count >= 8 ? median(kind) ?? overall : overall
        }
    }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let started = Date()
        // Nothing to remove: scoring every unit (the whole cost of the pass) would decide nothing.
        guard options.target.amount > 0 else {
            context.logger.info("\(Self.name): the target removes nothing (\(options.target.measure.rawValue)=0); no unit scored")
            return .unchanged
        }
        let s = try score(model, context: context)
        let gates = s.gates, totalParams = s.totalParams, totalMACs = s.totalMACs

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
        if let e = s.estimates, let exact = s.exactUnits {
            stats["estimate-seconds"] = e.seconds
            stats["backward-passes"] = Double(e.backwardRuns)
            let rerun = exact.joined().filter { $0 }.count
            stats["units-rerun"] = Double(rerun)
            // How well the estimates rank the rerun units (over a band near the cut, a harder test
            // than over all units).
            var pairs: [(Double, Double)] = []
            for g in exact.indices { for u in exact[g].indices where exact[g][u] { pairs.append((e.units[g][u], s.scores.units[g][u])) } }
            if pairs.count >= 3 { stats["estimate-rank-correlation"] = Self.rankCorrelation(pairs.map(\.0), pairs.map(\.1)) }
            if let scales = s.scales, !scales.isEmpty { stats["estimate-scale-median"] = scales.sorted()[scales.count / 2] }
        }
        let blockKeep = try selectBlocks(gates.blocks, scores: s.scores.blocks, removedParams: removedParams, removedMACs: removedMACs,
                                         totalParams: totalParams, totalMACs: totalMACs)
        for (b, kept) in zip(gates.blocks, blockKeep) where !kept {
            try Masks.set(0, for: b, in: model)
            removedParams += Double(b.params)
        }
        if !gates.blocks.isEmpty { stats["blocks-removed"] = Double(blockKeep.filter { !$0 }.count) }
        stats["params-removed"] = removedParams
        stats["params-fraction-removed"] = removedParams / Double(max(1, totalParams))
        let estimated = s.estimates.map { e in
            "first-order estimate \(String(format: "%.1f", e.seconds)) s (\(e.backwardRuns) backward passes)\(stats["units-rerun"].map { ", \(Int($0)) rerun exactly" } ?? "")\(stats["estimate-rank-correlation"].map { ", rank correlation with the estimate \(String(format: "%.3f", $0))" } ?? ""); "
        } ?? ""
        context.logger.info("\(Self.name): scored \(Int(stats["units-scored"] ?? 0)) units in \(String(format: "%.1f", s.scores.seconds)) s (\(estimated)\(s.scores.maskedRuns) masked runs; recomputed \(String(format: "%.1f", 100 * (stats["recomputed-fraction"] ?? 1)))% of their steps\(options.reuse ? "" : ", reuse off")); removed \(Int(unitsRemoved)) unit params and \(Int(removedParams - unitsRemoved)) block params")

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

    /// The scores as ranked: per removed parameter (or MAC, for a flops target) with `per-cost`.
    func ranked(_ scores: [[Double]], gates: TrainableGates) -> [[Double]] {
        options.perCost ? UnitSelection.perCost(scores, of: gates.groups, measure: options.target.measure) : scores
    }

    /// Keep flags per group for these scores (higher = more important), ranked per cost with
    /// `per-cost`.
    func selectUnits(gates: TrainableGates, scores raw: [[Double]], totalParams: Int, totalMACs: Int, normalize: Bool) throws -> [[Bool]] {
        guard !gates.groups.isEmpty else { return [] }
        let scores = ranked(raw, gates: gates)
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

    /// Spearman's rank correlation of `a` and `b` (ties get their mean rank).
    static func rankCorrelation(_ a: [Double], _ b: [Double]) -> Double {
        func ranks(_ x: [Double]) -> [Double] {
            let order = x.indices.sorted { x[$0] < x[$1] }
            var r = [Double](repeating: 0, count: x.count)
            var i = 0
            while i < order.count {
                var j = i
                while j + 1 < order.count && x[order[j + 1]] == x[order[i]] { j += 1 }
                for k in i...j { r[order[k]] = Double(i + j) / 2 }
                i = j + 1
            }
            return r
        }
        let ra = ranks(a), rb = ranks(b), n = Double(a.count)
        let ma = ra.reduce(0, +) / n, mb = rb.reduce(0, +) / n
        var cov = 0.0, va = 0.0, vb = 0.0
        for (x, y) in zip(ra, rb) {
            cov += (x - ma) * (y - mb)
            va += (x - ma) * (x - ma)
            vb += (y - mb) * (y - mb)
        }
        return va > 0 && vb > 0 ? cov / (va * vb).squareRoot() : 0
    }
}
