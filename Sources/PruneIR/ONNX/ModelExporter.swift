import Foundation
import ONNXProto
import SwiftProtobuf

/// How ``ModelExporter`` places tensor data.
public struct ExportOptions: Sendable {
    /// Where initializer data goes.
    public enum ExternalData: Sendable, Equatable {
        /// Tensors that were external when imported stay external; everything else is inline,
        /// unless the model would pass protobuf's 2 GB limit, in which case every initializer of
        /// at least 1 KiB goes external.
        case asImported
        /// Everything inline (fails for models over 2 GB).
        case none
        /// Every initializer of at least `threshold` bytes goes external.
        case all(threshold: Int)
    }

    /// Where initializer data goes.
    public var externalData: ExternalData = .asImported
    /// The data file's name, relative to the model's folder; default `<model file name>.data`.
    public var dataFileName: String?
    /// Alignment of each tensor in the data file (so it can be memory-mapped directly).
    public var alignment: Int = 4096

    public init(externalData: ExternalData = .asImported, dataFileName: String? = nil, alignment: Int = 4096) {
        self.externalData = externalData
        self.dataFileName = dataFileName
        self.alignment = alignment
    }
}

/// Writes IR models as ONNX.
///
/// An unchanged model is written back byte-identical where the original was written by a
/// conforming protobuf serializer: unmodelled fields, attribute protos and type protos are
/// reused as imported, and only what the IR changed is rebuilt. Writes are atomic: the model (and
/// its data file) go to temporary files that are renamed into place only when complete.
public enum ModelExporter {
    /// Protobuf's hard limit for one message.
    static let protobufLimit = Int(Int32.max)
    /// Inline payloads above this switch `.asImported` to external data.
    static let inlineBudget = 1_800_000_000

    /// The model as a `ModelProto` with every tensor inline.
    public static func proto(_ model: Model) -> Onnx_ModelProto {
        let planner = ExternalDataPlanner(mode: .none, fileName: "", alignment: 1)
        return modelProto(model, planner: planner)
    }

    /// The model serialized with every tensor inline.
    ///
    /// - Throws: ``ONNXExportError/tooLarge(bytes:)`` past protobuf's 2 GB limit.
    public static func serialize(_ model: Model) throws -> Data {
        let p = proto(model)
        do {
            return try p.serializedBytes()
        } catch {
            throw ONNXExportError.tooLarge(bytes: estimatedInlineBytes(model.graph))
        }
    }

    /// Writes the model to `url` atomically, with external data as `options` say.
    ///
    /// - Throws: ``ONNXExportError``; on a throw no file at `url` (or its data file) was changed.
    public static func write(_ model: Model, to url: URL, options: ExportOptions = ExportOptions()) throws {
        let fileName = options.dataFileName ?? (url.lastPathComponent + ".data")
        var mode = options.externalData
        if mode == .asImported && estimatedInlineBytes(model.graph, excludingExternal: true) > inlineBudget {
            mode = .all(threshold: 1024)
        }
        let planner = ExternalDataPlanner(mode: mode, fileName: fileName, alignment: max(1, options.alignment))
        let p = modelProto(model, planner: planner)
        let bytes: Data
        do {
            bytes = try p.serializedBytes()
        } catch {
            throw ONNXExportError.tooLarge(bytes: estimatedInlineBytes(model.graph))
        }
        let dir = url.deletingLastPathComponent()
        let dataURL = dir.appendingPathComponent(fileName)
        var dataTemp: URL?
        var dataCommitted = false
        do {
            if !planner.chunks.isEmpty {
                dataTemp = try AtomicFile.writeTemporary(near: dataURL) { handle in
                    try planner.writeChunks(to: handle)
                }
            }
            let modelTemp = try AtomicFile.writeTemporary(near: url) { handle in
                try handle.write(contentsOf: bytes)
            }
            // Two files cannot be renamed at once: keep a hard link to the old data file so a
            // failed model rename can put it back, and the pair on disk stays consistent.
            let backup = dataTemp == nil ? nil : AtomicFile.backup(dataURL)
            do {
                if let dataTemp {
                    try AtomicFile.commit(dataTemp, to: dataURL)
                    dataCommitted = true
                }
                try AtomicFile.commit(modelTemp, to: url)
                if let backup { AtomicFile.discard(backup) }
            } catch {
                AtomicFile.discard(modelTemp)
                if dataCommitted {
                    if let backup { AtomicFile.restore(backup, to: dataURL) } else { AtomicFile.discard(dataURL) }
                } else if let backup {
                    AtomicFile.discard(backup)
                }
                throw error
            }
        } catch let e as AtomicFileError {
            if let dataTemp, !dataCommitted { AtomicFile.discard(dataTemp) }
            throw ONNXExportError.writeFailed(file: e.file, reason: e.reason)
        } catch {
            if let dataTemp, !dataCommitted { AtomicFile.discard(dataTemp) }
            throw ONNXExportError.writeFailed(file: url.relativePath, reason: "\(error)")
        }
    }

    /// Bytes the initializers of a graph (and its subgraphs) take inline.
    static func estimatedInlineBytes(_ graph: Graph, excludingExternal: Bool = false) -> Int {
        var total = 0
        for v in graph.initializers {
            guard let t = v.initializer else { continue }
            if excludingExternal && t.external != nil { continue }
            total += t.byteCount
        }
        for n in graph.nodes {
            for (_, a) in n.attributes {
                switch a {
                case .tensor(let t): total += t.byteCount
                case .tensors(let ts): total += ts.reduce(0) { $0 + $1.byteCount }
                default: break
                }
            }
            for g in n.subgraphs { total += estimatedInlineBytes(g, excludingExternal: excludingExternal) }
        }
        return total
    }

    // MARK: - IR to proto

    static func modelProto(_ model: Model, planner: ExternalDataPlanner) -> Onnx_ModelProto {
        var p = model.proto
        p.graph = graphProto(model.graph, planner: planner)
        return p
    }

    static func graphProto(_ g: Graph, planner: ExternalDataPlanner) -> Onnx_GraphProto {
        var p = g.proto
        p.node = g.nodes.map { nodeProto($0, planner: planner) }
        p.input = g.inputs.map { valueInfo($0, role: .input) }
        p.initializer = g.initializers.compactMap { v in
            guard var t = v.initializer else { return nil }
            t.name = v.name
            return planner.place(t, isInitializer: true)
        }
        p.output = g.outputs.map { valueInfo($0, role: .output) }
        p.valueInfo = g.valueInfos.filter { v in
            v.isDetachedInfo || v.producer?.graph != nil || v.owningGraph != nil
        }.map { valueInfo($0, role: .valueInfo) }
        return p
    }

    static func nodeProto(_ n: Node, planner: ExternalDataPlanner) -> Onnx_NodeProto {
        var p = n.proto
        if p.opType != n.opType.name || !p.hasOpType { p.opType = n.opType.name }
        if p.hasDomain || !n.opType.domain.isEmpty { p.domain = n.opType.domain }
        p.input = n.inputs.map { $0?.name ?? "" }
        p.output = n.outputs.map(\.name)
        p.attribute = n.attributes.map { name, value in
            if var original = n.importedAttributes[name], !n.changedAttributes.contains(name) {
                switch value {
                case .graph(let g): original.g = graphProto(g, planner: planner)
                case .graphs(let gs): original.graphs = gs.map { graphProto($0, planner: planner) }
                case .tensor(let t) where t.external != nil: original.t = planner.place(t, isInitializer: false)
                default: break
                }
                return original
            }
            return attributeProto(name, value, planner: planner)
        }
        return p
    }

    static func attributeProto(_ name: String, _ value: Attribute, planner: ExternalDataPlanner) -> Onnx_AttributeProto {
        var p = Onnx_AttributeProto()
        p.name = name
        switch value {
        case .float(let f): p.type = .float; p.f = f
        case .int(let i): p.type = .int; p.i = i
        case .string(let s): p.type = .string; p.s = Data(s.utf8)
        case .tensor(let t): p.type = .tensor; p.t = planner.place(t, isInitializer: false)
        case .graph(let g): p.type = .graph; p.g = graphProto(g, planner: planner)
        case .floats(let v): p.type = .floats; p.floats = v
        case .ints(let v): p.type = .ints; p.ints = v
        case .strings(let v): p.type = .strings; p.strings = v.map { Data($0.utf8) }
        case .tensors(let ts): p.type = .tensors; p.tensors = ts.map { planner.place($0, isInitializer: false) }
        case .graphs(let gs): p.type = .graphs; p.graphs = gs.map { graphProto($0, planner: planner) }
        case .typeProto(let t): p.type = .typeProto; p.tp = t.map(TypeConversion.proto) ?? Onnx_TypeProto()
        case .typeProtos(let ts): p.type = .typeProtos; p.typeProtos = ts.map { $0.map(TypeConversion.proto) ?? Onnx_TypeProto() }
        case .sparseTensor(let s): p.type = .sparseTensor; p.sparseTensor = s
        case .sparseTensors(let s): p.type = .sparseTensors; p.sparseTensors = s
        }
        return p
    }

    static func valueInfo(_ v: Value, role: ValueInfoRole) -> Onnx_ValueInfoProto {
        var vi = v.importedInfo[role] ?? Onnx_ValueInfoProto()
        if !vi.hasName || vi.name != v.name { vi.name = v.name }
        if v.importedInfo[role] == nil || v.typeChanged {
            if let t = v.type { vi.type = TypeConversion.proto(t) } else { vi.clearType() }
        }
        return vi
    }

    /// The tensor's proto without data: the imported extras with type, shape and name set.
    static func tensorHeader(_ t: Tensor) -> Onnx_TensorProto {
        var p = t.extras
        p.dims = t.shape.map { Int64($0) }
        p.dataType = t.dtype.rawValue
        if !t.name.isEmpty || t.extras.hasName { p.name = t.name }
        return p
    }

    /// A `TensorProto` holding the tensor's data inline.
    static func inlineTensorProto(_ t: Tensor) -> Onnx_TensorProto {
        var p = tensorHeader(t)
        p.externalData = []
        if p.hasDataLocation { p.clearDataLocation() }
        switch t.storage {
        case .raw(let d): p.rawData = d
        case .strings(let s): p.stringData = s
        case .fields(let f):
            p.floatData = f.floatData
            p.int32Data = f.int32Data
            p.int64Data = f.int64Data
            p.doubleData = f.doubleData
            p.uint64Data = f.uint64Data
            p.stringData = f.stringData
        }
        return p
    }
}

/// Decides which tensors go to the external data file and at which offsets.
final class ExternalDataPlanner {
    let mode: ExportOptions.ExternalData
    let fileName: String
    let alignment: Int
    private(set) var chunks: [(offset: Int, data: Data)] = []
    private var end = 0

    init(mode: ExportOptions.ExternalData, fileName: String, alignment: Int) {
        self.mode = mode
        self.fileName = fileName
        self.alignment = alignment
    }

    func place(_ t: Tensor, isInitializer: Bool) -> Onnx_TensorProto {
        let external: Bool
        switch mode {
        case .none: external = false
        case .asImported: external = t.external != nil
        case .all(let threshold): external = (isInitializer || t.external != nil) && t.byteCount >= threshold
        }
        guard external, t.dtype != .string else { return ModelExporter.inlineTensorProto(t) }
        let data = t.rawBytes
        let offset = (end + alignment - 1) / alignment * alignment
        chunks.append((offset, data))
        end = offset + data.count
        var p = ModelExporter.tensorHeader(t)
        p.externalData = [
            Onnx_StringStringEntryProto(key: "location", value: fileName),
            Onnx_StringStringEntryProto(key: "offset", value: String(offset)),
            Onnx_StringStringEntryProto(key: "length", value: String(data.count)),
        ]
        p.dataLocation = .external
        return p
    }

    func writeChunks(to handle: FileHandle) throws {
        var position = 0
        let zeros = Data(count: alignment)
        for (offset, data) in chunks {
            if offset > position { try handle.write(contentsOf: zeros.prefix(offset - position)) }
            // Write in bounded pieces so a mapped source is paged through, not duplicated.
            var start = 0
            let piece = 64 << 20
            while start < data.count {
                let stop = min(data.count, start + piece)
                try handle.write(contentsOf: data[data.startIndex + start ..< data.startIndex + stop])
                start = stop
            }
            position = offset + data.count
        }
    }
}
