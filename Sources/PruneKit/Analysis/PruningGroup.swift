import PruneIR

/// What the units of a pruning group are.
public enum GroupKind: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    /// Conv filters: output channels of convolutions and everything tied to them (BN, activations,
    /// residual adds, depthwise convs, the next convs' input channels).
    case channels
    /// Attention heads: Q/K/V projection rows, the head axis through Reshape/Transpose, the output
    /// projection's columns, and the shape constants that name the head count.
    case heads
    /// MLP / FFN neurons: up (and gate) projection outputs and the down projection's inputs.
    case neurons
    /// Query heads of grouped-query attention, one unit each: the kv heads stay, and each use of
    /// the repeated keys and values is cut to the kept query heads by a `Gather`. Asked for with
    /// `kinds=query-heads`; `heads` removes whole kv groups (a kv head and its query heads).
    case queryHeads = "query-heads"
    /// Whole residual blocks: `x + f(x)` where `f` can be skipped (see ``ResidualBlock``).
    case blocks

    public var description: String { rawValue }
}

/// One axis of one tensor that a group slices, with the unit each index belongs to.
public struct GroupSlice {
    /// Which tensor: an activation (a node output) or a constant operand of a node.
    public enum Target {
        /// A value computed by the graph; its type's dim on ``GroupSlice/axis`` shrinks.
        case activation(Value)
        /// Input `input` of `node`, a constant (initializer or `Constant`): sliced for this use only,
        /// so a weight shared with another layer is copied, not cut for both. A computed value here
        /// (keys and values repeated for query heads) is cut for this use by a `Gather`.
        case parameter(node: Node, input: Int)
    }

    /// The tensor.
    public let target: Target
    /// The axis that loses indices.
    public let axis: Int
    /// The axis's size before pruning.
    public let size: Int
    /// For each index on ``axis``, the unit of the group it belongs to.
    public let units: [Int]
    /// Whether the tensor is a mask (a gate's tagged initializer, see ``Masks``).
    public let isMask: Bool

    /// The value sliced (for a parameter, the constant the node reads).
    public var value: Value {
        switch target {
        case .activation(let v): return v
        case .parameter(let node, let input): return node.inputs[input]!
        }
    }

    /// The node reading a parameter slice; `nil` for activations.
    public var node: Node? {
        if case .parameter(let n, _) = target { return n }
        return nil
    }

    /// Whether this is a parameter slice.
    public var isParameter: Bool { node != nil }
}

/// A place where a gate can sit: a value whose `axis` has exactly one index per unit present.
public struct GateSite {
    /// The gated value (the gate's `Mul` reads it).
    public let value: Value
    /// The gated axis.
    public let axis: Int
    /// For each index on `axis`, its unit.
    public let units: [Int]
}

/// A set of tensor slices that must be removed together (after DepGraph): removing unit `u`
/// removes, in every slice, the indices whose unit is `u`.
///
/// Groups come from ``PruningGroups/analyze(_:)``. A group whose closure reached something the
/// analysis does not understand (an unknown op, a normalization over the channel axis, a graph
/// output) is kept with a ``blockedReason`` and never pruned.
public final class PruningGroup: CustomStringConvertible {
    /// Position in the analysis (stable for an unchanged model).
    public let id: Int
    /// What the units are.
    public let kind: GroupKind
    /// A readable name: the first layer the group prunes.
    public let name: String
    /// How many units (heads, neurons, channels) the group has.
    public let unitCount: Int
    /// Every sliced axis: activations, parameters and masks.
    public let slices: [GroupSlice]
    /// Where gates go so that a zero gate is the same as removing the unit.
    public let gateSites: [GateSite]
    /// Why the group cannot be pruned, or `nil` when it can.
    public let blockedReason: String?
    /// Parameters each unit holds (elements of the sliced weights, biases and norm parameters).
    public let paramsPerUnit: [Int]
    /// Multiply-accumulates each unit costs (its share of every MAC-bearing node it touches).
    public let macsPerUnit: [Double]
    /// Mask value of each unit when the model already has gates for this group (the smallest
    /// over its gates), else `nil`.
    public let maskValues: [Float]?

    /// For attention groups, how many query heads the units cover: the unit count for ordinary
    /// attention, a multiple of it for grouped-query attention, where a unit is a kv head with the
    /// query heads that read it (`nil` when not known, and for other kinds).
    public let queryHeads: Int?

    /// Whether units are kv groups: several query heads share one key/value head.
    public var unitsAreKVGroups: Bool { (queryHeads ?? 0) > unitCount }

    /// Whether the masks already in the model give different values to indices of one unit (a
    /// kv-group analysis of masks that were set per query head).
    let hasMixedMasks: Bool

    /// Scalar constants that hold the group's unit count (a head count that shape arithmetic
    /// divides by); folding sets them to the units kept.
    let unitCountConstants: [(node: Node, input: Int)]

    init(id: Int, kind: GroupKind, name: String, unitCount: Int, slices: [GroupSlice], gateSites: [GateSite],
         blockedReason: String?, paramsPerUnit: [Int], macsPerUnit: [Double], maskValues: [Float]?, queryHeads: Int? = nil,
         hasMixedMasks: Bool = false, unitCountConstants: [(node: Node, input: Int)] = []) {
        self.unitCountConstants = unitCountConstants
        self.queryHeads = queryHeads
        self.hasMixedMasks = hasMixedMasks
        self.id = id
        self.kind = kind
        self.name = name
        self.unitCount = unitCount
        self.slices = slices
        self.gateSites = gateSites
        self.blockedReason = blockedReason
        self.paramsPerUnit = paramsPerUnit
        self.macsPerUnit = macsPerUnit
        self.maskValues = maskValues
    }

    /// Whether the group may be pruned.
    public var isPrunable: Bool { blockedReason == nil }
    /// The weight, bias and norm slices (masks excluded).
    public var parameters: [GroupSlice] { slices.filter { $0.isParameter && !$0.isMask } }
    /// The mask slices of gates already in the model.
    public var masks: [GroupSlice] { slices.filter(\.isMask) }
    /// The units of each tensor that holds only some of the group's units, each set once
    /// (sorted): one input of a channel `Concat`, or a skip connection that a norm group straddling
    /// the `Concat` ties to the other stream (a UNet's up block). Every set must keep a unit, or
    /// the tensor loses its whole axis and the folded model is invalid.
    public var partialUnitSets: [[Int]] {
        var seen: Set<[Int]> = []
        var sets: [[Int]] = []
        for sl in slices where !sl.isMask {
            let units = Set(sl.units).sorted()
            guard units.count < unitCount, !units.isEmpty, seen.insert(units).inserted else { continue }
            sets.append(units)
        }
        return sets
    }
    /// Parameters of all units.
    public var params: Int { paramsPerUnit.reduce(0, +) }
    /// MACs of all units.
    public var macs: Double { macsPerUnit.reduce(0, +) }

    public var description: String {
        "\(kind) group \(id) '\(name)': \(unitCount) units" + (blockedReason.map { " (blocked: \($0))" } ?? "")
    }
}
