import ONNXProto

/// An operator application: an ``OpType``, input and output ``Value``s and typed attributes.
///
/// Inputs are optional (`nil` is an omitted optional input, written as `""`). Subgraphs of
/// control-flow ops (`If`, `Loop`, `Scan`) are ``Graph`` attributes. Fields of `NodeProto` the IR
/// does not model (`doc_string`, `metadata_props`, device configurations, unknown fields) are kept
/// and written back.
public final class Node: CustomStringConvertible {
    /// The operator.
    public var opType: OpType
    /// The node's name (may be empty in the file; the importer never invents names).
    public var name: String {
        get { proto.name }
        set { proto.name = newValue }
    }
    /// Inputs, in order; `nil` marks an omitted optional input.
    public internal(set) var inputs: [Value?] = []
    /// Outputs, in order. An omitted optional output is a value with an empty name.
    public private(set) var outputs: [Value] = []
    /// Attributes in file order.
    public internal(set) var attributes: [(name: String, value: Attribute)] = []
    /// The graph the node belongs to, once inserted.
    public internal(set) weak var graph: Graph?

    /// The imported `NodeProto` with inputs, outputs and attributes cleared.
    var proto: Onnx_NodeProto
    /// Imported attribute protos, reused verbatim on export while unchanged.
    var importedAttributes: [String: Onnx_AttributeProto] = [:]
    var changedAttributes: Set<String> = []

    /// Creates a node and makes its outputs.
    ///
    /// - Parameters:
    ///   - opType: The operator.
    ///   - name: The node name.
    ///   - inputs: Input values (`nil` for omitted optional inputs); uses are recorded.
    ///   - outputs: Names of the output values to create.
    ///   - attributes: Attributes in order.
    public init(_ opType: OpType, name: String = "", inputs: [Value?], outputs: [String], attributes: [(String, Attribute)] = []) {
        self.opType = opType
        self.proto = Onnx_NodeProto()
        if !name.isEmpty { self.proto.name = name }
        self.attributes = attributes.map { (name: $0.0, value: $0.1) }
        for n in attributes.map(\.0) { changedAttributes.insert(n) }
        for v in inputs { appendInput(v) }
        for o in outputs { addOutput(Value(name: o)) }
        for g in self.attributes.flatMap({ $0.value.subgraphs }) { g.parentNode = self }
    }

    deinit {
        // A node freed without leaving its graph (never inserted, or its subgraph dropped) must
        // not leave uses that point at freed memory.
        let id = ObjectIdentifier(self)
        for case let v? in inputs { v.removeUses(byNodeWithID: id) }
    }

    init(importing p: Onnx_NodeProto) {
        var rest = p
        rest.input = []
        rest.output = []
        rest.attribute = []
        self.proto = rest
        self.opType = OpType(p.opType, domain: p.domain)
    }

    /// The node as `'name' (OpType)` for messages; unnamed nodes show their first output.
    public var displayName: String {
        if !name.isEmpty { return "'\(name)' (\(opType))" }
        if let o = outputs.first(where: { !$0.name.isEmpty }) { return "producing '\(o.name)' (\(opType))" }
        return "(\(opType))"
    }

    public var description: String {
        let outs = outputs.map { "%\($0.name)" }.joined(separator: ", ")
        let ins = inputs.map { $0.map { "%\($0.name)" } ?? "_" }.joined(separator: ", ")
        return "\(outs) = \(opType)(\(ins))" + (name.isEmpty ? "" : "  // \(name)")
    }

    /// Sets input `index` to `value`, updating both values' use lists. The only mutator of use lists.
    public func setInput(_ value: Value?, at index: Int) {
        precondition(index >= 0 && index < inputs.count, "input index \(index) out of range for node \(displayName)")
        if let old = inputs[index] { old.removeUse(self, index) }
        inputs[index] = value
        value?.addUse(self, index)
    }

    /// Appends an input (for variadic operators), recording its use.
    public func appendInput(_ value: Value?) {
        inputs.append(value)
        value?.addUse(self, inputs.count - 1)
    }

    /// Removes trailing inputs so that `count` remain, dropping their uses.
    public func truncateInputs(to count: Int) {
        while inputs.count > count {
            if let v = inputs[inputs.count - 1] { v.removeUse(self, inputs.count - 1) }
            inputs.removeLast()
        }
    }

    /// Appends an output value, making this node its producer.
    ///
    /// - Precondition: `value` has no producer yet.
    public func addOutput(_ value: Value) {
        precondition(value.producer == nil, "value '\(value.name)' already has a producer")
        value.producer = self
        value.outputIndex = outputs.count
        outputs.append(value)
    }

    /// Drops every input's use (used when the node leaves its graph).
    func detachInputs() {
        for i in inputs.indices { setInput(nil, at: i) }
    }

    /// The attribute called `name`, if present.
    public subscript(attribute name: String) -> Attribute? {
        attributes.first(where: { $0.name == name })?.value
    }

    /// Reads attribute `name` as `T`, or `nil` when absent.
    ///
    /// - Throws: ``IRError/attributeKind(node:name:expected:actual:)`` when the attribute exists
    ///   with another kind.
    public func attribute<T: AttributeReadable>(_ name: String, as type: T.Type) throws -> T? {
        guard let a = self[attribute: name] else { return nil }
        guard let v = T.read(a) else {
            throw IRError.attributeKind(node: displayName, name: name, expected: T.expectedKind, actual: a.kindName)
        }
        return v
    }

    /// Sets (or adds, at the end) attribute `name`.
    public func setAttribute(_ name: String, _ value: Attribute) {
        changedAttributes.insert(name)
        if let i = attributes.firstIndex(where: { $0.name == name }) {
            attributes[i].value = value
        } else {
            attributes.append((name: name, value: value))
        }
        for g in value.subgraphs { g.parentNode = self }
    }

    /// Removes attribute `name` if present.
    public func removeAttribute(_ name: String) {
        attributes.removeAll { $0.name == name }
        importedAttributes[name] = nil
    }

    /// Subgraphs held by this node's attributes.
    public var subgraphs: [Graph] { attributes.flatMap { $0.value.subgraphs } }

    func appendImportedAttribute(_ name: String, _ value: Attribute, proto: Onnx_AttributeProto) {
        attributes.append((name: name, value: value))
        importedAttributes[name] = proto
        for g in value.subgraphs { g.parentNode = self }
    }
}
