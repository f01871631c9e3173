import Foundation
import PruneIR

/// Masks as ordinary graph nodes: a gate is a `Mul` of a value by a tagged initializer (its name
/// starts with ``namePrefix``) shaped to broadcast along the group's axis. A masked model is valid
/// ONNX and runs anywhere; ``MaskFolding`` turns it into a smaller one with the same outputs.
///
/// Passes set masks through ``set(_:for:in:)`` (one value per unit; 0 removes the unit, 1 keeps
/// it, anything else scales it) and ``set(_:for:in:)-(Float,ResidualBlock,Model)`` for blocks.
public enum Masks {
    /// The name prefix that tags a mask initializer.
    public static let namePrefix = "prunec.mask."

    /// Whether `value` is a mask initializer.
    public static func isMask(_ value: Value) -> Bool {
        value.initializer != nil && value.name.hasPrefix(namePrefix)
    }

    /// The name prefix that tags a reference copy: `prunec.reference.W` holds the tensor the
    /// initializer `W` had in the model the masks were set on, before a pass re-fitted it.
    public static let referencePrefix = "prunec.reference."

    /// Records that the initializer named `name` held `tensor` in the unmasked model, before a pass
    /// changes it to compensate for the masks (`reconstruct` re-fitting a layer, `ecodiff` folding
    /// the means of closed units). ``ActivationProbe/unmasked(_:)`` puts the recorded tensors back,
    /// so a later `reconstruct` fits toward the model the user gave rather than toward an earlier
    /// compensation. The first record for a name wins. Nothing reads the copy: `fold-masks` (its
    /// dead-code step) and `dce` drop it with the masks.
    public static func keepReference(_ tensor: Tensor, for name: String, in graph: Graph) {
        let key = referencePrefix + name
        guard !graph.initializers.contains(where: { $0.name == key }) else { return }
        graph.addInitializer(tensor, name: key)
    }

    /// The tensors recorded by ``keepReference(_:for:in:)``, by the name of the initializer each
    /// stands for.
    public static func references(in graph: Graph) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for r in graph.initializers where r.name.hasPrefix(referencePrefix) {
            if let t = r.initializer { out[String(r.name.dropFirst(referencePrefix.count))] = t }
        }
        return out
    }

    /// Puts back every tensor recorded by ``keepReference(_:for:in:)`` whose initializer still has
    /// the recorded shape (a fold since then makes the record moot).
    public static func restoreReferences(in graph: Graph) {
        let recorded = references(in: graph)
        for v in graph.initializers {
            guard let t = recorded[v.name], let now = v.initializer, now.shape == t.shape, now.dtype == t.dtype else { continue }
            graph.setInitializer(v, to: t)
        }
    }

    /// A mask of ones like `mask` (its shape and element type): the gate that keeps every unit.
    public static func ones(like mask: Tensor) -> Tensor? {
        try? tensor([Float](repeating: 1, count: mask.elementCount), like: mask.dtype, shape: mask.shape, for: mask.name)
    }

    /// Sets the gates of `group` to `values`, one per unit: updates the masks the group already
    /// has, or inserts a gate at each of its gate sites.
    ///
    /// - Throws: ``MaskError`` when the count is wrong, the group is blocked, or a gated value is
    ///   not floating point.
    public static func set(_ values: [Float], for group: PruningGroup, in model: Model) throws {
        guard values.count == group.unitCount else { throw MaskError.wrongCount(group: group.name, expected: group.unitCount, got: values.count) }
        guard group.isPrunable else { throw MaskError.blocked(group: group.name, reason: group.blockedReason ?? "") }
        let graph = model.graph
        let existing = group.masks
        if !existing.isEmpty {
            for m in existing {
                guard let old = m.value.initializer else { continue }
                let data = m.units.map { values[$0] }
                graph.setInitializer(m.value, to: try tensor(data, like: old.dtype, shape: old.shape, for: m.value.name))
            }
            return
        }
        let names = NameScope(graph)
        for site in group.gateSites {
            let v = site.value
            guard let rank = v.type?.shape?.rank, let dtype = v.type?.elementType else {
                throw MaskError.untyped(value: v.name)
            }
            let shape = [site.units.count] + [Int](repeating: 1, count: rank - 1 - site.axis)
            let mask = graph.addInitializer(
                try tensor(site.units.map { values[$0] }, like: dtype, shape: shape, for: v.name),
                name: names.fresh("\(namePrefix)\(group.kind).\(group.id)"))
            try insertGate(on: v, mask: mask, in: graph, names: names)
        }
    }

    /// Sets the gate of a residual block: 0 skips the branch, 1 keeps it.
    public static func set(_ value: Float, for block: ResidualBlock, in model: Model) throws {
        let graph = model.graph
        let y = block.branchOutput
        if let p = y.producer, p.opType == .mul, p.inputs.count == 2, let m = p.inputs[1], isMask(m), let old = m.initializer,
            old.elementCount == 1
        {
            graph.setInitializer(m, to: try tensor([value], like: old.dtype, shape: old.shape, for: m.name))
            return
        }
        guard let dtype = y.type?.elementType else { throw MaskError.untyped(value: y.name) }
        let names = NameScope(graph)
        let mask = graph.addInitializer(try tensor([value], like: dtype, shape: [], for: y.name), name: names.fresh("\(namePrefix)block"))
        try insertGate(on: y, mask: mask, in: graph, names: names)
    }

    /// `Mul(v, mask)` right after `v`'s producer; every reader of `v` then reads the product.
    static func insertGate(on v: Value, mask: Value, in graph: Graph, names: NameScope) throws {
        guard let producer = v.producer else { throw MaskError.untyped(value: v.name) }
        let readers = v.uses
        let gate = Node(.mul, name: names.fresh("prunec.gate"), inputs: [v, mask], outputs: [names.fresh("\(v.name).gated")])
        gate.outputs[0].type = v.type
        try graph.insert(gate, after: producer)
        for use in readers { use.node.setInput(gate.outputs[0], at: use.inputIndex) }
    }

    /// `values` as a tensor of a floating-point element type (a mask of the gated value's type, a
    /// re-fitted weight of an fp16 or bf16 model): rounded to nearest.
    ///
    /// - Throws: ``MaskError/notFloatingPoint(value:dtype:)`` for other element types (`name` names
    ///   the value in the message).
    public static func tensor(_ values: [Float], like dtype: DType, shape: [Int], for name: String) throws -> Tensor {
        switch dtype {
        case .float: return Tensor(floats: values, shape: shape)
        case .double:
            return Tensor(dtype: .double, shape: shape, bytes: values.map(Double.init).withUnsafeBytes { Data($0) })
        case .float16:
            return Tensor(dtype: .float16, shape: shape, bytes: values.map { Float16($0) }.withUnsafeBytes { Data($0) })
        case .bfloat16:
            // bfloat16 is the top half of a float32 (round to nearest even).
            let bits = values.map { v -> UInt16 in
                let b = v.bitPattern
                return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
            }
            return Tensor(dtype: .bfloat16, shape: shape, bytes: bits.withUnsafeBytes { Data($0) })
        default:
            throw MaskError.notFloatingPoint(value: name, dtype: dtype)
        }
    }
}

/// Why a mask could not be set.
public enum MaskError: Error, CustomStringConvertible {
    case wrongCount(group: String, expected: Int, got: Int)
    case blocked(group: String, reason: String)
    case untyped(value: String)
    case notFloatingPoint(value: String, dtype: DType)

    public var description: String {
        switch self {
        case .wrongCount(let g, let e, let n): return "group '\(g)' has \(e) units, got \(n) mask values"
        case .blocked(let g, let r): return "group '\(g)' cannot be pruned: \(r)"
        case .untyped(let v): return "value '\(v)' has no known type or producer, so it cannot be gated"
        case .notFloatingPoint(let v, let d): return "value '\(v)' is \(d); gates need floating-point values"
        }
    }
}
