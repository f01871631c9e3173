/// Builds graphs in code: for tests, examples and passes that insert new structure.
///
/// Output names are generated (`name_0`, `name_1`, ...) unless given, and never collide with
/// names already used in the builder.
///
/// ```swift
/// let b = GraphBuilder(name: "tiny")
/// let x = b.input("x", .float, [1, 4])
/// let w = b.initializer("w", Tensor(floats: Array(repeating: 0.5, count: 8), shape: [4, 2]))
/// let y = b.add(.matMul, [x, w], name: "mm")
/// b.output(b.add(.relu, [y]))
/// let model = b.model(opset: 17)
/// ```
public final class GraphBuilder {
    /// The graph being built.
    public let graph: Graph
    private var used: Set<String> = []
    private var counter = 0

    /// Starts an empty graph.
    public init(name: String = "main") {
        graph = Graph(name: name)
    }

    /// A name not used yet, derived from `base`.
    public func uniqueName(_ base: String) -> String {
        if !used.contains(base) {
            used.insert(base)
            return base
        }
        while true {
            counter += 1
            let n = "\(base)_\(counter)"
            if !used.contains(n) {
                used.insert(n)
                return n
            }
        }
    }

    /// Adds a graph input of a tensor type.
    @_disfavoredOverload
    @discardableResult
    public func input(_ name: String, _ dtype: DType, _ shape: [Dim]) -> Value {
        let v = Value(name: uniqueName(name), type: .tensor(dtype, Shape(shape)))
        graph.addInput(v)
        return v
    }

    /// Adds a graph input with a fully known shape.
    @discardableResult
    public func input(_ name: String, _ dtype: DType, _ shape: [Int]) -> Value {
        input(name, dtype, shape.map { Dim.known($0) })
    }

    /// Adds an initializer.
    @discardableResult
    public func initializer(_ name: String, _ tensor: Tensor) -> Value {
        graph.addInitializer(tensor, name: uniqueName(name))
    }

    /// Appends a node and returns its outputs.
    ///
    /// - Parameters:
    ///   - op: The operator.
    ///   - inputs: Inputs (`nil` for an omitted optional input).
    ///   - attributes: Attributes in order.
    ///   - outputs: Number of outputs.
    ///   - name: Node name (made unique); outputs are named after it.
    @discardableResult
    public func node(_ op: OpType, _ inputs: [Value?], attributes: [(String, Attribute)] = [], outputs: Int = 1, name: String? = nil) -> [Value] {
        let nodeName = uniqueName(name ?? op.name.lowercased())
        let outNames = (0 ..< outputs).map { uniqueName(outputs == 1 ? "\(nodeName)_out" : "\(nodeName)_out\($0)") }
        let n = Node(op, name: nodeName, inputs: inputs, outputs: outNames, attributes: attributes)
        graph.append(n)
        return n.outputs
    }

    /// Appends a single-output node and returns its output.
    @discardableResult
    public func add(_ op: OpType, _ inputs: [Value?], attributes: [(String, Attribute)] = [], name: String? = nil) -> Value {
        node(op, inputs, attributes: attributes, outputs: 1, name: name)[0]
    }

    /// Marks values as graph outputs.
    public func output(_ values: Value...) {
        graph.outputs.append(contentsOf: values)
    }

    /// Wraps the graph in a model importing the default domain at `opset`.
    public func model(opset: Int64 = 17, irVersion: Int64 = 8) -> Model {
        Model(graph: graph, irVersion: irVersion, opsets: [OpsetImport(version: opset)])
    }
}
