import Foundation
import PruneIR
import PruneKit

/// `magnitude`: the classic baseline. Scores every unit of every pruning group by the norm of its
/// weights (L1 or L2 over all the slices the unit owns: the producing layer's rows, biases, norm
/// parameters and the consuming layer's columns), then gates the lowest-scoring units to zero.
/// Residual blocks (`kinds=blocks`) are scored by the norm of their branch's weights per parameter.
/// Run `fold-masks` afterwards to make the model smaller.
public struct MagnitudePass: Pass {
    public struct Options: PassOptions {
        /// The norm that scores a unit.
        public enum Norm: String, PassOptionEnum { case l1, l2 }
        /// How much to remove, and where.
        public var target = PruningTarget()
        @PassOption("norm", help: "weight norm that scores a unit")
        public var norm: Norm = .l2
        public init() {}
    }

    public static let name = "magnitude"
    public static let summary = "gate the units (channels, heads, neurons, blocks) with the smallest weight norm"

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let analysis = PruningGroups.analyze(model, for: options.target.kinds)
        let groups = analysis.groups(of: options.target.kinds)
        let blocks = options.target.kinds.contains(.blocks) ? analysis.blocks : []
        guard !groups.isEmpty || !blocks.isEmpty else {
            throw PruningError.nothingToPrune(kinds: options.target.kinds, blocked: analysis.blocked.map { ($0.name, $0.blockedReason ?? "") })
        }
        var stats: [String: Double] = ["groups": Double(groups.count)]
        if !groups.isEmpty {
            let key = ScoreCache.key(pass: Self.name, options: options.norm.rawValue, groups: groups)
            let compute = { try groups.map { try WeightNorms.unitScores($0, l1: options.norm == .l1) } }
            let scores = try context.scoreCache.map { try $0.scores(for: key, compute: compute) } ?? compute()
            stats.merge(try UnitSelection.gate(scores: scores, of: groups, in: model, target: options.target)) { $0 + $1 }
        }
        if !blocks.isEmpty {
            let scores = try blocks.map { b in try blockScore(b) }
            let k = Int((options.target.amount * Double(blocks.count)).rounded(.toNearestOrEven))
            guard k < blocks.count else {
                throw SelectionError.emptied(group: "residual blocks", units: blocks.count, amount: options.target.amount)
            }
            let order = scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }
            for i in order.prefix(k) { try Masks.set(0, for: blocks[i], in: model) }
            stats["blocks-removed"] = Double(k)
        }
        return PassResult(changed: true, statistics: stats)
    }

    /// A block's weight norm per parameter (so large and small blocks compare).
    func blockScore(_ b: ResidualBlock) throws -> Double {
        var sum = 0.0, count = 0
        var seen: Set<ObjectIdentifier> = []
        for n in b.branch {
            for case let v? in n.inputs where v.initializer != nil && seen.insert(ObjectIdentifier(v)).inserted {
                guard let t = v.initializer, t.dtype.isFloatingPoint, t.elementCount > 1 else { continue }
                for x in try t.floats() { sum += options.norm == .l1 ? Double(abs(x)) : Double(x) * Double(x) }
                count += t.elementCount
            }
        }
        return count == 0 ? 0 : (options.norm == .l1 ? sum : sum.squareRoot()) / Double(count)
    }
}
