import ONNXProto

/// One use of a ``Value``: the node that reads it and the input slot it is read in.
public struct Use {
    /// The consuming node. Unowned: a node drops its uses when it leaves its graph or is freed.
    public unowned let node: Node
    /// Index into `node.inputs`.
    public let inputIndex: Int
    /// The node's identity, comparable even while the node is being freed.
    let nodeID: ObjectIdentifier

    init(node: Node, inputIndex: Int) {
        self.node = node
        self.inputIndex = inputIndex
        self.nodeID = ObjectIdentifier(node)
    }
}

/// A value in a graph: a graph input, an initializer, or a node output.
///
/// Invariants (kept by ``Node/setInput(_:at:)``, the only code that edits use lists):
/// - A value has at most one producer, and knows which of its outputs it is (``outputIndex``).
/// - ``uses`` lists every `(node, input index)` that reads the value, in any graph or subgraph.
/// - Values are compared by identity (`===`), never by name or content.
public final class Value: CustomStringConvertible {
    /// The name; unique within a model's scope. An empty name marks an omitted optional output.
    public var name: String
    /// The type, if known. Setting it marks the value's declared type as changed, so the exporter
    /// writes the new type instead of the imported `TypeProto`.
    public var type: ValueType? {
        didSet { typeChanged = true }
    }
    /// The node that produces this value; `nil` for graph inputs and initializers.
    public internal(set) weak var producer: Node?
    /// Which output of ``producer`` this value is.
    public internal(set) var outputIndex: Int = 0
    /// The constant data when this value is an initializer of its graph.
    public internal(set) var initializer: Tensor?
    /// The graph that declares this value as an input or initializer (not set for node outputs).
    public internal(set) weak var owningGraph: Graph?

    var useList: [Use] = []
    var typeChanged = false
    /// Set for `value_info` entries that named no value when imported; they are written back.
    var isDetachedInfo = false
    /// The imported `ValueInfoProto`s of this value, by the role they were listed in.
    var importedInfo: [ValueInfoRole: Onnx_ValueInfoProto] = [:]

    /// Creates a value that no node produces yet.
    public init(name: String, type: ValueType? = nil) {
        self.name = name
        self.type = type
        self.typeChanged = false
    }

    /// A snapshot of the uses; safe to iterate while rewriting the graph.
    public var uses: [Use] { useList }

    /// Whether any node reads this value.
    public var hasUses: Bool { !useList.isEmpty }

    /// Whether this value is an omitted optional output (empty name).
    public var isOmitted: Bool { name.isEmpty }

    /// The constant this value always holds: its initializer, or the tensor of the `Constant` node
    /// that produces it (`value` attribute, or the scalar/list forms `value_float(s)`, `value_int(s)`).
    public var constantValue: Tensor? {
        if let initializer { return initializer }
        guard let p = producer, p.opType == .constant else { return nil }
        for (name, attr) in p.attributes {
            switch (name, attr) {
            case ("value", .tensor(let t)): return t
            case ("value_float", .float(let f)): return Tensor.scalar(f)
            case ("value_floats", .floats(let fs)): return Tensor(floats: fs, shape: [fs.count])
            case ("value_int", .int(let i)): return Tensor.scalar(i)
            case ("value_ints", .ints(let v)): return Tensor(int64s: v, shape: [v.count])
            default: continue
            }
        }
        return nil
    }

    /// Replaces every use of this value by `other`.
    ///
    /// Use lists of both values stay consistent. Graph outputs that name this value are left alone
    /// unless `includingGraphOutputs` is true (replacing an output changes the model's interface).
    public func replaceAllUses(with other: Value, includingGraphOutputs: Bool = false) {
        for use in uses {
            use.node.setInput(other, at: use.inputIndex)
        }
        guard includingGraphOutputs else { return }
        guard let g = producer?.graph ?? owningGraph else { return }
        for i in g.outputs.indices where g.outputs[i] === self { g.outputs[i] = other }
    }

    public var description: String {
        "%\(name)" + (type.map { ": \($0)" } ?? "")
    }

    func addUse(_ node: Node, _ index: Int) { useList.append(Use(node: node, inputIndex: index)) }

    func removeUse(_ node: Node, _ index: Int) {
        let id = ObjectIdentifier(node)
        if let i = useList.firstIndex(where: { $0.nodeID == id && $0.inputIndex == index }) {
            useList.remove(at: i)
        }
    }

    /// Drops every use by a node that is being freed (its unowned reference must not be read).
    func removeUses(byNodeWithID id: ObjectIdentifier) {
        useList.removeAll { $0.nodeID == id }
    }
}

/// The lists of a `GraphProto` a value can be described in.
enum ValueInfoRole: Hashable {
    case input, output, valueInfo
}
