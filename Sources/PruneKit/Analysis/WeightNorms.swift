import PruneIR

/// Weight-norm importance (Torch-Pruning's group norm): a unit's score is the norm of all the
/// parameter slices it owns in its group (producer rows, biases, norm parameters, consumer columns).
public enum WeightNorms {
    /// L2 (or L1) norm per unit of `group`.
    public static func unitScores(_ group: PruningGroup, l1: Bool = false) throws -> [Double] {
        var acc = [Double](repeating: 0, count: group.unitCount)
        for sl in group.parameters {
            guard let t = sl.value.constantValue, t.dtype.isFloatingPoint else { continue }
            let w = try t.floats()
            let inner = t.shape[(sl.axis + 1)...].reduce(1, *)
            let n = sl.size
            for (i, x) in w.enumerated() {
                let u = sl.units[(i / inner) % n]
                acc[u] += l1 ? Double(abs(x)) : Double(x) * Double(x)
            }
        }
        return l1 ? acc : acc.map { $0.squareRoot() }
    }
}
