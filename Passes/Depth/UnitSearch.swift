import Foundation
import PruneKit

/// How `depth` picks the units to remove from measurements of the model with units skipped.
///
/// - `oneShot`: every candidate is scored alone and the cheapest are taken.
/// - `greedy`: one unit a round; each round re-scores candidates with the units already chosen
///   skipped, so two units that are harmless alone but harmful together are not both taken.
///   Round 1 scores every candidate; later rounds only the `shortlist` with the best costs known
///   (a unit's cost only grows as others go, in practice, so the stale costs of the rest are
///   optimistic: a unit that was cheap long ago is re-scored before it can be passed over).
///
/// A unit's cost is its harm: how much the measure rises when it is skipped (for perplexity, the
/// rise of its log, the cross-entropy, so that costs taken at different perplexities compare). With
/// a parameter target the cost is per removed parameter (harm ÷ params), as in a knapsack: a small
/// attention block and a large MLP block compete for the same budget on what each parameter costs.
/// The target is met by the unit count that lands closest: a unit is taken only when it brings
/// the removed parameters closer to the target than they are without it.
struct UnitSearch {
    /// What to remove: a number of units, or a number of parameters.
    enum Target {
        case units(Int)
        case params(Double)
    }

    let units: [DepthUnit]
    /// The units that may be removed (indices into ``units``).
    let candidates: [Int]
    let blockCount: Int
    let target: Target
    /// Costs are differences of logs of the measure (perplexity), else of the measure itself.
    let logScale: Bool
    /// With a parameter target, order by cost per parameter (not for `last` and `random`).
    let perParameter: Bool
    let context: PassContext
    /// The measure with the blocks whose entry is 0 skipped: lower is better.
    let measure: ([Double]) throws -> Double
    /// Makes later measurements start from the runs with these blocks skipped (greedy rounds).
    var rebase: (([Double]) throws -> Void)?

    init(units: [DepthUnit], candidates: [Int], blockCount: Int, target: Target, logScale: Bool, perParameter: Bool,
         context: PassContext, measure: @escaping ([Double]) throws -> Double) {
        self.units = units
        self.candidates = candidates
        self.blockCount = blockCount
        self.target = target
        self.logScale = logScale
        self.perParameter = perParameter
        self.context = context
        self.measure = measure
    }

    /// The skip vector (0: skipped) of a set of units.
    func skipping(_ set: [Int]) -> [Double] {
        var s = [Double](repeating: 1, count: blockCount)
        for u in set { for b in units[u].blocks { s[b] = 0 } }
        return s
    }

    /// How much worse `score` is than `reference`.
    func harm(_ score: Double, from reference: Double) -> Double {
        logScale ? Foundation.log(score) - Foundation.log(reference) : score - reference
    }

    /// The cost that orders unit `u` with harm (or score) `h`.
    func cost(_ h: Double, of u: Int) -> Double {
        if case .params = target, perParameter { return h / Double(max(units[u].params, 1)) }
        return h
    }

    /// Whether taking unit `u` after `removed` parameters (or `taken` units) moves toward the target.
    func fits(_ u: Int, removed: Int, taken: Int) -> Bool {
        switch target {
        case .units(let k): return taken < k
        case .params(let t): return Double(units[u].params) < 2 * (t - Double(removed))
        }
    }

    /// Every candidate's measure with it alone skipped.
    func scoreAlone() throws -> [Int: Double] {
        var scores: [Int: Double] = [:]
        let began = Date()
        for (k, u) in candidates.enumerated() {
            let s = try measure(skipping([u]))
            scores[u] = s
            context.progress(PassProgress(pass: "depth", step: k + 1, total: candidates.count, elapsed: Date().timeIntervalSince(began),
                                          detail: "'\(units[u].name)' alone skipped: \(String(format: "%.4g", s))"))
        }
        return scores
    }

    /// The units with the lowest costs from scores of each alone: `harms` when the scores are
    /// measures (costs are then harms from `reference`), else the scores themselves order them.
    func oneShot(scores: [Int: Double], reference: Double, harms: Bool) -> [Int] {
        let costs = Dictionary(uniqueKeysWithValues: candidates.map { u in
            (u, cost(harms ? harm(scores[u] ?? .infinity, from: reference) : scores[u] ?? .infinity, of: u))
        })
        var chosen: [Int] = [], removed = 0
        for u in candidates.sorted(by: { (costs[$0]!, $0) < (costs[$1]!, $1) }) where fits(u, removed: removed, taken: chosen.count) {
            chosen.append(u)
            removed += units[u].params
        }
        return chosen
    }

    /// One unit a round, each chosen with the earlier ones skipped; `shortlist` candidates are
    /// re-scored after round 1.
    func greedy(shortlist: Int) throws -> [Int] {
        var chosen: [Int] = [], removed = 0
        var reference = try measure(skipping([]))
        let start = reference
        var costs: [Int: Double] = [:]
        var round = 0
        while true {
            let open = candidates.filter { u in !chosen.contains(u) && fits(u, removed: removed, taken: chosen.count) }
            guard !open.isEmpty else { break }
            round += 1
            let scored = round == 1 ? open : Array(open.sorted { (costs[$0] ?? -.infinity, $0) < (costs[$1] ?? -.infinity, $1) }.prefix(shortlist))
            let began = Date()
            var scores: [Int: Double] = [:]
            for (k, u) in scored.enumerated() {
                let s = try measure(skipping(chosen + [u]))
                scores[u] = s
                costs[u] = cost(harm(s, from: reference), of: u)
                context.logger.debug("depth: round \(round): unit \(u) '\(units[u].name)' scored \(s), cost \(costs[u]!) (\(k + 1)/\(scored.count))")
                context.progress(PassProgress(pass: "depth round \(round)", step: k + 1, total: scored.count,
                                              elapsed: Date().timeIntervalSince(began),
                                              detail: "'\(units[u].name)' without it: \(String(format: "%.4g", s))"))
            }
            guard let best = scored.min(by: { (costs[$0]!, $0) < (costs[$1]!, $1) }), let s = scores[best] else { break }
            chosen.append(best)
            removed += units[best].params
            reference = s
            costs[best] = nil
            let progress: String
            switch target {
            case .units(let k): progress = "\(chosen.count) of \(k) units"
            case .params(let t): progress = "\(removed) of \(Int(t)) parameters"
            }
            context.logger.info("depth: greedy round \(round) removes '\(units[best].name)' (\(units[best].params) params): \(String(format: "%.4g", start)) → \(String(format: "%.4g", s)); \(progress); \(scored.count) scored in \(String(format: "%.0f", Date().timeIntervalSince(began))) s")
            try rebase?(skipping(chosen))
        }
        return chosen
    }
}
