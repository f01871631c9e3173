import Foundation

/// What `prunec inspect` reports about a model: interface, operators, parameters, MACs, the
/// largest tensors and libonnx's verdict. Encodes to JSON with snake_case keys.
public struct ModelSummary: Codable, Sendable {
    /// A graph input or output.
    public struct IOValue: Codable, Sendable {
        public var name: String
        @NullEncodable public var dtype: String?
        /// Dims as numbers or symbol names (`"?"` for unknown); `nil` for unknown rank.
        @NullEncodable public var shape: [String]?

    }

    /// One node's cost.
    public struct NodeEntry: Codable, Sendable {
        public var name: String
        public var op: String
        @NullEncodable public var macs: Int?
        public var params: Int

    }

    /// One entry of the op histogram.
    public struct OpEntry: Codable, Sendable {
        public var op: String
        public var count: Int
        @NullEncodable public var macs: Int?

    }

    /// One of the largest tensors.
    public struct TensorEntry: Codable, Sendable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var bytes: Int
        public var external: Bool
    }

    /// libonnx's checker verdict.
    public struct CheckEntry: Codable, Sendable {
        /// `passed`, `failed` or `skipped`.
        public var status: String
        @NullEncodable public var message: String?
        public var libonnx: String

    }

    public var file: String
    public var irVersion: Int64
    public var opsets: [String: Int64]
    public var producer: String
    public var producerVersion: String
    public var inputs: [IOValue]
    public var outputs: [IOValue]
    /// Number of nodes (subgraphs included).
    public var nodes: Int
    /// Op type → count, for `--json` consumers that want a plain histogram.
    public var ops: [String: Int]
    /// Ops with their MACs, most MACs first.
    public var opTable: [OpEntry]
    public var params: Int
    public var paramBytes: Int
    /// Total MACs; `nil` when a MAC-bearing node has unknown shapes.
    @NullEncodable public var macs: Int?
    public var perNode: [NodeEntry]
    public var largestTensors: [TensorEntry]
    public var opsWithoutShapeRule: [String: Int]
    @NullEncodable public var check: CheckEntry?

    enum CodingKeys: String, CodingKey {
        case file, opsets, producer, inputs, outputs, nodes, ops, params, macs, check
        case irVersion = "ir_version"
        case producerVersion = "producer_version"
        case opTable = "op_table"
        case paramBytes = "param_bytes"
        case perNode = "per_node"
        case largestTensors = "largest_tensors"
        case opsWithoutShapeRule = "ops_without_shape_rule"
    }

    /// Summarises a model. Runs ``ShapeInference`` (with `shapes` binding graph inputs) so MACs
    /// can be counted; weights are never read, so a mapped model stays unmapped.
    ///
    /// - Parameters:
    ///   - model: The model (its value types are updated by shape inference).
    ///   - file: How to name the model in the summary.
    ///   - shapes: Concrete shapes for graph inputs.
    ///   - largest: How many of the largest tensors to list.
    ///   - check: libonnx's verdict, if one was asked for.
    public init(model: Model, file: String, shapes: [String: Shape] = [:], largest: Int = 10, check: LibONNXResult? = nil) {
        let report = ShapeInference(overrides: shapes).run(on: model)
        let costs = CostModel().costs(model)
        self.file = file
        irVersion = model.irVersion
        opsets = Dictionary(model.opsetImports.map { ($0.domain.isEmpty ? "ai.onnx" : $0.domain, $0.version) }, uniquingKeysWith: { a, _ in a })
        producer = model.producerName
        producerVersion = model.producerVersion
        func io(_ v: Value) -> IOValue {
            IOValue(name: v.name, dtype: v.type?.elementType?.description, shape: v.type?.shape?.dims.map(\.description))
        }
        inputs = model.graph.inputs.filter { $0.initializer == nil }.map(io)
        outputs = model.graph.outputs.map(io)
        nodes = costs.count
        let byOp = Dictionary(grouping: costs) { $0.node.opType.description }
        ops = byOp.mapValues(\.count)
        opTable = byOp.map { op, group in OpEntry(op: op, count: group.count, macs: CostModel.totalMACs(of: group)) }
            .sorted { ($0.macs ?? .max, $0.count, $1.op) > ($1.macs ?? .max, $1.count, $0.op) }
        params = CostModel.parameterCount(model)
        paramBytes = CostModel.parameterBytes(model)
        macs = CostModel.totalMACs(of: costs)
        perNode = costs.map { NodeEntry(name: $0.node.name, op: $0.node.opType.description, macs: $0.macs, params: $0.params) }
        var tensors: [TensorEntry] = []
        func collect(_ g: Graph) {
            for v in g.initializers {
                guard let t = v.initializer else { continue }
                tensors.append(TensorEntry(name: v.name, dtype: t.dtype.description, shape: t.shape, bytes: t.byteCount, external: t.external != nil))
            }
            for n in g.nodes { n.subgraphs.forEach(collect) }
        }
        collect(model.graph)
        largestTensors = Array(tensors.sorted { ($0.bytes, $1.name) > ($1.bytes, $0.name) }.prefix(largest))
        opsWithoutShapeRule = report.opsWithoutRule
        self.check = check.map { c in
            switch c {
            case .passed: return CheckEntry(status: "passed", message: nil, libonnx: LibONNX.version)
            case .failed(let m): return CheckEntry(status: "failed", message: m, libonnx: LibONNX.version)
            case .skipped(let r): return CheckEntry(status: "skipped", message: r, libonnx: LibONNX.version)
            }
        }
    }


    /// The summary as one JSON object with sorted keys.
    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }
}

/// An optional that encodes `nil` as JSON `null` instead of leaving the key out, so scripts can
/// rely on every key of prunec's JSON being present.
@propertyWrapper
public struct NullEncodable<Wrapped: Codable & Sendable>: Codable, Sendable {
    public var wrappedValue: Wrapped?

    public init(wrappedValue: Wrapped?) { self.wrappedValue = wrappedValue }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? nil : try c.decode(Wrapped.self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let wrappedValue { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }
}
