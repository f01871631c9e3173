import ONNXProto

/// A graph: inputs, initializers, nodes in topological order, and outputs.
///
/// The main graph of a ``Model`` and the bodies of `If`/`Loop`/`Scan` are graphs. A subgraph may
/// read values of enclosing graphs; those uses are recorded on the outer values.
///
/// Mutate through ``append(_:)``, ``insert(_:before:)``, ``remove(_:)``, ``addInput(_:)``,
/// ``addInitializer(_:)``: they keep node ownership and use lists consistent, and ``remove(_:)``
/// checks everything before it changes anything.
public final class Graph: CustomStringConvertible {
    /// The graph name.
    public var name: String {
        get { proto.name }
        set { proto.name = newValue }
    }
    /// Graph inputs in order (in models of IR version < 4 these may include initializers).
    public internal(set) var inputs: [Value] = []
    /// Graph outputs in order.
    public var outputs: [Value] = []
    /// Nodes in topological order.
    public internal(set) var nodes: [Node] = []
    /// Initializer values in file order; each has ``Value/initializer`` set.
    public internal(set) var initializers: [Value] = []
    /// Values listed in `value_info`, in file order.
    public internal(set) var valueInfos: [Value] = []
    /// Sparse initializers, kept in wire form.
    public var sparseInitializers: [Onnx_SparseTensorProto] {
        get { proto.sparseInitializer }
        set { proto.sparseInitializer = newValue }
    }
    /// The node whose attribute holds this graph, for subgraphs.
    public internal(set) weak var parentNode: Node?

    /// The imported `GraphProto` with nodes, inputs, outputs, initializers and value_info cleared.
    var proto: Onnx_GraphProto

    /// Creates an empty graph.
    public init(name: String = "") {
        proto = Onnx_GraphProto()
        if !name.isEmpty { proto.name = name }
    }

    init(importing p: Onnx_GraphProto) {
        var rest = p
        rest.node = []
        rest.input = []
        rest.output = []
        rest.initializer = []
        rest.valueInfo = []
        proto = rest
    }

    /// Appends a graph input.
    public func addInput(_ value: Value) {
        value.owningGraph = self
        inputs.append(value)
    }

    /// Removes a graph input that nothing reads.
    ///
    /// - Throws: ``IRError/valueInUse(_:uses:)`` when the input still has uses.
    public func removeInput(_ value: Value) throws {
        guard !value.hasUses else { throw IRError.valueInUse(value.name, uses: value.uses.map { $0.node.displayName }) }
        inputs.removeAll { $0 === value }
    }

    /// Adds an initializer value holding `tensor`; the value's type follows the tensor.
    @discardableResult
    public func addInitializer(_ tensor: Tensor, name: String? = nil) -> Value {
        let v = Value(name: name ?? tensor.name, type: .tensor(tensor.dtype, Shape(tensor.shape)))
        var t = tensor
        t.name = v.name
        v.initializer = t
        v.owningGraph = self
        initializers.append(v)
        return v
    }

    /// Replaces the data of an initializer value (shape and type follow the new tensor).
    public func setInitializer(_ value: Value, to tensor: Tensor) {
        var t = tensor
        t.name = value.name
        if value.initializer == nil {
            value.owningGraph = self
            initializers.append(value)
        }
        value.initializer = t
        let newType = ValueType.tensor(t.dtype, Shape(t.shape))
        if value.type != newType { value.type = newType }
    }

    /// Removes an initializer that nothing reads.
    ///
    /// - Throws: ``IRError/valueInUse(_:uses:)`` when it still has uses.
    public func removeInitializer(_ value: Value) throws {
        guard !value.hasUses else { throw IRError.valueInUse(value.name, uses: value.uses.map { $0.node.displayName }) }
        initializers.removeAll { $0 === value }
        inputs.removeAll { $0 === value }
        value.initializer = nil
    }

    /// Appends a node at the end.
    public func append(_ node: Node) {
        node.graph = self
        nodes.append(node)
    }

    /// Inserts a node before `anchor`.
    ///
    /// - Throws: ``IRError/notInGraph(_:)`` when `anchor` is not a node of this graph.
    public func insert(_ node: Node, before anchor: Node) throws {
        guard let i = nodes.firstIndex(where: { $0 === anchor }) else { throw IRError.notInGraph(anchor.displayName) }
        node.graph = self
        nodes.insert(node, at: i)
    }

    /// Inserts a node after `anchor`.
    ///
    /// - Throws: ``IRError/notInGraph(_:)`` when `anchor` is not a node of this graph.
    public func insert(_ node: Node, after anchor: Node) throws {
        guard let i = nodes.firstIndex(where: { $0 === anchor }) else { throw IRError.notInGraph(anchor.displayName) }
        node.graph = self
        nodes.insert(node, at: i + 1)
    }

    /// Removes a node whose outputs are unused and are not graph outputs.
    ///
    /// Checks first, then mutates: on a throw the graph is unchanged. The node's inputs lose the
    /// node's uses.
    /// - Throws: ``IRError/notInGraph(_:)``, or ``IRError/valueInUse(_:uses:)`` naming the readers.
    public func remove(_ node: Node) throws {
        guard let i = nodes.firstIndex(where: { $0 === node }) else { throw IRError.notInGraph(node.displayName) }
        for o in node.outputs {
            if o.hasUses { throw IRError.valueInUse(o.name, uses: o.uses.map { $0.node.displayName }) }
            if outputs.contains(where: { $0 === o }) { throw IRError.valueInUse(o.name, uses: ["graph output"]) }
        }
        nodes.remove(at: i)
        node.detachInputs()
        node.graph = nil
    }

    /// Reorders nodes; the new order must hold the same nodes. Used by topological sorting.
    func setNodeOrder(_ order: [Node]) {
        precondition(order.count == nodes.count)
        nodes = order
    }

    /// Every node of this graph and of its subgraphs, depth first.
    public var allNodes: [Node] {
        var out: [Node] = []
        for n in nodes {
            out.append(n)
            for g in n.subgraphs { out.append(contentsOf: g.allNodes) }
        }
        return out
    }

    /// The value with this name among inputs, initializers and node outputs of this graph.
    public func value(named name: String) -> Value? {
        if let v = inputs.first(where: { $0.name == name }) { return v }
        if let v = initializers.first(where: { $0.name == name }) { return v }
        for n in nodes { if let v = n.outputs.first(where: { $0.name == name }) { return v } }
        return nil
    }

    /// The node with this name, if any.
    public func node(named name: String) -> Node? {
        nodes.first { $0.name == name }
    }

    public var description: String { GraphPrinter.print(self) }
}
