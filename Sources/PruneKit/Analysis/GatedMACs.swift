import PruneIR

/// The MACs of a gated model as a differentiable function of its unit gates (AutoBot's FLOPs term).
///
/// Each MAC-bearing node costs `macs × Π_g f_g(λ)` where, for every group `g` that slices one of
/// its weight axes or its input/output channel axis, `f_g = Σ_u count_u · λ_u / size` is the kept
/// share of that axis (one factor per group). With 0/1 gates this is exactly the folded model's
/// MACs for Conv, MatMul and Gemm; with soft gates it is smooth, and ``evaluate(_:)`` returns the
/// gradient too.
public struct GatedMACs: Sendable {
    struct Factor: Sendable {
        let group: Int
        /// Elements of each unit on the sliced axis.
        let counts: [Int: Int]
        let size: Int
    }

    struct Term: Sendable {
        let macs: Double
        let factors: [Factor]
    }

    let terms: [Term]
    /// MACs of the nodes no group touches.
    public let fixed: Double
    /// MACs with every gate open.
    public var total: Double { fixed + terms.reduce(0) { $0 + $1.macs } }
    let unitCounts: [Int]

    /// The cost model of `model` for `groups` (analysed on `model`), with input shapes bound by
    /// `shapes` (symbolic dims need numbers to count MACs; they are bound on a copy, not in `model`).
    public init(model: Model, groups: [PruningGroup], shapes: [String: Shape] = [:]) throws {
        unitCounts = groups.map(\.unitCount)
        let copy = model.copy()
        ShapeInference(overrides: shapes).run(on: copy)
        // The copy has the same nodes in the same order.
        let macsOf = Dictionary(zip(model.graph.nodes.map(ObjectIdentifier.init), copy.graph.nodes.map { CostModel.macs(of: $0) })) { a, _ in a }
        var terms: [Term] = []
        var fixed = 0.0
        for n in model.graph.nodes {
            guard let mm = macsOf[ObjectIdentifier(n)], let m = mm, m > 0 else { continue }
            var factors: [Factor] = []
            for (gi, g) in groups.enumerated() {
                // One factor per weight axis the group slices (a group can slice both: a UNet
                // shortcut conv reading and writing channels of one GroupNorm-tied group), else
                // one for its output, else for an input.
                var weights: [GroupSlice] = []
                for sl in g.slices where !sl.isMask {
                    guard case .parameter(let node, 1) = sl.target, node === n, !weights.contains(where: { $0.axis == sl.axis }) else { continue }
                    weights.append(sl)
                }
                let output = g.slices.first { sl in !sl.isParameter && n.outputs.contains { $0 === sl.value } }
                let act = g.slices.first { sl in !sl.isParameter && n.inputs.contains { $0 === sl.value } }
                let chosen = !weights.isEmpty ? weights : ((output ?? act).map { [$0] } ?? [])
                for sl in chosen {
                    var counts: [Int: Int] = [:]
                    for u in sl.units { counts[u, default: 0] += 1 }
                    factors.append(Factor(group: gi, counts: counts, size: sl.size))
                }
            }
            if factors.isEmpty { fixed += Double(m) } else { terms.append(Term(macs: Double(m), factors: factors)) }
        }
        self.terms = terms
        self.fixed = fixed
    }

    /// MACs at gate values `gates[group][unit]`, and ∂MACs/∂gate.
    public func evaluate(_ gates: [[Double]]) -> (macs: Double, gradient: [[Double]]) {
        var f = fixed
        var grad = unitCounts.map { [Double](repeating: 0, count: $0) }
        for t in terms {
            let shares = t.factors.map { fa in fa.counts.reduce(0.0) { $0 + Double($1.value) * gates[fa.group][$1.key] } / Double(fa.size) }
            f += t.macs * shares.reduce(1, *)
            for (k, fa) in t.factors.enumerated() {
                var others = t.macs
                for (j, s) in shares.enumerated() where j != k { others *= s }
                for (u, c) in fa.counts { grad[fa.group][u] += others * Double(c) / Double(fa.size) }
            }
        }
        return (f, grad)
    }
}
