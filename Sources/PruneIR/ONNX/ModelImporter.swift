import Foundation
import ONNXProto
import SwiftProtobuf

/// Reads ONNX models into the IR.
///
/// A model file is untrusted input: every count and offset is checked against the bytes present
/// before anything is allocated, external data must stay inside the model's folder, subgraph
/// nesting is bounded, and every failure is an ``ONNXImportError`` naming the file and the node,
/// value or tensor at fault.
///
/// ```swift
/// let model = try ModelImporter.load(contentsOf: URL(fileURLWithPath: "resnet.onnx"))
/// ```
public enum ModelImporter {
    /// The deepest nesting of subgraphs accepted.
    public static let maxSubgraphDepth = 64

    /// Loads a model file. The file is memory-mapped; external data files are mapped too, so
    /// their weights are not read until used.
    ///
    /// - Parameters:
    ///   - url: The `.onnx` file.
    ///   - displayName: How messages name the file (defaults to the path as given).
    /// - Throws: ``ONNXImportError``.
    public static func load(contentsOf url: URL, displayName: String? = nil) throws -> Model {
        let file = displayName ?? url.relativePath
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw ONNXImportError.fileNotFound(file: file)
        }
        if isDir.boolValue { throw ONNXImportError.unreadable(file: file, reason: "is a directory") }
        let mapped: MappedFile
        do {
            mapped = try MappedFile(url: url)
        } catch let e as MappedFileError {
            throw ONNXImportError.unreadable(file: file, reason: e.message)
        }
        let model = try load(serialized: mapped.all, file: file, baseDirectory: url.deletingLastPathComponent(), mapped: mapped)
        model.sourceURL = url
        return model
    }

    /// Loads a model from serialized bytes.
    ///
    /// - Parameters:
    ///   - data: A serialized `ModelProto`.
    ///   - file: How messages name the source.
    ///   - baseDirectory: The folder external data is resolved against; `nil` refuses external data.
    /// - Throws: ``ONNXImportError``.
    public static func load(serialized data: Data, file: String, baseDirectory: URL?) throws -> Model {
        try load(serialized: data, file: file, baseDirectory: baseDirectory, mapped: nil)
    }

    static func load(serialized data: Data, file: String, baseDirectory: URL?, mapped: MappedFile?) throws -> Model {
        if data.isEmpty { throw ONNXImportError.malformed(file: file, reason: "the file is empty") }
        var options = BinaryDecodingOptions()
        options.messageDepthLimit = 1000
        // Large models: decode without the initializers' weights, which then stay in the mapping.
        if let split = RawDataStripper.strip(data),
            let proto = try? Onnx_ModelProto(serializedBytes: split.stripped, options: options),
            proto.graph.initializer.count == split.rawData.count
        {
            let slices = split.rawData.map { range in
                range.map { r in mapped?.bytes(offset: r.lowerBound, length: r.count) ?? Data(data[data.startIndex + r.lowerBound ..< data.startIndex + r.upperBound]) }
            }
            return try load(proto: proto, file: file, baseDirectory: baseDirectory, initializerRawData: slices)
        }
        let proto: Onnx_ModelProto
        do {
            proto = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw ONNXImportError.malformed(file: file, reason: describeDecodingError(error))
        }
        return try load(proto: proto, file: file, baseDirectory: baseDirectory)
    }

    /// Converts a decoded `ModelProto`.
    ///
    /// - Throws: ``ONNXImportError``.
    public static func load(proto: Onnx_ModelProto, file: String, baseDirectory: URL?) throws -> Model {
        try load(proto: proto, file: file, baseDirectory: baseDirectory, initializerRawData: nil)
    }

    static func load(proto: Onnx_ModelProto, file: String, baseDirectory: URL?, initializerRawData: [Data?]?) throws -> Model {
        guard proto.hasGraph else {
            throw ONNXImportError.invalidModel(file: file, reason: "it has no graph (is the file truncated or not an ONNX model?)")
        }
        guard proto.hasIrVersion, proto.irVersion > 0 else {
            throw ONNXImportError.invalidModel(file: file, reason: "ir_version is missing")
        }
        if proto.irVersion >= 3 && proto.opsetImport.isEmpty {
            throw ONNXImportError.invalidModel(file: file, reason: "it imports no opset (is the file truncated?)")
        }
        var importer = GraphImporter(file: file, external: ExternalDataResolver(baseDirectory: baseDirectory, file: file))
        importer.mainInitializerRawData = initializerRawData
        let graph = try importer.importGraph(proto.graph, outerScope: [], depth: 0)
        return Model(graph: graph, importing: proto)
    }

    /// Loads one serialized `TensorProto` (an ONNX `test_data_set_*/input_0.pb` file), with the
    /// same checks as a model's initializers. External data is resolved next to the file.
    ///
    /// - Throws: ``ONNXImportError``.
    public static func loadTensor(contentsOf url: URL, displayName: String? = nil) throws -> Tensor {
        let file = displayName ?? url.relativePath
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ONNXImportError.fileNotFound(file: file)
        }
        let proto: Onnx_TensorProto
        do {
            proto = try Onnx_TensorProto(serializedBytes: data)
        } catch {
            throw ONNXImportError.malformed(file: file, reason: describeDecodingError(error))
        }
        let importer = GraphImporter(file: file, external: ExternalDataResolver(baseDirectory: url.deletingLastPathComponent(), file: file))
        return try importer.importTensor(proto, what: proto.name.isEmpty ? url.lastPathComponent : proto.name)
    }

    static func describeDecodingError(_ error: Error) -> String {
        if let e = error as? BinaryDecodingError {
            switch e {
            case .truncated: return "the protobuf data is truncated"
            case .malformedProtobuf: return "the protobuf data is malformed"
            case .invalidUTF8: return "a string field is not valid UTF-8"
            case .messageDepthLimit: return "messages nest too deeply"
            default: return "protobuf decoding failed (\(e))"
            }
        }
        return "protobuf decoding failed (\(error))"
    }
}

/// Converts one `GraphProto` (and recursively its subgraphs).
struct GraphImporter {
    let file: String
    let external: ExternalDataResolver
    /// raw_data of the main graph's initializers lifted out before decoding (see RawDataStripper).
    var mainInitializerRawData: [Data?]?

    typealias Scope = [String: Value]

    mutating func importGraph(_ p: Onnx_GraphProto, outerScope: [Scope], depth: Int) throws -> Graph {
        let graph = Graph(importing: p)
        var local: Scope = [:]
        local.reserveCapacity(p.node.count * 2 + p.initializer.count + p.input.count)

        // Messages are built only when a duplicate is found: this runs once per value.
        func define(_ v: Value, by what: @autoclosure () -> String) throws {
            if let first = local.updateValue(v, forKey: v.name) {
                throw ONNXImportError.duplicateDefinition(file: file, value: v.name, first: Self.definition(of: first), second: what())
            }
        }

        // Inputs.
        for vi in p.input {
            let v = Value(name: vi.name, type: try type(of: vi, what: "graph input '\(vi.name)'"))
            v.typeChanged = false
            v.importedInfo[.input] = vi
            try define(v, by: "graph input '\(vi.name)'")
            graph.addInput(v)
        }
        // Initializers; in IR < 4 an initializer may also be listed as an input.
        for (i, tp) in p.initializer.enumerated() {
            let lifted = depth == 0 ? mainInitializerRawData?[i] : nil
            let tensor = try importTensor(tp, what: tp.name, rawData: lifted)
            if let v = local[tp.name], v.owningGraph === graph, v.initializer == nil, v.producer == nil {
                graph.setInitializer(v, to: tensor)
                v.typeChanged = false
            } else {
                let v = graph.addInitializer(tensor)
                v.typeChanged = false
                try define(v, by: "initializer '\(tp.name)'")
            }
        }
        // Sparse initializers are kept in wire form; their values are defined for readers.
        for sp in p.sparseInitializer where sp.hasValues {
            let name = sp.values.name
            let dt = DType(onnx: sp.values.dataType)
            let v = Value(name: name, type: dt.map { .sparseTensor($0, Shape(sp.dims.map { Int(clamping: $0) })) })
            v.typeChanged = false
            v.owningGraph = graph
            try define(v, by: "sparse initializer '\(name)'")
        }

        // Nodes: define every output first, so a graph that is not sorted still resolves.
        var nodes: [Node] = []
        nodes.reserveCapacity(p.node.count)
        for np in p.node {
            let node = Node(importing: np)
            for name in np.output {
                let v = Value(name: name)
                v.typeChanged = false
                node.addOutput(v)
                if !name.isEmpty { try define(v, by: "node \(node.displayName)") }
            }
            nodes.append(node)
        }
        let scopes = [local] + outerScope
        func lookup(_ name: String) -> Value? {
            for s in scopes { if let v = s[name] { return v } }
            return nil
        }
        for (node, np) in zip(nodes, p.node) {
            for name in np.input {
                if name.isEmpty {
                    node.appendInput(nil)
                    continue
                }
                guard let v = lookup(name) else {
                    throw ONNXImportError.danglingValue(file: file, reader: "node \(node.displayName)", value: name)
                }
                node.appendInput(v)
            }
            for ap in np.attribute {
                if (ap.hasG || !ap.graphs.isEmpty) && depth + 1 > ModelImporter.maxSubgraphDepth {
                    throw ONNXImportError.nestingTooDeep(file: file, node: node.displayName, limit: ModelImporter.maxSubgraphDepth)
                }
                let a = try importAttribute(ap, node: node, scopes: scopes, depth: depth)
                node.appendImportedAttribute(ap.name, a, proto: ap)
            }
        }
        for n in try topologicallySorted(nodes) { graph.append(n) }

        // value_info: types of intermediate values. Entries naming nothing are kept as detached
        // values so they are written back.
        for vi in p.valueInfo {
            let t = try type(of: vi, zeroIsDynamic: true, what: "value '\(vi.name)'")
            let v: Value
            if let found = local[vi.name] ?? lookup(vi.name) {
                v = found
            } else {
                v = Value(name: vi.name)
                v.isDetachedInfo = true
            }
            if v.type == nil, let t { v.type = t }
            v.typeChanged = false
            v.importedInfo[.valueInfo] = vi
            graph.valueInfos.append(v)
        }
        // Outputs.
        for vi in p.output {
            guard let v = lookup(vi.name) else {
                throw ONNXImportError.danglingValue(file: file, reader: "graph output", value: vi.name)
            }
            let t = try type(of: vi, zeroIsDynamic: true, what: "graph output '\(vi.name)'")
            if v.type == nil, let t { v.type = t }
            v.typeChanged = false
            v.importedInfo[.output] = vi
            graph.outputs.append(v)
        }
        return graph
    }

    /// How an error message names where a value was defined.
    static func definition(of v: Value) -> String {
        if let p = v.producer { return "node \(p.displayName)" }
        if v.initializer != nil { return "initializer '\(v.name)'" }
        if case .sparseTensor = v.type { return "sparse initializer '\(v.name)'" }
        return "graph input '\(v.name)'"
    }

    /// The declared type of a graph input, output or `value_info` entry; `zeroIsDynamic` for the
    /// declarations onnxruntime merges leniently (outputs, `value_info`).
    private func type(of vi: Onnx_ValueInfoProto, zeroIsDynamic: Bool = false, what: @autoclosure () -> String) throws -> ValueType? {
        guard vi.hasType else { return nil }
        return try valueType(vi.type, zeroIsDynamic: zeroIsDynamic, what: what())
    }

    /// The IR type of a `TypeProto`, naming `what` when its element type is unknown.
    private func valueType(_ tp: Onnx_TypeProto, zeroIsDynamic: Bool = false, what: @autoclosure () -> String) throws -> ValueType? {
        do {
            return try TypeConversion.valueType(tp, zeroIsDynamic: zeroIsDynamic)
        } catch let e as TypeConversion.UnknownElementType {
            throw ONNXImportError.unknownElementType(file: file, what: what(), code: e.code)
        }
    }

    /// Kahn's algorithm, keeping file order among ready nodes, so a sorted graph keeps its order.
    private func topologicallySorted(_ nodes: [Node]) throws -> [Node] {
        if Self.isSorted(nodes) { return nodes }
        var index: [ObjectIdentifier: Int] = [:]
        for (i, n) in nodes.enumerated() { index[ObjectIdentifier(n)] = i }
        // Dependencies through inputs and through values read inside subgraphs.
        var pending = [Int](repeating: 0, count: nodes.count)
        var dependents = [[Int]](repeating: [], count: nodes.count)
        for (i, n) in nodes.enumerated() {
            var deps = Set<Int>()
            for v in n.inputs.compactMap({ $0 }) + Self.outerReads(of: n) {
                if let p = v.producer, let j = index[ObjectIdentifier(p)] {
                    deps.insert(j)
                }
            }
            for j in deps { dependents[j].append(i) }
            pending[i] = deps.count
        }
        // Ready nodes, largest file index first, so popLast takes the earliest.
        var heap = nodes.indices.filter { pending[$0] == 0 }.sorted(by: >)
        var out: [Node] = []
        while let i = heap.popLast() {
            out.append(nodes[i])
            for d in dependents[i] {
                pending[d] -= 1
                if pending[d] == 0 {
                    let pos = heap.firstIndex(where: { $0 < d }) ?? heap.endIndex
                    heap.insert(d, at: pos)
                }
            }
        }
        if out.count < nodes.count {
            let stuck = nodes.indices.filter { pending[$0] > 0 }.map { nodes[$0].displayName }
            throw ONNXImportError.cycle(file: file, nodes: stuck)
        }
        return out
    }

    /// Whether every node reads only values produced by earlier nodes of the list (or outside it).
    static func isSorted(_ nodes: [Node]) -> Bool {
        var all = Set<ObjectIdentifier>(minimumCapacity: nodes.count)
        for n in nodes { all.insert(ObjectIdentifier(n)) }
        var seen = Set<ObjectIdentifier>(minimumCapacity: nodes.count)
        for n in nodes {
            for case let v? in n.inputs {
                if let p = v.producer, all.contains(ObjectIdentifier(p)), !seen.contains(ObjectIdentifier(p)) { return false }
            }
            if !n.subgraphs.isEmpty {
                for v in outerReads(of: n) {
                    if let p = v.producer, all.contains(ObjectIdentifier(p)), !seen.contains(ObjectIdentifier(p)) { return false }
                }
            }
            seen.insert(ObjectIdentifier(n))
        }
        return true
    }

    /// Values produced outside a node's subgraphs that the subgraphs read.
    static func outerReads(of node: Node) -> [Value] {
        var out: [Value] = []
        for g in node.subgraphs {
            for n in g.allNodes {
                for v in n.inputs.compactMap({ $0 }) where v.producer?.graph !== n.graph && v.owningGraph !== n.graph {
                    out.append(v)
                }
            }
        }
        return out
    }

    mutating func importAttribute(_ ap: Onnx_AttributeProto, node: Node, scopes: [Scope], depth: Int) throws -> Attribute {
        var what: String { "attribute '\(ap.name)' of node \(node.displayName)" }
        switch ap.type {
        case .float: return .float(ap.f)
        case .int: return .int(ap.i)
        case .string: return .string(String(decoding: ap.s, as: UTF8.self))
        case .tensor: return .tensor(try importTensor(ap.t, what: ap.t.name.isEmpty ? what : ap.t.name))
        case .graph: return .graph(try importGraph(ap.g, outerScope: scopes, depth: depth + 1))
        case .sparseTensor: return .sparseTensor(ap.sparseTensor)
        case .typeProto: return .typeProto(try valueType(ap.tp, what: what))
        case .floats: return .floats(ap.floats)
        case .ints: return .ints(ap.ints)
        case .strings: return .strings(ap.strings.map { String(decoding: $0, as: UTF8.self) })
        case .tensors: return .tensors(try ap.tensors.map { try importTensor($0, what: $0.name.isEmpty ? what : $0.name) })
        case .graphs: return .graphs(try ap.graphs.map { try importGraph($0, outerScope: scopes, depth: depth + 1) })
        case .sparseTensors: return .sparseTensors(ap.sparseTensors)
        case .typeProtos: return .typeProtos(try ap.typeProtos.map { try valueType($0, what: what) })
        case .undefined:
            // Older writers leave `type` unset; infer it from the field that is present.
            if ap.hasF { return .float(ap.f) }
            if ap.hasI { return .int(ap.i) }
            if ap.hasS { return .string(String(decoding: ap.s, as: UTF8.self)) }
            if ap.hasT { return .tensor(try importTensor(ap.t, what: what)) }
            if ap.hasG { return .graph(try importGraph(ap.g, outerScope: scopes, depth: depth + 1)) }
            if !ap.floats.isEmpty { return .floats(ap.floats) }
            if !ap.ints.isEmpty { return .ints(ap.ints) }
            if !ap.strings.isEmpty { return .strings(ap.strings.map { String(decoding: $0, as: UTF8.self) }) }
            if !ap.tensors.isEmpty { return .tensors(try ap.tensors.map { try importTensor($0, what: what) }) }
            if !ap.graphs.isEmpty { return .graphs(try ap.graphs.map { try importGraph($0, outerScope: scopes, depth: depth + 1) }) }
            return .ints([])
        }
    }

    /// Validates a `TensorProto` and makes a ``Tensor`` without copying large data.
    func importTensor(_ tp: Onnx_TensorProto, what: String, rawData lifted: Data? = nil) throws -> Tensor {
        guard let dtype = DType(onnx: tp.dataType) else {
            throw ONNXImportError.unknownElementType(file: file, what: "tensor '\(what)'", code: tp.dataType)
        }
        var shape: [Int] = []
        shape.reserveCapacity(tp.dims.count)
        for d in tp.dims {
            guard d >= 0, let i = Int(exactly: d) else {
                throw ONNXImportError.tensorData(file: file, tensor: what, reason: "negative dimension \(d) in \(tp.dims)")
            }
            shape.append(i)
        }
        guard let count = Shape.product(shape), let expectedBytes = dtype.byteCount(elements: count) else {
            throw ONNXImportError.tensorData(file: file, tensor: what, reason: "shape \(tp.dims) has more elements than can be addressed")
        }
        var extras = tp
        extras.clearRawData()
        extras.floatData = []
        extras.int32Data = []
        extras.stringData = []
        extras.int64Data = []
        extras.doubleData = []
        extras.uint64Data = []

        if tp.hasDataLocation && tp.dataLocation == .external {
            let (ref, bytes) = try external.resolve(tp, tensor: what, expectedBytes: dtype == .string ? nil : expectedBytes)
            return Tensor(name: tp.name, dtype: dtype, shape: shape, storage: .raw(bytes), external: ref, extras: extras)
        }
        if dtype == .string {
            guard tp.stringData.count == count else {
                throw ONNXImportError.tensorData(file: file, tensor: what, reason: "\(tp.stringData.count) strings for shape \(tp.dims)")
            }
            return Tensor(name: tp.name, dtype: dtype, shape: shape, storage: .strings(tp.stringData), external: nil, extras: extras)
        }
        if tp.hasRawData || lifted != nil {
            let raw = lifted ?? tp.rawData
            guard raw.count == expectedBytes else {
                throw ONNXImportError.tensorData(
                    file: file, tensor: what,
                    reason: "raw_data holds \(raw.count) bytes, \(dtype)\(shape) needs \(expectedBytes)")
            }
            return Tensor(name: tp.name, dtype: dtype, shape: shape, storage: .raw(raw), external: nil, extras: extras)
        }
        let (field, expected) = TensorFieldCodec.expectedFieldCount(dtype: dtype, elements: count)
        let actual = TensorFieldCodec.fieldCount(of: tp, dtype: dtype)
        guard actual == expected else {
            throw ONNXImportError.tensorData(file: file, tensor: what, reason: "\(field) holds \(actual) values, \(dtype)\(shape) needs \(expected)")
        }
        var fields = tp
        fields.clearName()
        fields.clearDocString()
        fields.metadataProps = []
        return Tensor(name: tp.name, dtype: dtype, shape: shape, storage: .fields(fields), external: nil, extras: extras)
    }
}
