import Foundation
import FluctuationPasses
import PruneIR
import PruneKit
import PruneRuntime

/// Starting log α for ecodiff's gates from a cheap one-shot score, so that training starts where
/// the score would cut and spends its steps on the units near that cut.
///
/// Gates all starting at log α = 3 sample to 1 almost always and give the fit no gradient; a
/// score puts each unit in its sensitive range instead. The units are ranked by fluctuation's
/// score per parameter (``FluctuationPass/unitScores(_:in:sets:metric:context:probed:)``), the
/// parameter-weighted quantile at the target sparsity is the cut, and each unit starts at
/// `spread · z`, z its log-score distance from the cut in standard deviations, clipped to ±`limit`:
/// the units the score would remove start closed (log α < 0), the others open.
enum GatePrior {
    /// log α per group and unit, or `nil` when the score cannot be computed (no layer reads the
    /// units, or the calibration inputs do not run the model); `why` then says what happened.
    static func logAlpha(gates: TrainableGates, model: Model, sets: [[String: NDArray]], sparsity: Double,
                         spread: Double, limit: Double, context: PassContext) -> (values: [[Double]]?, why: String) {
        guard !sets.isEmpty else { return (nil, "no calibration data") }
        var probed = 0
        let scores: [[Double]]
        do {
            scores = try FluctuationPass.unitScores(gates.groups, in: model, sets: sets, metric: .fluctuation, context: context, probed: &probed)
        } catch {
            return (nil, "the fluctuation score failed: \(error)")
        }
        guard probed > 0 else { return (nil, "no layer reads the gated units") }
        let params = gates.groups.map { $0.paramsPerUnit.map(Double.init) }
        // log of the score per parameter; units no layer reads (score 0) rank lowest.
        var flat: [(value: Double, params: Double)] = []
        let logs = zip(scores, params).map { s, p in
            zip(s, p).map { v, w in Foundation.log(max(v / max(w, 1), 1e-30)) }
        }
        for (l, p) in zip(logs, params) { for (v, w) in zip(l, p) { flat.append((v, w)) } }
        guard flat.count > 1 else { return (nil, "a single unit") }
        let cut = Self.cut(flat.map { ($0.value, $0.params) }, removing: sparsity)?.removed ?? 0
        let mean = flat.reduce(0) { $0 + $1.value } / Double(flat.count)
        let sd = max((flat.reduce(0) { $0 + ($1.value - mean) * ($1.value - mean) } / Double(flat.count)).squareRoot(), 1e-12)
        let values = logs.map { l in l.map { min(limit, max(-limit, spread * ($0 - cut) / sd)) } }
        return (values, "fluctuation scores of \(probed) layers")
    }

    /// Where removing the lowest `(value, weight)` entries until `fraction` of the weight is gone
    /// stops: the value of the last entry removed and of the first kept (`nil` when none is
    /// kept); `nil` for no entries.
    static func cut(_ entries: [(value: Double, weight: Double)], removing fraction: Double) -> (removed: Double, kept: Double?)? {
        let total = entries.reduce(0) { $0 + $1.weight }
        let sorted = entries.sorted { $0.value < $1.value }
        var acc = 0.0
        for (i, e) in sorted.enumerated() {
            acc += e.weight
            if acc >= fraction * total { return (e.value, i + 1 < sorted.count ? sorted[i + 1].value : nil) }
        }
        return sorted.last.map { ($0.value, nil) }
    }
}
