/// The cost of one node: the multiply-accumulates it performs and the parameters it reads.
public struct NodeCost {
    /// The node.
    public var node: Node
    /// Multiply-accumulates for one run; `nil` when the shapes it depends on are unknown.
    public var macs: Int?
    /// Elements of the initializer and constant inputs the node reads (a weight shared by two
    /// nodes counts for both).
    public var params: Int

    /// Creates a node cost.
    public init(node: Node, macs: Int?, params: Int) {
        self.node = node
        self.macs = macs
        self.params = params
    }
}

/// Parameter counts and multiply-accumulate (MAC) counts of a model.
///
/// MACs follow the fvcore/thop conventions: only the ops that multiply and accumulate are
/// counted (`Conv`, `ConvTranspose`, `MatMul`, `Gemm`, `Einsum`); element-wise ops, activations,
/// normalizations, reductions and data movement count 0. Run ``ShapeInference`` first: MACs are
/// computed from the value types.
///
/// - `Conv`: `N · Cout · Π(output spatial) · (Cin / groups) · Π(kernel)`.
/// - `ConvTranspose`: `N · Cin · Π(input spatial) · (Cout / groups) · Π(kernel)`.
/// - `MatMul`: `Π(output batch dims) · M · N · K`.
/// - `Gemm`: `M · N · K`.
/// - `Einsum`: the product of the sizes of all its indices (each index once).
///
/// ```swift
/// ShapeInference().run(on: model)
/// let macs = CostModel().totalMACs(model)
/// let params = CostModel.parameterCount(model)
/// ```
public struct CostModel: Sendable {
    /// Ops that have a MAC count; a model's total is unknown when one of them has unknown shapes.
    public static let macBearingOps: Set<OpType> = [.conv, .convTranspose, .matMul, .gemm, .einsum]

    /// Constant-node tensors with more elements than this count as parameters.
    public static let constantParameterThreshold = 16

    /// Creates a cost model.
    public init() {}

    /// Parameter count: elements of every initializer (all element types) a node reads or the graph
    /// returns, and of every `Constant` node tensor with more than 16 elements, in the main graph
    /// and all subgraphs. An initializer nothing reads (a pass's record, an exporter's leftover) is
    /// not a parameter of the computation.
    public static func parameterCount(_ model: Model) -> Int {
        parameterTensors(model.graph).reduce(0) { $0 &+ $1.elementCount }
    }

    /// Bytes of the tensors ``parameterCount(_:)`` counts, as stored (sub-byte types packed).
    public static func parameterBytes(_ model: Model) -> Int {
        parameterTensors(model.graph).reduce(0) { $0 &+ $1.byteCount }
    }

    private static func parameterTensors(_ graph: Graph) -> [Tensor] {
        var out: [Tensor] = graph.initializers.filter { v in v.hasUses || graph.outputs.contains { $0 === v } }.compactMap(\.initializer)
        for node in graph.nodes {
            if node.opType == .constant, let t = node.outputs.first?.constantValue, t.elementCount > constantParameterThreshold {
                out.append(t)
            }
            for g in node.subgraphs { out += parameterTensors(g) }
        }
        return out
    }

    /// MACs and parameters per node, in graph order (subgraph nodes after their parent node).
    public func costs(_ model: Model) -> [NodeCost] {
        model.graph.allNodes.map { node in
            NodeCost(node: node, macs: Self.macs(of: node), params: Self.params(of: node))
        }
    }

    /// Total MACs, or `nil` if any MAC-bearing node (`Conv`, `ConvTranspose`, `MatMul`, `Gemm`,
    /// `Einsum`) has unknown shapes.
    public func totalMACs(_ model: Model) -> Int? {
        Self.totalMACs(of: costs(model))
    }

    /// The sum of the nodes' MACs, or `nil` if any is unknown or the sum overflows.
    public static func totalMACs(of costs: [NodeCost]) -> Int? {
        var total = 0
        for c in costs {
            guard let m = c.macs else { return nil }
            let (r, o) = total.addingReportingOverflow(m)
            if o { return nil }
            total = r
        }
        return total
    }

    /// Elements of the constant inputs (initializers, `Constant` outputs) `node` reads.
    static func params(of node: Node) -> Int {
        node.inputs.reduce(0) { acc, v in acc &+ (v?.constantValue?.elementCount ?? 0) }
    }

    /// The MACs of one node: 0 for ops that are not MAC-bearing, `nil` when shapes are missing.
    public static func macs(of node: Node) -> Int? {
        guard macBearingOps.contains(node.opType) else { return 0 }
        func shape(_ v: Value?) -> [Int]? { v?.type?.shape?.staticDims }
        let input = node.inputs.first.flatMap { shape($0) }
        let weight = node.inputs.count > 1 ? shape(node.inputs[1]) : nil
        let output = node.outputs.first.flatMap { shape($0) }
        switch node.opType {
        case .conv:
            // W is [Cout, Cin/groups, k...]; the output is [N, Cout, spatial...].
            guard let w = weight, let y = output, w.count == y.count, y.count >= 3 else { return nil }
            return product([y[0], y[1]] + Array(y.dropFirst(2)) + [w[1]] + Array(w.dropFirst(2)))
        case .convTranspose:
            // W is [Cin, Cout/groups, k...]; every input pixel scatters a kernel into Cout/groups channels.
            guard let x = input, let w = weight, w.count == x.count, x.count >= 3 else { return nil }
            return product([x[0], x[1]] + Array(x.dropFirst(2)) + [w[1]] + Array(w.dropFirst(2)))
        case .matMul:
            guard let a = input, let b = weight, let y = output, !a.isEmpty, !b.isEmpty, let k = a.last else { return nil }
            // y already holds the broadcast batch dims, M (unless A is 1-D) and N (unless B is 1-D).
            return product(y + [k])
        case .gemm:
            guard let a = input, a.count == 2, let y = output, y.count == 2 else { return nil }
            let transA = ((try? node.attribute("transA", as: Int.self)) ?? nil ?? 0) != 0
            return product(y + [transA ? a[0] : a[1]])
        case .einsum:
            guard let eq = (try? node.attribute("equation", as: String.self)) ?? nil,
                let parsed = EinsumEquation(eq),
                node.inputs.allSatisfy({ $0?.type?.shape != nil }),
                let b = parsed.bindings(node.inputs.map { $0?.type?.shape })
            else { return nil }
            var dims: [Int] = []
            for d in b.letters.values {
                guard let v = d.value else { return nil }
                dims.append(v)
            }
            guard let e = b.ellipsis else { return nil }
            for d in e {
                guard let v = d.value else { return nil }
                dims.append(v)
            }
            return product(dims)
        default:
            return 0
        }
    }

    private static func product(_ dims: [Int]) -> Int? { Shape.product(dims) }
}
