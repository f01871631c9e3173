import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `fluctuation`: activation-aware scores after FLAP (An et al., 2024). A unit matters as much as
/// the error its removal leaves in the layer that reads it: for each input feature j of that layer,
/// Var(x_j) · ‖W_j‖² (the part of the output that a constant cannot stand in for; the mean is what
/// `reconstruct{mode=bias}` puts back), or E[x_j²] · ‖W_j‖² with `metric=energy` (Wanda's
/// |W|·‖X‖, squared). A unit's score sums its features over every layer that reads it. Scores are
/// standardized per kind (heads, neurons, channels) so kinds compare, then ranked globally (or per
/// layer) to a `params`, `flops` or `sparsity` target. Needs calibration data; leaves masks.
public struct FluctuationPass: Pass {
    public struct Options: PassOptions {
        /// What a feature's score measures.
        public enum Metric: String, PassOptionEnum { case fluctuation, energy }
        /// How scores are made comparable before global ranking.
        public enum Standardize: String, PassOptionEnum { case kind, group, none }
        /// How much to remove, and where.
        public var target = PruningTarget()
        @PassOption("metric", help: "fluctuation: Var(x)·‖W‖²; energy: E[x²]·‖W‖² (Wanda-style)")
        public var metric: Metric = .fluctuation
        @PassOption("standardize", help: "make scores comparable before global ranking: per kind (z-score, as FLAP), per group (÷ mean), or raw errors")
        public var standardize: Standardize = .none
        @PassOption("per-cost", help: "rank by score per removed parameter (params/sparsity targets) or per MAC (flops target)")
        public var perCost = true
        @PassOption("samples", .between(0, 1_000_000), help: "calibration samples to collect statistics on (0 = all; each row of a batch is one)")
        public var samples = 0
        /// Scores are E[x²]·‖W‖² rather than Var(x)·‖W‖².
        public var energy: Bool { metric == .energy }
        public init() {}
    }

    public static let name = "fluctuation"
    /// Units are scored on calibration activations.
    public static let requirements: PassRequirements = [.calibration]
    public static let summary = "gate the units whose input to the next layer varies least, weighted by that layer's weights (FLAP)"

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        guard !context.calibration.isEmpty else {
            throw PruningError.invalid("fluctuation needs calibration data: pass --calib DATA (units are scored on its activations)")
        }
        let analysis = PruningGroups.analyze(model, for: options.target.kinds)
        let groups = analysis.groups(of: options.target.kinds.subtracting([.blocks]))
        guard !groups.isEmpty else {
            throw PruningError.nothingToPrune(kinds: options.target.kinds, blocked: analysis.blocked.map { ($0.name, $0.blockedReason ?? "") })
        }
        let sets = options.samples > 0 ? Array(context.calibration.prefix(options.samples)) : context.calibration
        let key = ScoreCache.key(pass: Self.name, options: "\(options.metric)|\(options.samples)|\(sets.count)", groups: groups)
        var probed = 0
        let scores = try context.scoreCache.map { cache in try cache.scores(for: key) { try rawScores(groups, in: model, sets: sets, context: context, probed: &probed) } }
            ?? rawScores(groups, in: model, sets: sets, context: context, probed: &probed)
        if probed == 0 { context.logger.info("fluctuation: unit scores reused from an earlier run of this pipeline (same model and scoring options)") }
        let standardized = Self.standardize(scores, kinds: groups.map(\.kind), how: options.standardize)
        // Per removed parameter (or MAC): a head costs as much as dozens of neurons.
        let ranked = options.perCost ? UnitSelection.perCost(standardized, of: groups, measure: options.target.measure) : standardized
        var result = try UnitSelection.gate(scores: ranked, of: groups, in: model, target: options.target, normalize: false)
        result["groups"] = Double(groups.count)
        result["layers-probed"] = Double(probed)
        result["calibration-sets"] = Double(sets.count)
        return PassResult(changed: true, statistics: result)
    }

    private func rawScores(_ groups: [PruningGroup], in model: Model, sets: [[String: NDArray]], context: PassContext, probed: inout Int) throws -> [[Double]] {
        try Self.unitScores(groups, in: model, sets: sets, metric: options.metric, context: context, probed: &probed)
    }

    /// The raw score of every unit of `groups` (`[group][unit]`, not standardized, not per cost):
    /// Σ over the layers reading the unit of stat_j · ‖W_j‖², stat = Var(x_j) (`fluctuation`) or
    /// E[x_j²] (`energy`), from one pass of the model over `sets`. Other passes use it as a cheap
    /// prior (ecodiff initializes its gates from it).
    ///
    /// - Parameter probed: set to the number of consumer layers whose inputs were recorded (a
    ///   unit no layer reads scores 0).
    /// - Throws: what the interpreter throws on `sets`, or ``PruningError`` when a layer's input
    ///   does not have the features the group says.
    public static func unitScores(_ groups: [PruningGroup], in model: Model, sets: [[String: NDArray]], metric: Options.Metric,
                                  context: PassContext, probed: inout Int) throws -> [[Double]] {
        let layers = ConsumerLayer.find(in: model, groups: groups)
        var stats = layers.map { FeatureStatistics(features: $0.units.count) }
        let probe = try ActivationProbe(model: model, values: Array(Set(layers.map(\.input.name))))
        let started = Date()
        try probe.forEach(sets, threads: context.threads) { i, acts in
            for (l, layer) in layers.enumerated() {
                guard let x = acts[layer.input.name] else { continue }
                try stats[l].add(x, channelAxis: layer.layout == .conv ? 1 : x.rank - 1, layer: layer.node.name)
            }
            if (i + 1) % 8 == 0 || i + 1 == sets.count {
                context.progress(PassProgress(pass: "fluctuation", step: i + 1, total: sets.count,
                                              elapsed: Date().timeIntervalSince(started),
                                              detail: "statistics of \(layers.count) layers on calibration set \(i + 1)"))
            }
        }
        // Per group and unit: Σ over the layers reading it of stat_j · ‖W_j‖².
        let index = Dictionary(uniqueKeysWithValues: groups.enumerated().map { (ObjectIdentifier($1), $0) })
        var scores = groups.map { [Double](repeating: 0, count: $0.unitCount) }
        for (l, layer) in layers.enumerated() {
            guard let g = index[ObjectIdentifier(layer.group)] else { continue }
            let norms = try Self.featureNorms(layer)
            let s = metric == .energy ? stats[l].energy : stats[l].variance
            for (j, u) in layer.units.enumerated() where j < norms.count && j < s.count { scores[g][u] += s[j] * norms[j] }
        }
        probed = layers.count
        return scores
    }

    /// ‖W_j‖² per input feature (channel) j of the layer.
    static func featureNorms(_ layer: ConsumerLayer) throws -> [Double] {
        let w = try layer.weight.floats(), shape = layer.weight.shape
        switch layer.layout {
        case .rows:
            let (k, n) = (shape[0], shape[1])
            return (0 ..< k).map { i in (0 ..< n).reduce(0.0) { $0 + Double(w[i * n + $1] * w[i * n + $1]) } }
        case .transposed:
            let (n, k) = (shape[0], shape[1])
            return (0 ..< k).map { i in (0 ..< n).reduce(0.0) { $0 + Double(w[$1 * k + i] * w[$1 * k + i]) } }
        case .conv:
            // [N, C/group, kernel...]: input channel c of a grouped conv is channel c % (C/group) of its group's filters.
            let perGroup = shape[1], inner = shape.dropFirst(2).reduce(1, *), n = shape[0]
            let groups = max(1, layer.units.count / max(perGroup, 1)), filtersPerGroup = n / groups
            return (0 ..< layer.units.count).map { c in
                let g = c / perGroup, ci = c % perGroup
                var s = 0.0
                for f in g * filtersPerGroup ..< (g + 1) * filtersPerGroup {
                    for e in 0 ..< inner { let v = Double(w[(f * perGroup + ci) * inner + e]); s += v * v }
                }
                return s
            }
        }
    }

    /// Scores made comparable across groups: z-scores per kind (FLAP's standardization), ÷ the
    /// group mean, or unchanged.
    static func standardize(_ scores: [[Double]], kinds: [GroupKind], how: Options.Standardize) -> [[Double]] {
        switch how {
        case .group:
            return scores.map { s in
                let mean = s.reduce(0, +) / Double(max(s.count, 1))
                return mean > 0 ? s.map { $0 / mean } : s
            }
        case .kind:
            var out = scores
            for kind in Set(kinds) {
                let all = zip(scores, kinds).filter { $0.1 == kind }.flatMap(\.0)
                let mean = all.reduce(0, +) / Double(max(all.count, 1))
                let std = (all.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(all.count, 1))).squareRoot()
                for g in scores.indices where kinds[g] == kind {
                    out[g] = scores[g].map { std > 0 ? ($0 - mean) / std : 0 }
                }
            }
            return out
        case .none:
            return scores
        }
    }
}

/// Running per-feature sums of one layer's input: count, Σx, Σx² (double precision).
struct FeatureStatistics {
    var count = 0.0
    var sum: [Double]
    var squares: [Double]

    init(features: Int) {
        sum = [Double](repeating: 0, count: features)
        squares = sum
    }

    mutating func add(_ x: NDArray, channelAxis: Int, layer: String) throws {
        guard x.rank > channelAxis, x.shape[channelAxis] == sum.count else {
            throw PruningError.invalid("fluctuation: layer '\(layer)' reads \(x.shape), expected \(sum.count) features on axis \(channelAxis)")
        }
        let v = x.doubles(), c = sum.count
        let inner = x.shape[(channelAxis + 1)...].reduce(1, *)
        for (i, e) in v.enumerated() {
            let j = (i / inner) % c
            sum[j] += e
            squares[j] += e * e
        }
        count += Double(v.count / c)
    }

    var energy: [Double] { squares.map { $0 / max(count, 1) } }
    var variance: [Double] { zip(sum, squares).map { s, q in max(q / max(count, 1) - (s / max(count, 1)) * (s / max(count, 1)), 0) } }
}
