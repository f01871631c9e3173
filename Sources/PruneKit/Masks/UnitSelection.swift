import PruneIR

/// How much a pruning pass removes: the options every scoring pass shares (declare a
/// `public var target = PruningTarget()` in a pass's ``PassOptions`` to take them all).
public struct PruningTarget: PassOptionGroup, Equatable {
    /// What the amount measures.
    public enum Measure: String, Sendable {
        /// A fraction of each group's units (or of all units, ranked globally).
        case sparsity
        /// A fraction of the model's parameters.
        case params
        /// A fraction of the model's MACs.
        case flops
    }

    /// Where units are ranked against each other.
    public enum Scope: String, PassOptionEnum {
        /// `layer` for a sparsity target, `global` for params and flops.
        case auto
        /// Every group loses the same fraction.
        case layer
        /// Units of all groups are ranked together.
        case global
    }

    @PassOption("sparsity", .fraction, help: "fraction of each group's units to remove (ignored when params or flops is set)")
    public var sparsity = 0.3
    @PassOption("params", .fraction, help: "fraction of the model's parameters to remove (0 = off; ranked globally unless scope=layer)")
    public var params = 0.0
    @PassOption("flops", .fraction, help: "fraction of the model's MACs to remove (0 = off; ranked globally unless scope=layer)")
    public var flops = 0.0
    @PassOption("scope", help: "layer: every group loses the same fraction; global: rank units across groups; auto: layer for sparsity, global for params/flops")
    public var scope: Scope = .auto
    /// Most of one group that may go, as a fraction of its units.
    @PassOption("max-per-group", .fraction, help: "largest fraction of one group that may be removed")
    public var maxPerGroup = 0.9
    /// Fewest units any group keeps (at least 1: an emptied group is a removed branch, which is
    /// `kinds=blocks`' job).
    @PassOption("min-keep", .between(1, 1_000_000), help: "fewest units a group keeps (a floor per layer: 1 never empties a layer's heads)",
                hint: "to drop a whole branch, use kinds=blocks")
    public var minKeep = 1
    /// Which kinds of groups are pruned.
    @PassOption("kinds", help: "groups to prune, joined by '+': channels, heads, neurons, blocks; 'all' = channels+heads+neurons")
    public var kinds: Set<GroupKind> = [.channels, .heads, .neurons]
    /// Kept channel and neuron counts are rounded to a multiple of this (1 = off): runtimes block
    /// channels by 8 or 16, and 45 kept channels can run slower than 48.
    @PassOption("round-to", .between(1, 4096), help: "keep a multiple of this many channels/neurons per group (16 suits AVX-512 runtimes; heads are not rounded)")
    public var roundTo = 1

    /// The defaults: 30% of each group's units.
    public init() {}

    /// A target given in code.
    public init(measure: Measure, amount: Double, global: Bool = true, maxPerGroup: Double = 0.9, minKeep: Int = 1,
                kinds: Set<GroupKind> = [.channels, .heads, .neurons], roundTo: Int = 1) {
        switch measure {
        case .sparsity: sparsity = amount
        case .params: params = amount
        case .flops: flops = amount
        }
        scope = global ? .global : .layer
        self.maxPerGroup = maxPerGroup
        self.minKeep = max(1, minKeep)
        self.kinds = kinds
        self.roundTo = roundTo
    }

    /// What is counted: params or flops when set, else sparsity.
    public var measure: Measure { params > 0 ? .params : flops > 0 ? .flops : .sparsity }

    /// The fraction to remove, in [0, 1).
    public var amount: Double {
        switch measure {
        case .sparsity: return sparsity
        case .params: return params
        case .flops: return flops
        }
    }

    /// Rank all groups together (`true`) or prune each group by the same fraction.
    public var global: Bool {
        switch scope {
        case .global: return true
        case .layer: return false
        case .auto: return measure != .sparsity
        }
    }

    /// Refuses two targets at once and an amount that would remove everything.
    public func validate() throws {
        guard params == 0 || flops == 0 else { throw OptionError(key: "flops", message: "cannot be combined with params: set one target") }
        guard amount < 1 else {
            throw OptionError(key: measure.rawValue, message: "would remove everything: use a fraction below 1 (100%)")
        }
    }
}

/// Turns unit scores into keep/remove decisions for a ``PruningTarget``.
public enum UnitSelection {
    /// Scores per removed parameter (or per MAC, for a `flops` target), as passes rank them when a
    /// head (dozens of neurons' parameters) and a neuron must compete on what each parameter costs.
    /// A unit of no cost keeps its score.
    public static func perCost(_ scores: [[Double]], of groups: [PruningGroup], measure: PruningTarget.Measure) -> [[Double]] {
        zip(scores, groups).map { s, group in
            s.indices.map { u in
                let cost = measure == .flops ? group.macsPerUnit[u] : Double(group.paramsPerUnit[u])
                return cost > 0 ? s[u] / cost : s[u]
            }
        }
    }

    /// A unit to rank: group `group`, unit `unit`, with its score (higher = more important) and cost.
    public struct Candidate: Sendable {
        /// Index of the unit's group (in the `unitCounts` passed to ``UnitSelection/select(unitCounts:names:candidates:target:totalParams:totalMACs:roundable:normalize:)``).
        public var group: Int
        /// The unit within its group.
        public var unit: Int
        /// Importance: higher is kept longer.
        public var score: Double
        /// Parameters the unit holds (what `params=` targets count).
        public var params: Double
        /// MACs the unit costs (what `flops=` targets count).
        public var macs: Double

        /// A candidate.
        public init(group: Int, unit: Int, score: Double, params: Double, macs: Double) {
            self.group = group
            self.unit = unit
            self.score = score
            self.params = params
            self.macs = macs
        }
    }

    /// Keep flags per group (parallel to `unitCounts`), removing the least important units.
    ///
    /// Per-group (`target.global == false`): each group loses `round(f × units)` units, with
    /// f = `amount` for a sparsity target and, for a params or MACs target, the one fraction (found
    /// by bisection) at which the removed params or MACs reach the target.
    /// Global: scores are divided by their group's mean (so layers of different scale compare),
    /// then the lowest go first until the target is met.
    /// Either way a group never loses more than `maxPerGroup` of its units, and keeps `minKeep`.
    ///
    /// - Parameter totals: The model's params and MACs (the base of `params=` and `flops=`).
    /// - Throws: ``SelectionError`` when a group would be emptied or the target cannot be reached.
    /// - Parameters:
    ///   - roundable: Per group, whether ``PruningTarget/roundTo`` applies (not to heads).
    ///   - normalize: Divide scores by their group's mean before global ranking (weight norms of
    ///     layers of different scale); off for scores that already compare (learned log α).
    ///   - keepOneOf: Per group, unit sets of which each keeps at least one unit (a group's
    ///     ``PruningGroup/partialUnitSets``): where the ranking removes a whole set, its best unit
    ///     stays and the worst kept unit that no set needs goes instead.
    public static func select(unitCounts: [Int], names: [String], candidates: [Candidate], target: PruningTarget,
                              totalParams: Int, totalMACs: Int, roundable: [Bool]? = nil, normalize: Bool = true,
                              keepOneOf: [[[Int]]]? = nil) throws -> [[Bool]] {
        var keep = try rank(unitCounts: unitCounts, names: names, candidates: candidates, target: target,
                            totalParams: totalParams, totalMACs: totalMACs, normalize: normalize)
        if target.roundTo > 1 { round(&keep, unitCounts: unitCounts, candidates: candidates, target: target, roundable: roundable) }
        if let keepOneOf { keepOne(of: keepOneOf, in: &keep, candidates: candidates) }
        return keep
    }

    /// Kept channel and neuron counts to a multiple of ``PruningTarget/roundTo`` per roundable group.
    static func round(_ keep: inout [[Bool]], unitCounts: [Int], candidates: [Candidate], target: PruningTarget, roundable: [Bool]?) {
        var byGroup = [[Candidate]](repeating: [], count: unitCounts.count)
        for c in candidates { byGroup[c.group].append(c) }
        for g in keep.indices where roundable?[g] ?? true {
            let n = unitCounts[g], r = target.roundTo
            guard n > r else { continue }
            let kept = keep[g].filter { $0 }.count
            let want = min(n, max(r, Int((Double(kept) / Double(r)).rounded()) * r))
            // Re-admit the best removed units, or remove the worst kept ones, to reach `want`.
            let order = byGroup[g].sorted { ($0.score, $0.unit) > ($1.score, $1.unit) }.map(\.unit)
            keep[g] = [Bool](repeating: false, count: n)
            for u in order.prefix(want) { keep[g][u] = true }
        }
    }

    /// `keep` with one unit of every set in `sets[g]` kept (see ``keepOne(of:in:candidates:)``),
    /// for a pass that decides keep flags itself (a threshold): `scores[g][u]`, higher = better.
    public static func keepingOne(of sets: [[[Int]]], in keep: [[Bool]], scores: [[Double]]) -> [[Bool]] {
        var keep = keep
        let candidates = scores.enumerated().flatMap { g, s in s.enumerated().map { Candidate(group: g, unit: $0, score: $1, params: 0, macs: 0) } }
        keepOne(of: sets, in: &keep, candidates: candidates)
        return keep
    }

    /// Re-admits the best unit of every set in `sets[g]` that `keep[g]` empties, and removes in
    /// exchange the worst kept unit whose removal empties no set (if there is one), so the count
    /// removed stays what the target asked.
    static func keepOne(of sets: [[[Int]]], in keep: inout [[Bool]], candidates: [Candidate]) {
        var score: [[Double]] = keep.map { [Double](repeating: 0, count: $0.count) }
        for c in candidates where c.group < score.count && c.unit < score[c.group].count { score[c.group][c.unit] = c.score }
        for g in keep.indices where g < sets.count {
            let units = keep[g].count
            let groupSets = sets[g].map { $0.filter { $0 < units } }.filter { !$0.isEmpty }
            for set in groupSets where !set.contains(where: { keep[g][$0] }) {
                guard let best = set.max(by: { (score[g][$0], $0) < (score[g][$1], $1) }) else { continue }
                keep[g][best] = true
                // A kept unit that can go: every set it is in keeps another unit.
                let spare = (0 ..< units).filter { u in
                    keep[g][u] && u != best && groupSets.allSatisfy { s in !s.contains(u) || s.contains { $0 != u && keep[g][$0] } }
                }
                if let worst = spare.min(by: { (score[g][$0], $0) < (score[g][$1], $1) }) { keep[g][worst] = false }
            }
        }
    }

    /// Scores in, masks out: ranks `scores[g][u]` (higher = more important) of `groups` to
    /// `target` with ``select(unitCounts:names:candidates:target:totalParams:totalMACs:roundable:normalize:)``
    /// (heads are not rounded) and gates the removed units with ``Masks/set(_:for:in:)``.
    ///
    /// - Returns: `<kind>-removed` counts for the pass's statistics.
    /// - Throws: ``SelectionError`` when the target cannot be met; mask errors.
    public static func gate(scores: [[Double]], of groups: [PruningGroup], in model: Model, target: PruningTarget,
                            normalize: Bool = true) throws -> [String: Double] {
        var candidates: [Candidate] = []
        for (g, group) in groups.enumerated() {
            for u in 0 ..< group.unitCount {
                candidates.append(.init(group: g, unit: u, score: scores[g][u], params: Double(group.paramsPerUnit[u]), macs: group.macsPerUnit[u]))
            }
        }
        let keep = try select(unitCounts: groups.map(\.unitCount), names: groups.map(\.name), candidates: candidates, target: target,
                              totalParams: CostModel.parameterCount(model), totalMACs: CostModel().totalMACs(model) ?? 0,
                              roundable: groups.map { $0.kind != .heads }, normalize: normalize,
                              keepOneOf: groups.map(\.partialUnitSets))
        var removed: [String: Double] = [:]
        for (g, k) in zip(groups, keep) {
            let n = k.filter { !$0 }.count
            removed["\(g.kind)-removed", default: 0] += Double(n)
            if n > 0 { try Masks.set(k.map { $0 ? 1 : 0 }, for: g, in: model) }
        }
        return removed
    }

    static func rank(unitCounts: [Int], names: [String], candidates: [Candidate], target: PruningTarget,
                     totalParams: Int, totalMACs: Int, normalize: Bool) throws -> [[Bool]] {
        var keep = unitCounts.map { [Bool](repeating: true, count: $0) }
        var byGroup = [[Candidate]](repeating: [], count: unitCounts.count)
        for c in candidates { byGroup[c.group].append(c) }
        if !target.global {
            let sorted = byGroup.map { $0.sorted(by: { ($0.score, $0.unit) < ($1.score, $1.unit) }) }
            // The units each group loses at fraction f, within its floor and cap.
            func removals(_ f: Double, strict: Bool) throws -> [Int] {
                try unitCounts.indices.map { g in
                    let n = unitCounts[g]
                    let k = Int((f * Double(n)).rounded(.toNearestOrEven))
                    if strict, k > n - target.minKeep {
                        throw SelectionError.emptied(group: names[g], units: n, amount: f)
                    }
                    return min(k, n - target.minKeep, Int((target.maxPerGroup * Double(n)).rounded(.down)))
                }
            }
            var fraction = target.amount
            if target.measure != .sparsity {
                // The one fraction for every group that meets the params/MACs target (bisection).
                let goal = target.amount * Double(target.measure == .params ? totalParams : totalMACs)
                func cost(_ ks: [Int]) -> Double {
                    zip(sorted, ks).reduce(0) { acc, e in
                        acc + e.0.prefix(e.1).reduce(0) { $0 + (target.measure == .params ? $1.params : $1.macs) }
                    }
                }
                var lo = 0.0, hi = 1.0
                guard cost(try removals(hi, strict: false)) >= goal * 0.999 else {
                    throw SelectionError.unreachable(measure: target.measure, amount: target.amount,
                                                     reached: cost(try removals(hi, strict: false)) / max(goal, 1) * target.amount)
                }
                for _ in 0 ..< 50 {
                    let mid = (lo + hi) / 2
                    if cost(try removals(mid, strict: false)) >= goal { hi = mid } else { lo = mid }
                }
                fraction = hi
            }
            for (g, k) in try removals(fraction, strict: target.measure == .sparsity).enumerated() {
                for c in sorted[g].prefix(k) { keep[g][c.unit] = false }
            }
            return keep
        }
        var normalized: [Candidate] = []
        for cs in byGroup where !cs.isEmpty {
            let mean = cs.map(\.score).reduce(0, +) / Double(cs.count)
            normalized += cs.map { var c = $0; c.score = normalize && mean > 0 ? c.score / mean : c.score; return c }
        }
        normalized.sort { ($0.score, $0.group, $0.unit) < ($1.score, $1.group, $1.unit) }
        var removedInGroup = [Int](repeating: 0, count: unitCounts.count)
        let goal: Double
        switch target.measure {
        case .sparsity: goal = (target.amount * Double(unitCounts.reduce(0, +))).rounded()
        case .params: goal = target.amount * Double(totalParams)
        case .flops: goal = target.amount * Double(totalMACs)
        }
        var done = 0.0
        for c in normalized where done < goal {
            let n = unitCounts[c.group]
            let cap = min(n - target.minKeep, Int((target.maxPerGroup * Double(n)).rounded(.down)))
            guard removedInGroup[c.group] < cap else { continue }
            keep[c.group][c.unit] = false
            removedInGroup[c.group] += 1
            switch target.measure {
            case .sparsity: done += 1
            case .params: done += c.params
            case .flops: done += c.macs
            }
        }
        if done < goal * 0.999 {
            throw SelectionError.unreachable(measure: target.measure, amount: target.amount, reached: goal > 0 ? done / goal * target.amount : 0)
        }
        return keep
    }
}

/// Why a target could not be met.
public enum SelectionError: Error, CustomStringConvertible {
    case emptied(group: String, units: Int, amount: Double)
    case unreachable(measure: PruningTarget.Measure, amount: Double, reached: Double)

    public var description: String {
        switch self {
        case .emptied(let g, let n, let a):
            return "sparsity \(Int((a * 100).rounded()))% would remove all \(n) units of group '\(g)'; use a smaller sparsity"
        case .unreachable(let m, let a, let r):
            return String(format: "%@=%.0f%% cannot be reached: the prunable groups allow at most %.1f%% (raise max-per-group or add kinds)",
                          m.rawValue, a * 100, r * 100)
        }
    }
}

extension Set: PassOptionValue where Element == GroupKind {
    public static var optionKind: OptionKind { .words(GroupKind.allCases.map(\.rawValue) + ["all"]) }
    public init?(optionText: String) {
        guard let kinds = try? GroupKind.parse(optionText, allowing: Set(GroupKind.allCases)), !kinds.isEmpty else { return nil }
        self = kinds
    }
    /// The unknown word, named with the kinds there are.
    public static func optionError(_ text: String) -> String? {
        do {
            _ = try GroupKind.parse(text, allowing: Set(GroupKind.allCases))
            return nil
        } catch let e as OptionError {
            return e.message
        } catch {
            return nil
        }
    }
    /// The kinds in declaration order, joined by `+`.
    public var optionText: String { GroupKind.allCases.filter(contains).map(\.rawValue).joined(separator: "+") }
}

extension GroupKind {
    /// A `check:` for a `kinds` option that accepts only `allowed`.
    public static func only(_ allowed: Set<GroupKind>) -> @Sendable (Set<GroupKind>) -> String? {
        { kinds in
            let extra = kinds.subtracting(allowed)
            guard !extra.isEmpty else { return nil }
            let names = allCases.filter { allowed.contains($0) }.map(\.rawValue) + ["all"]
            return "has a kind this pass cannot gate, '\(extra.optionText)' (kinds: \(names.joined(separator: ", ")))"
        }
    }

    /// The kinds of a `kinds=` option: words joined by `+`; `all` is channels+heads+neurons.
    ///
    /// - Throws: ``OptionError`` for a word that is not a kind in `allowing`.
    public static func parse(_ text: String, allowing allowed: Set<GroupKind>) throws -> Set<GroupKind> {
        var kinds: Set<GroupKind> = []
        for w in text.split(separator: "+").map(String.init) {
            if w == "all" {
                kinds.formUnion(Set([.channels, .heads, .neurons]).intersection(allowed))
            } else if let k = GroupKind(rawValue: w), allowed.contains(k) {
                kinds.insert(k)
            } else {
                let names = allCases.filter { allowed.contains($0) }.map(\.rawValue) + ["all"]
                throw OptionError(key: "kinds", message: "has an unknown kind '\(w)' (kinds: \(names.joined(separator: ", ")))")
            }
        }
        return kinds
    }
}
