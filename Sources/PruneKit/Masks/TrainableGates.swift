import Foundation
import PruneIR
import PruneRuntime

/// Gates a learning pass can train: the model's groups of the chosen kinds get gates (all ones,
/// so the model computes what it did), and a copy of the model reads every mask as a graph input,
/// so one interpreter runs any gate setting and reverse mode yields `∂loss/∂mask`.
///
/// ```swift
/// let gates = try TrainableGates(model: model, kinds: [.heads, .neurons])
/// let interp = try Interpreter(model: gates.trainingModel)
/// let feeds = gates.feeds(values)            // one value per unit, per group
/// // ... tape.backward(seeds:..., wrt: gates.inputNames) → gates.unitGradients(grads)
/// ```
public final class TrainableGates {
    /// One mask input of the training model.
    public struct MaskInput {
        /// The graph input's name in ``TrainableGates/trainingModel``.
        public let name: String
        /// Index into ``TrainableGates/groups``.
        public let group: Int
        /// The unit of each element.
        public let units: [Int]
        /// The mask's shape.
        public let shape: [Int]
        /// The mask's element type.
        public let dtype: DType
    }

    /// The gated groups (analysed on the gated model; ``Masks/set(_:for:in:)`` takes them).
    public let groups: [PruningGroup]
    /// The gated residual blocks (when `kinds` has `.blocks`), in graph order.
    public let blocks: [ResidualBlock]
    /// The training model's scalar gate input of each block.
    public let blockInputs: [String]
    /// The copy whose masks are graph inputs.
    public let trainingModel: Model
    /// Its mask inputs.
    public let masks: [MaskInput]
    /// The names of ``masks``, for `Tape.backward(seeds:wrt:)`.
    public var inputNames: [String] { masks.map(\.name) }

    /// Gates `model` (in place, all ones) and makes the training copy.
    ///
    /// - Throws: ``PruningError/nothingToPrune(kinds:blocked:)`` when no group of `kinds` (and no
    ///   residual block, for `.blocks`) can be pruned.
    public init(model: Model, kinds: Set<GroupKind>) throws {
        let first = PruningGroups.analyze(model, for: kinds)
        let chosen = first.groups(of: kinds)
        let foundBlocks = kinds.contains(.blocks) ? first.blocks : []
        guard !chosen.isEmpty || !foundBlocks.isEmpty else {
            throw PruningError.nothingToPrune(kinds: kinds, blocked: first.blocked.map { ($0.name, $0.blockedReason ?? "") })
        }
        for g in chosen where g.masks.isEmpty {
            try Masks.set([Float](repeating: 1, count: g.unitCount), for: g, in: model)
        }
        var blockMasks: [String] = []
        for b in foundBlocks {
            try Masks.set(1, for: b, in: model)
            blockMasks.append(b.branchOutput.producer?.inputs[1]?.name ?? "")
        }
        blocks = foundBlocks
        // Re-analyse: the gates are now part of each group; keep the groups that have masks.
        let gated = chosen.isEmpty ? [] : PruningGroups.analyze(model, for: kinds).groups(of: kinds).filter { !$0.masks.isEmpty }
        groups = gated
        let copy = model.copy()
        let names = NameScope(copy.graph)
        func makeInput(_ name: String) throws -> (String, Tensor)? {
            guard let v = copy.graph.initializers.first(where: { $0.name == name }), let t = v.initializer else { return nil }
            let input = Value(name: names.fresh("\(v.name).input"), type: .tensor(t.dtype, Shape(t.shape)))
            copy.graph.addInput(input)
            v.replaceAllUses(with: input)
            try copy.graph.removeInitializer(v)
            return (input.name, t)
        }
        var masks: [MaskInput] = []
        for (gi, g) in gated.enumerated() {
            for m in g.masks {
                guard let (name, t) = try makeInput(m.value.name) else { continue }
                masks.append(MaskInput(name: name, group: gi, units: m.units, shape: t.shape, dtype: t.dtype))
            }
        }
        blockInputs = try blockMasks.map { try makeInput($0)?.0 ?? "" }
        trainingModel = copy
        self.masks = masks
    }

    /// Mask feeds for unit values (`values[group][unit]`) and block gates (`blocks[i]`, default 1).
    public func feeds(_ values: [[Double]], blocks blockValues: [Double]? = nil) -> [String: NDArray] {
        var out: [String: NDArray] = [:]
        for (i, name) in blockInputs.enumerated() {
            let v = blockValues?[i] ?? 1
            out[name] = GateMath.array([v], like: NDArray(zeros: blocks[i].branchOutput.type?.elementType ?? .float, shape: []))
        }
        for m in masks {
            let v = m.units.map { values[m.group][$0] }
            switch m.dtype {
            case .double: out[m.name] = NDArray(v, shape: m.shape)
            case .float16: out[m.name] = NDArray(v.map { Float16($0) }, shape: m.shape)
            default: out[m.name] = NDArray(v.map { Float($0) }, shape: m.shape)
            }
        }
        return out
    }

    /// Feeds with every gate open (the original model).
    public var ones: [String: NDArray] { feeds(groups.map { [Double](repeating: 1, count: $0.unitCount) }) }

    /// `∂loss/∂(unit value)`, summed over the elements and gates of each unit.
    public func unitGradients(_ grads: [String: NDArray]) -> [[Double]] {
        var out = groups.map { [Double](repeating: 0, count: $0.unitCount) }
        for m in masks {
            guard let g = grads[m.name] else { continue }
            for (i, u) in m.units.enumerated() where i < g.count {
                out[m.group][u] += GateMath.element(g, i)
            }
        }
        return out
    }
}

/// Reading and combining latents and gradients (float32 or float64 arrays) in double precision.
public enum GateMath {
    /// Element `i` as a Double.
    public static func element(_ a: NDArray, _ i: Int) -> Double {
        switch a.dtype {
        case .double: return a.buffer(as: Double.self)[i]
        case .float16: return Double(a.buffer(as: Float16.self)[i])
        default: return Double(a.buffer(as: Float.self)[i])
        }
    }

    /// All elements as Doubles.
    public static func values(_ a: NDArray) -> [Double] { (0..<a.count).map { element(a, $0) } }

    /// An array of `a`'s type and shape holding `values`.
    public static func array(_ values: [Double], like a: NDArray) -> NDArray {
        switch a.dtype {
        case .double: return NDArray(values, shape: a.shape)
        case .float16: return NDArray(values.map { Float16($0) }, shape: a.shape)
        default: return NDArray(values.map { Float($0) }, shape: a.shape)
        }
    }

    /// `Σ (a − b)² / n`.
    public static func mse(_ a: [Double], _ b: [Double]) -> Double {
        zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(max(1, a.count))
    }

    /// `‖a − b‖ / ‖b‖`.
    public static func relativeL2(_ a: [Double], _ b: [Double]) -> Double {
        let num = zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        let den = b.reduce(0) { $0 + $1 * $1 }
        return den > 0 ? (num / den).squareRoot() : (num > 0 ? .infinity : 0)
    }
}
