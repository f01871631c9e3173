import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// Gates that stand a closed unit in by its mean: in the training model, every gate
/// `Mul(x, m)` becomes `(x − μ)·m + μ`, μ the unit's mean activation over the calibration data.
///
/// A unit whose output barely varies then costs nothing to close, as it costs nothing once
/// `reconstruct` (or `reconstruct{mode=bias}`) folds its mean into the next layer's bias. Without
/// this the gates learn to close the units of small output, which is what the re-fit can fix least.
/// μ is kept per gate element and, for attention heads, per element of the head's feature axis (a
/// head's mean is a vector, as the bias fold sees it); other axes (batch, positions, a conv's
/// spatial axes) are averaged.
enum MeanCompensation {
    /// Rewrites `gates.trainingModel` in place. `model` is the gated model (masks as initializers,
    /// all ones) whose activations are probed on `sets`. Returns how many gates were rewritten.
    static func apply(to gates: TrainableGates, probing model: Model, sets: [[String: NDArray]], threads: Int) throws -> Int {
        let training = gates.trainingModel.graph
        // Each mask input's gate node and the value it gates.
        var sites: [(mask: TrainableGates.MaskInput, node: Node, gated: Value, heads: Bool)] = []
        for m in gates.masks {
            guard let input = training.inputs.first(where: { $0.name == m.name }) else { continue }
            for use in input.uses where use.node.opType == .mul && use.node.inputs.count == 2 {
                guard let x = use.node.inputs[1 - use.inputIndex] else { continue }
                sites.append((m, use.node, x, gates.groups[m.group].kind == .heads))
            }
        }
        guard !sites.isEmpty, !sets.isEmpty else { return 0 }
        let names = Array(Set(sites.map(\.gated.name)))
        var sums: [String: (sum: [Double], count: [Double], shape: [Int])] = [:]
        let probe = try ActivationProbe(model: model, values: names)
        try probe.forEach(sets, threads: threads) { _, acts in
            for site in sites {
                guard let x = acts[site.gated.name] else { continue }
                let shape = Self.meanShape(of: x.shape, mask: site.mask.shape, heads: site.heads)
                let key = "\(site.gated.name)|\(site.mask.name)"
                var entry = sums[key] ?? ([Double](repeating: 0, count: shape.reduce(1, *)), [Double](repeating: 0, count: shape.reduce(1, *)), shape)
                guard entry.shape == shape else { continue }
                Self.accumulate(x, into: &entry.sum, counts: &entry.count, meanShape: shape)
                sums[key] = entry
            }
        }
        let scope = NameScope(training)
        var rewritten = 0
        for site in sites {
            guard let entry = sums["\(site.gated.name)|\(site.mask.name)"], let dtype = site.gated.type?.elementType else { continue }
            let mean = zip(entry.sum, entry.count).map { $1 > 0 ? $0 / $1 : 0 }
            let mu = training.addInitializer(
                GateMath.array(mean, like: NDArray(zeros: dtype, shape: entry.shape)).tensor(), name: scope.fresh("\(site.mask.name).mean"))
            let centered = Node(.sub, name: scope.fresh("prunec.center"), inputs: [site.gated, mu], outputs: [scope.fresh("\(site.gated.name).centered")])
            centered.outputs[0].type = site.gated.type
            try training.insert(centered, before: site.node)
            site.node.setInput(centered.outputs[0], at: site.node.inputs.firstIndex { $0 === site.gated } ?? 0)
            let out = site.node.outputs[0]
            let readers = out.uses
            let restored = Node(.add, name: scope.fresh("prunec.uncenter"), inputs: [out, mu], outputs: [scope.fresh("\(out.name).compensated")])
            restored.outputs[0].type = out.type
            try training.insert(restored, after: site.node)
            for use in readers { use.node.setInput(restored.outputs[0], at: use.inputIndex) }
            if let i = training.outputs.firstIndex(where: { $0 === out }) { training.outputs[i] = restored.outputs[0] }
            rewritten += 1
        }
        return rewritten
    }

    /// μ's shape in the mask's (trailing) axes: the mask's own extents, and for heads the value's
    /// last axis (a head's features).
    static func meanShape(of x: [Int], mask: [Int], heads: Bool) -> [Int] {
        let offset = x.count - mask.count
        guard offset >= 0 else { return mask }
        return mask.indices.map { i in
            if mask[i] > 1 { return mask[i] }
            return heads && i == mask.count - 1 && mask.count >= 2 ? x[offset + i] : 1
        }
    }

    /// Adds `x`'s elements into the sums of the μ elements they broadcast onto.
    static func accumulate(_ x: NDArray, into sum: inout [Double], counts: inout [Double], meanShape: [Int]) {
        let values = x.doubles()
        let strides = Broadcast.strides(of: meanShape, to: x.shape)
        Broadcast.forEachRun(shape: x.shape, strides: [strides]) { start, offsets, length, inner in
            for e in 0..<length {
                let j = offsets[0] + e * inner[0]
                sum[j] += values[start + e]
                counts[j] += 1
            }
        }
    }
}
