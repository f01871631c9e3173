import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `wanda`: structured Wanda (Sun et al., "A Simple and Effective Pruning Approach for LLMs").
///
/// Wanda scores a weight by `|W_ij| · ‖X_j‖₂`: its magnitude times the norm of the input feature
/// it multiplies, over the calibration activations. Here a unit of a pruning group (a channel,
/// head or neuron) scores the sum of that product over every weight it owns: the producing
/// layer's rows and the consuming layer's columns (MatMul, Gemm and Conv weights). Activations
/// come from running the model once per calibration set (`--calib`; sample inputs otherwise).
/// The lowest-scoring units are gated to the target (the options of `magnitude`); run
/// `fold-masks` afterwards to make the model smaller. A group with no such weight falls back to
/// its weight norm.
public struct WandaPass: Pass {
    /// `magnitude`'s target options (`sparsity`, `params`, `flops`, `scope`, `kinds`, ...) and one
    /// of its own. Each option is declared once: key, range and help here, type and default from
    /// the property; the pass reads typed properties.
    public struct Options: PassOptions {
        /// How much to prune, and which groups.
        public var target = PruningTarget()
        /// Calibration sets whose activations are averaged (0 = all of them).
        @PassOption("samples", .between(0, 1_000_000), help: "calibration sets to collect activation norms on (0 = all)")
        public var samples = 0
        /// The defaults.
        public init() {}
    }

    public static let name = "wanda"
    public static let summary = "gate the units with the smallest |W|·‖X‖ (Wanda; weights times calibration activation norms)"

    /// The options.
    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let analysis = PruningGroups.analyze(model)
        let groups = analysis.groups(of: options.target.kinds.subtracting([.blocks]))
        guard !groups.isEmpty else {
            throw PruningError.nothingToPrune(kinds: options.target.kinds, blocked: analysis.blocked.map { ($0.name, $0.blockedReason ?? "") })
        }
        let weights = groups.map { $0.parameters.compactMap(WeightUse.init) }
        let norms = try featureNorms(of: Set(weights.joined().map(\.activation)), in: model, context: context)

        var fallbacks = 0
        let scores = try groups.enumerated().map { gi, g in
            var scores = [Double](repeating: 0, count: g.unitCount)
            var scored = false
            for w in weights[gi] {
                guard let n = norms[w.activation] else { continue }
                scored = try w.accumulate(into: &scores, norms: n) || scored
            }
            if !scored {
                fallbacks += 1
                return try WeightNorms.unitScores(g)
            }
            return scores
        }
        // Rank to the target and gate the losers (the same selection magnitude uses).
        var stats = try UnitSelection.gate(scores: scores, of: groups, in: model, target: options.target)
        stats["groups"] = Double(groups.count)
        stats["weight-norm-fallbacks"] = Double(fallbacks)
        return PassResult(changed: true, statistics: stats)
    }

    /// ‖X_f‖₂ per input feature `f` of each named activation, over every calibration set (or one
    /// set of sample inputs) and every position.
    func featureNorms(of activations: Set<ActivationAxis>, in model: Model, context: PassContext) throws -> [ActivationAxis: [Double]] {
        guard !activations.isEmpty else { return [:] }
        // A copy whose outputs include the activations, so one run per set yields all of them.
        let probe = model.copy()
        let inputs = Set(probe.graph.inputs.map(\.name))
        for a in activations where !inputs.contains(a.name) && !probe.graph.outputs.contains(where: { $0.name == a.name }) {
            guard let v = probe.graph.value(named: a.name) else { continue }
            probe.graph.outputs.append(v)
        }
        let all = context.calibration.isEmpty ? [try SampleInputs.make(for: model, seed: context.seed)] : context.calibration
        let sets = options.samples > 0 ? Array(all.prefix(options.samples)) : all
        let interpreter = try context.interpreter(for: probe)
        var sums: [ActivationAxis: [Double]] = [:]
        for (i, feeds) in sets.enumerated() {
            let outputs = try interpreter.run(feeds)
            for a in activations {
                guard let x = outputs[a.name] ?? feeds[a.name], x.dtype == .float, x.rank > 0 else { continue }
                let axis = a.axis < 0 ? x.rank + a.axis : a.axis
                guard (0 ..< x.rank).contains(axis) else { continue }
                let n = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
                var acc = sums[a] ?? [Double](repeating: 0, count: n)
                guard acc.count == n else { continue }
                for (j, v) in x.scalars(as: Float.self).enumerated() { acc[(j / inner) % n] += Double(v) * Double(v) }
                sums[a] = acc
            }
            context.logger.debug("wanda: calibration set \(i + 1)/\(sets.count) done")
        }
        context.logger.info("wanda: input norms of \(sums.count) layers over \(sets.count) input sets")
        return sums.mapValues { $0.map { $0.squareRoot() } }
    }
}

/// An activation and the axis that holds its features (negative: from the end).
struct ActivationAxis: Hashable {
    let name: String
    let axis: Int
}

/// A group's slice of a MatMul, Gemm or Conv weight, with where its input features are.
struct WeightUse {
    let slice: GroupSlice
    let weight: Tensor
    /// The layer's input and its feature axis.
    let activation: ActivationAxis
    /// Which element of the weight multiplies which input feature.
    let feature: (_ index: Int) -> Int

    init?(_ slice: GroupSlice) {
        guard let node = slice.node, case .parameter(_, 1) = slice.target, let w = slice.value.constantValue,
            w.dtype == .float, let x = node.inputs[0], !x.name.isEmpty
        else { return nil }
        let s = w.shape, r = s.count
        switch node.opType {
        case .matMul where r >= 2:
            // W [..., in, out]: X's last axis.
            activation = ActivationAxis(name: x.name, axis: -1)
            feature = { ($0 / s[r - 1]) % s[r - 2] }
        case .gemm where r == 2:
            guard (try? node.attribute("transA", as: Int64.self)) ?? 0 == 0 else { return nil }
            let transB = (try? node.attribute("transB", as: Int64.self)) ?? 0 != 0
            activation = ActivationAxis(name: x.name, axis: 1)
            feature = transB ? { $0 % s[1] } : { ($0 / s[1]) % s[0] }
        case .conv where r >= 3:
            // W [O, I/g, k...]: input channel of X = group index × I/g + channel within the group.
            let groups = Int((try? node.attribute("group", as: Int64.self)) ?? 1)
            let perGroup = s[0] / max(groups, 1), kernel = s[2...].reduce(1, *)
            activation = ActivationAxis(name: x.name, axis: 1)
            feature = { i in (i / (s[1] * kernel)) / max(perGroup, 1) * s[1] + (i / kernel) % s[1] }
        default:
            return nil
        }
        self.slice = slice
        self.weight = w
    }

    /// Adds `|W| · ‖X_f‖` of every element to its unit's score; false when the norms do not fit.
    func accumulate(into scores: inout [Double], norms: [Double]) throws -> Bool {
        let values = try weight.floats()
        let inner = weight.shape[(slice.axis + 1)...].reduce(1, *)
        guard values.indices.allSatisfy({ feature($0) < norms.count }) else { return false }
        for (i, v) in values.enumerated() {
            scores[slice.units[(i / inner) % slice.size]] += Double(abs(v)) * norms[feature(i)]
        }
        return true
    }
}
