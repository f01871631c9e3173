import PruneIR

/// What a vector-Jacobian product sees of one recorded node: its inputs and outputs as computed
/// in the forward run, which inputs need a gradient, and the kernel context (arena, threads).
public struct GradientContext {
    /// The node.
    public let node: Node
    /// The opset of the node's domain in this model.
    public let opset: Int
    /// The forward inputs (nil for omitted optional inputs).
    public let inputs: [NDArray?]
    /// The forward outputs.
    public let outputs: [NDArray?]
    /// For each input, whether its gradient is wanted (skip the work for the others).
    public let needs: [Bool]
    /// Arena memory and parallel loops.
    public let kernel: KernelContext

    /// An attribute of the node, or `defaultValue` when absent.
    public func attribute<T: AttributeReadable>(_ name: String, default defaultValue: T) throws -> T {
        try node.attribute(name, as: T.self) ?? defaultValue
    }

    /// An attribute of the node, or `nil` when absent.
    public func attribute<T: AttributeReadable>(_ name: String, as type: T.Type = T.self) throws -> T? {
        try node.attribute(name, as: T.self)
    }

    /// Input `i`, or a ``KernelError`` naming it.
    public func input(_ i: Int) throws -> NDArray {
        guard i < inputs.count, let a = inputs[i] else { throw KernelError("input \(i) is missing") }
        return a
    }

    /// Output `k`, or a ``KernelError`` naming it.
    public func output(_ k: Int) throws -> NDArray {
        guard k < outputs.count, let a = outputs[k] else { throw KernelError("output \(k) is missing") }
        return a
    }

    /// Whether input `i` needs a gradient.
    public func needs(_ i: Int) -> Bool { i < needs.count && needs[i] }
}

/// A vector-Jacobian product: given the cotangents of a node's outputs (`nil`: no gradient
/// reaches that output, read it as zeros), the cotangents of its inputs (`nil` where not needed
/// or not differentiable). Results have the inputs' shapes.
public typealias VJP = (_ context: GradientContext, _ outputGradients: [NDArray?]) throws -> [NDArray?]

/// VJPs by (domain, op type). Each kernel family file registers the VJPs of its ops next to its
/// kernels (`registerXGradients`), listed in `StandardGradients.swift`.
public struct GradientRegistry {
    struct Key: Hashable {
        var domain: String
        var op: String
    }

    private var entries: [Key: VJP] = [:]

    /// An empty registry.
    public init() {}

    /// The VJPs this package ships.
    public static let standard: GradientRegistry = {
        var r = GradientRegistry()
        registerStandardGradients(&r)
        return r
    }()

    /// Registers `vjp` for `ops` in `domain`.
    public mutating func register(_ ops: [String], domain: String = "", _ vjp: @escaping VJP) {
        for op in ops { entries[Key(domain: KernelRegistry.normalize(domain), op: op)] = vjp }
    }

    /// The VJP of `op`, or `nil` when it has none.
    public func vjp(domain: String = "", op: String) -> VJP? {
        entries[Key(domain: KernelRegistry.normalize(domain), op: op)]
    }

    /// Ops with a VJP, sorted (`domain.op` outside the default domain).
    public var operators: [String] {
        entries.keys.map { $0.domain.isEmpty ? $0.op : "\($0.domain).\($0.op)" }.sorted()
    }
}
