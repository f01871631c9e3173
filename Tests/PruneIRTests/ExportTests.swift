import Foundation
import ONNXProto
import PruneTestSupport
import Testing

@testable import PruneIR

/// Writing models: structure round trips, external data layout, atomic writes, and how value
/// renames, type changes and removals show up in `input`/`output`/`value_info`.
@Suite struct ExportTests {
    // MARK: - Helpers

    /// `x -> Conv(w, b) 'conv' -> Relu -> Gemm(w2, bias2) -> y`, weights 0..n as floats.
    private static func builtModel() -> Model {
        let b = GraphBuilder(name: "net")
        let x = b.input("x", .float, [.symbol("N"), .known(3), .known(8), .known(8)])
        let w = b.initializer("w", Tensor(floats: (0 ..< 16 * 3 * 3 * 3).map { Float($0) * 0.5 }, shape: [16, 3, 3, 3]))
        let bias = b.initializer("b", Tensor(floats: (0 ..< 16).map { Float(-$0) }, shape: [16]))
        let conv = b.add(.conv, [x, w, bias], attributes: [
            ("kernel_shape", .ints([3, 3])), ("pads", .ints([1, 1, 1, 1])), ("auto_pad", .string("NOTSET")),
        ], name: "conv")
        let relu = b.add(.relu, [conv], name: "relu")
        let pool = b.add(.globalAveragePool, [relu], name: "pool")
        let shape = b.initializer("shape", Tensor(int64s: [-1, 16], shape: [2]))
        let flat = b.add(.reshape, [pool, shape], name: "flat")
        let w2 = b.initializer("w2", Tensor(floats: (0 ..< 16 * 300).map { Float($0 % 7) }, shape: [16, 300]))
        let bias2 = b.initializer("bias2", Tensor(floats: Array(repeating: 0.125, count: 300), shape: [300]))
        let y = b.add(.gemm, [flat, w2, bias2], attributes: [("alpha", .float(1)), ("transB", .int(0))], name: "fc")
        y.type = .tensor(.float, Shape([.symbol("N"), .known(300)]))
        b.output(y)
        let m = b.model(opset: 17)
        m.producerName = "export-tests"
        return m
    }

    private static func externalEntries(_ t: Onnx_TensorProto) -> [String: String] {
        Dictionary(t.externalData.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    private static func tensorValueInfo(_ name: String, _ dtype: DType, _ dims: [Int64], doc: String = "") -> Onnx_ValueInfoProto {
        .tensor(name, elemType: dtype.rawValue, dims: dims.map { .value($0) }, doc: doc)
    }

    /// A hand-written model `x -> Relu 'r1' -> a -> Relu 'r2' -> b -> Identity 'id' -> y` with
    /// `value_info` for `a` and `b` and doc strings everywhere, so rebuilt protos would show.
    private static func protoModel() throws -> Data {
        func node(_ name: String, _ op: String, _ input: String, _ output: String) -> Onnx_NodeProto {
            var n = Onnx_NodeProto()
            n.name = name
            n.opType = op
            n.input = [input]
            n.output = [output]
            return n
        }
        var g = Onnx_GraphProto()
        g.name = "hand"
        g.input = [tensorValueInfo("x", .float, [1, 4], doc: "the input")]
        g.node = [node("r1", "Relu", "x", "a"), node("r2", "Relu", "a", "b"), node("id", "Identity", "b", "y")]
        g.valueInfo = [tensorValueInfo("a", .float, [1, 4], doc: "after r1"), tensorValueInfo("b", .float, [1, 4], doc: "after r2")]
        g.output = [tensorValueInfo("y", .float, [1, 4], doc: "the output")]
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.producerName = "hand"
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 17
        m.opsetImport = [opset]
        m.graph = g
        return try m.serializedBytes()
    }

    private static func hiddenFiles(in dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
    }

    // MARK: - Structure

    @Test func builtModelRoundTripsStructure() throws {
        let m = Self.builtModel()
        try Verifier().verify(m)
        let again = try ModelImporter.load(serialized: ModelExporter.serialize(m), file: "net.onnx", baseDirectory: nil)
        try Verifier().verify(again)

        #expect(again.irVersion == 8)
        #expect(again.opsetImports == [OpsetImport(version: 17)])
        #expect(again.producerName == "export-tests")
        #expect(again.graph.name == "net")
        #expect(again.graph.nodes.map(\.name) == ["conv", "relu", "pool", "flat", "fc"])
        #expect(again.graph.nodes.map(\.opType) == [.conv, .relu, .globalAveragePool, .reshape, .gemm])
        #expect(again.graph.nodes.map { $0.inputs.map { $0?.name ?? "" } } == m.graph.nodes.map { $0.inputs.map { $0?.name ?? "" } })
        #expect(again.graph.nodes.map { $0.outputs.map(\.name) } == m.graph.nodes.map { $0.outputs.map(\.name) })

        let conv = try #require(again.graph.node(named: "conv"))
        #expect(conv.attributes.map(\.name) == ["kernel_shape", "pads", "auto_pad"])
        #expect(try conv.attribute("kernel_shape", as: [Int64].self) == [3, 3])
        #expect(try conv.attribute("pads", as: [Int].self) == [1, 1, 1, 1])
        #expect(try conv.attribute("auto_pad", as: String.self) == "NOTSET")
        let fc = try #require(again.graph.node(named: "fc"))
        #expect(try fc.attribute("alpha", as: Float.self) == 1)
        #expect(try fc.attribute("transB", as: Int.self) == 0)

        #expect(again.graph.initializers.map(\.name) == ["w", "b", "shape", "w2", "bias2"])
        for v in m.graph.initializers {
            let t = try #require(again.graph.value(named: v.name)?.initializer)
            #expect(t == v.initializer, "initializer \(v.name)")
        }
        #expect(again.graph.inputs.map(\.name) == ["x"])
        #expect(again.graph.inputs[0].type == .tensor(.float, Shape([.symbol("N"), .known(3), .known(8), .known(8)])))
        #expect(again.graph.outputs.map(\.name) == ["fc_out"])
        #expect(again.graph.outputs[0].type == .tensor(.float, Shape([.symbol("N"), .known(300)])))

        // Use lists are rebuilt on import.
        let relu = try #require(again.graph.value(named: "relu_out"))
        #expect(relu.uses.map(\.node.name) == ["pool"])
    }

    @Test func serializeIsStableAcrossRoundTrips() throws {
        let m = Self.builtModel()
        let first = try ModelExporter.serialize(m)
        let second = try ModelExporter.serialize(ModelImporter.load(serialized: first, file: "net.onnx", baseDirectory: nil))
        #expect(first == second)
        #expect(try Onnx_ModelProto(serializedBytes: first) == ModelExporter.proto(m))
    }

    // MARK: - External data

    @Test func externalDataIsAlignedAndReimportsIdentically() throws {
        let dir = try TestPaths.temporaryDirectory("export-ext")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = Self.builtModel()
        let url = dir.appendingPathComponent("net.onnx")
        try ModelExporter.write(m, to: url, options: ExportOptions(externalData: .all(threshold: 1024)))

        let dataURL = dir.appendingPathComponent("net.onnx.data")
        #expect(FileManager.default.fileExists(atPath: dataURL.path))
        let proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: url))
        var external: [String: (offset: Int, length: Int)] = [:]
        for t in proto.graph.initializer {
            let bytes = try #require(m.graph.value(named: t.name)?.initializer).byteCount
            if bytes >= 1024 {
                #expect(t.dataLocation == .external, "\(t.name) (\(bytes) bytes) goes external")
                #expect(!t.hasRawData)
                let e = Self.externalEntries(t)
                #expect(e["location"] == "net.onnx.data")
                let offset = try #require(e["offset"].flatMap { Int($0) })
                let length = try #require(e["length"].flatMap { Int($0) })
                #expect(offset % 4096 == 0, "\(t.name) at offset \(offset)")
                #expect(length == bytes)
                external[t.name] = (offset, length)
            } else {
                #expect(!t.hasDataLocation, "\(t.name) (\(bytes) bytes) stays inline")
                #expect(t.externalData.isEmpty)
                #expect(t.rawData.count == bytes)
            }
        }
        #expect(Set(external.keys) == ["w", "w2", "bias2"])
        // Tensors follow each other in file order, each at the next aligned offset.
        #expect(external["w"]?.offset == 0)
        #expect(external["w2"]?.offset == 4096)
        #expect(external["bias2"]?.offset == 4096 + 20480)
        let fileSize = try #require(try FileManager.default.attributesOfItem(atPath: dataURL.path)[.size] as? Int)
        #expect(fileSize == 4096 + 20480 + 1200)

        let again = try ModelImporter.load(contentsOf: url)
        try Verifier().verify(again)
        for v in m.graph.initializers {
            let t = try #require(again.graph.value(named: v.name)?.initializer)
            #expect(t.rawBytes == v.initializer?.rawBytes, "bytes of \(v.name)")
            #expect(t == v.initializer)
        }
        let w2 = try #require(again.graph.value(named: "w2")?.initializer)
        #expect(w2.external == ExternalDataReference(location: "net.onnx.data", offset: 4096, length: 19200))
        #expect(again.graph.value(named: "b")?.initializer?.external == nil)
        #expect(try Self.hiddenFiles(in: dir).isEmpty)
    }

    @Test func externalDataFileNameAndAlignmentOptions() throws {
        let dir = try TestPaths.temporaryDirectory("export-ext-opts")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = Self.builtModel()
        let url = dir.appendingPathComponent("net.onnx")
        try ModelExporter.write(m, to: url, options: ExportOptions(externalData: .all(threshold: 0), dataFileName: "weights.bin", alignment: 64))
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("weights.bin").path))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("net.onnx.data").path))
        let proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: url))
        #expect(proto.graph.initializer.allSatisfy { $0.dataLocation == .external })
        let offsets = proto.graph.initializer.compactMap { Self.externalEntries($0)["offset"].flatMap { Int($0) } }
        #expect(offsets.count == 5)
        #expect(offsets.allSatisfy { $0 % 64 == 0 })
        #expect(offsets == offsets.sorted())
        let again = try ModelImporter.load(contentsOf: url)
        for v in m.graph.initializers {
            #expect(again.graph.value(named: v.name)?.initializer == v.initializer)
        }
    }

    @Test func asImportedKeepsExternalTensorsExternal() throws {
        let dir = try TestPaths.temporaryDirectory("export-asimported")
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = dir.appendingPathComponent("a.onnx")
        try ModelExporter.write(Self.builtModel(), to: first, options: ExportOptions(externalData: .all(threshold: 1024)))
        let m = try ModelImporter.load(contentsOf: first)
        let second = dir.appendingPathComponent("b.onnx")
        try ModelExporter.write(m, to: second)
        let proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: second))
        let externalNames = proto.graph.initializer.filter { $0.dataLocation == .external }.map(\.name)
        #expect(externalNames == ["w", "w2", "bias2"])
        #expect(proto.graph.initializer.filter { $0.dataLocation == .external }.allSatisfy { Self.externalEntries($0)["location"] == "b.onnx.data" })
        let again = try ModelImporter.load(contentsOf: second)
        for v in m.graph.initializers {
            #expect(again.graph.value(named: v.name)?.initializer == v.initializer)
        }
    }

    @Test func exportOverTheSourcePathWithExternalData() throws {
        let dir = try TestPaths.temporaryDirectory("export-same-path")
        defer { try? FileManager.default.removeItem(at: dir) }
        let built = Self.builtModel()
        let url = dir.appendingPathComponent("net.onnx")
        try ModelExporter.write(built, to: url, options: ExportOptions(externalData: .all(threshold: 1024)))

        // The loaded model's external tensors are slices of the mapped data file.
        let m = try ModelImporter.load(contentsOf: url)
        #expect(m.sourceURL == url)
        #expect(m.graph.value(named: "w2")?.initializer?.external != nil)
        // Change something so the file differs, then write over the very files it maps.
        let relu = try #require(m.graph.node(named: "relu"))
        relu.name = "renamed_relu"
        let fc = try #require(m.graph.node(named: "fc"))
        fc.setAttribute("alpha", .float(2))
        try ModelExporter.write(m, to: url, options: ExportOptions(externalData: .all(threshold: 1024)))

        // The old mapping stays valid after the rename: the in-memory tensors still read right.
        for v in built.graph.initializers {
            #expect(m.graph.value(named: v.name)?.initializer?.rawBytes == v.initializer?.rawBytes, "in-memory \(v.name)")
        }
        let again = try ModelImporter.load(contentsOf: url)
        try Verifier().verify(again)
        #expect(again.graph.nodes.map(\.name) == ["conv", "renamed_relu", "pool", "flat", "fc"])
        #expect(try again.graph.node(named: "fc")?.attribute("alpha", as: Float.self) == 2)
        for v in built.graph.initializers {
            #expect(again.graph.value(named: v.name)?.initializer == v.initializer, "reloaded \(v.name)")
        }
        #expect(try Self.hiddenFiles(in: dir).isEmpty)

        // And once more with the default options (external stays external), over the same path.
        try ModelExporter.write(again, to: url)
        let third = try ModelImporter.load(contentsOf: url)
        for v in built.graph.initializers {
            #expect(third.graph.value(named: v.name)?.initializer == v.initializer, "third \(v.name)")
        }
        #expect(try Self.hiddenFiles(in: dir).isEmpty)
    }

    // MARK: - Failed writes

    @Test func writeIntoAMissingDirectoryThrowsAndLeavesNothing() throws {
        let dir = try TestPaths.temporaryDirectory("export-fail")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("missing/net.onnx")
        for options in [ExportOptions(), ExportOptions(externalData: .all(threshold: 1024))] {
            do {
                try ModelExporter.write(Self.builtModel(), to: url, options: options)
                Issue.record("writing into a missing directory succeeded")
            } catch let e as ONNXExportError {
                guard case .writeFailed(let file, _) = e else {
                    Issue.record("unexpected \(e)")
                    continue
                }
                #expect(file.hasSuffix("net.onnx") || file.hasSuffix("net.onnx.data"))
                #expect(e.description.contains("cannot write"))
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func failedRenameLeavesNoTemporaryFile() throws {
        let dir = try TestPaths.temporaryDirectory("export-fail-rename")
        defer { try? FileManager.default.removeItem(at: dir) }
        // The destination is a non-empty directory: the temp file is written, the rename fails.
        let url = dir.appendingPathComponent("net.onnx")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        try Data("x".utf8).write(to: url.appendingPathComponent("keep"))
        #expect(throws: ONNXExportError.self) { try ModelExporter.write(Self.builtModel(), to: url) }
        #expect(try Self.hiddenFiles(in: dir).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["net.onnx"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: url.path) == ["keep"])
    }

    @Test func failedModelRenameLeavesTheOldDataFile() throws {
        let dir = try TestPaths.temporaryDirectory("export-fail-data")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("net.onnx")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        try Data("x".utf8).write(to: url.appendingPathComponent("keep"))
        let dataURL = dir.appendingPathComponent("net.onnx.data")
        let oldData = Data("previous weights".utf8)
        try oldData.write(to: dataURL)

        #expect(throws: ONNXExportError.self) {
            try ModelExporter.write(Self.builtModel(), to: url, options: ExportOptions(externalData: .all(threshold: 1024)))
        }
        #expect(try Self.hiddenFiles(in: dir).isEmpty)
        // The model rename failed after the data file was renamed into place: the old data file
        // is put back, so the pair on disk stays consistent.
        #expect(try Data(contentsOf: dataURL) == oldData)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["net.onnx", "net.onnx.data"])
    }

    // MARK: - Value infos

    @Test func untouchedImportedModelIsByteIdentical() throws {
        let bytes = try Self.protoModel()
        let m = try ModelImporter.load(serialized: bytes, file: "hand.onnx", baseDirectory: nil)
        #expect(try ModelExporter.serialize(m) == bytes)
        #expect(m.graph.valueInfos.map(\.name) == ["a", "b"])
    }

    @Test func renamesAndTypeChangesShowInInputsOutputsAndValueInfo() throws {
        let bytes = try Self.protoModel()
        let original = try Onnx_ModelProto(serializedBytes: bytes)
        let m = try ModelImporter.load(serialized: bytes, file: "hand.onnx", baseDirectory: nil)
        let g = m.graph
        let x = try #require(g.value(named: "x"))
        let a = try #require(g.value(named: "a"))
        let y = try #require(g.value(named: "y"))
        x.name = "input0"
        a.type = .tensor(.float16, [1, 4])
        y.name = "result"
        #expect(g.value(named: "y") == nil)
        #expect(g.value(named: "result") === y)

        let out = try Onnx_ModelProto(serializedBytes: ModelExporter.serialize(m))
        // Renamed input: new name, everything else (doc string, type) as imported.
        #expect(out.graph.input.count == 1)
        #expect(out.graph.input[0].name == "input0")
        #expect(out.graph.input[0].docString == "the input")
        #expect(out.graph.input[0].type == original.graph.input[0].type)
        #expect(out.graph.node[0].input == ["input0"])
        // Renamed output.
        #expect(out.graph.output[0].name == "result")
        #expect(out.graph.output[0].docString == "the output")
        #expect(out.graph.node[2].output == ["result"])
        // Changed type: rebuilt type, doc string kept.
        #expect(out.graph.valueInfo.map(\.name) == ["a", "b"])
        #expect(out.graph.valueInfo[0].type.tensorType.elemType == DType.float16.rawValue)
        #expect(out.graph.valueInfo[0].type.tensorType.shape.dim.map(\.dimValue) == [1, 4])
        #expect(out.graph.valueInfo[0].docString == "after r1")
        // Untouched value info: byte-identical.
        #expect(try out.graph.valueInfo[1].serializedBytes() as Data == original.graph.valueInfo[1].serializedBytes() as Data)

        let again = try ModelImporter.load(serialized: try out.serializedBytes(), file: "hand2.onnx", baseDirectory: nil)
        try Verifier().verify(again)
        #expect(again.graph.inputs.map(\.name) == ["input0"])
        #expect(again.graph.outputs.map(\.name) == ["result"])
        #expect(again.graph.value(named: "a")?.type == .tensor(.float16, [1, 4]))
    }

    @Test func typeChangeOfAGraphInputAndOutput() throws {
        let bytes = try Self.protoModel()
        let original = try Onnx_ModelProto(serializedBytes: bytes)
        let m = try ModelImporter.load(serialized: bytes, file: "hand.onnx", baseDirectory: nil)
        let x = try #require(m.graph.value(named: "x"))
        let y = try #require(m.graph.value(named: "y"))
        x.type = .tensor(.float, Shape([.symbol("batch"), .known(4)]))
        y.type = .tensor(.float, Shape([.symbol("batch"), .known(4)]))
        let out = try Onnx_ModelProto(serializedBytes: ModelExporter.serialize(m))
        #expect(out.graph.input[0].type.tensorType.shape.dim.map(\.dimParam) == ["batch", ""])
        #expect(out.graph.input[0].type.tensorType.shape.dim[1].dimValue == 4)
        #expect(out.graph.output[0].type.tensorType.shape.dim[0].dimParam == "batch")
        #expect(out.graph.input[0].docString == "the input")
        #expect(out.graph.valueInfo == original.graph.valueInfo)
        #expect(try out.graph.valueInfo.map { try $0.serializedBytes() as Data } == original.graph.valueInfo.map { try $0.serializedBytes() as Data })
    }

    @Test func removedNodeOutputIsDroppedFromValueInfo() throws {
        let bytes = try Self.protoModel()
        let original = try Onnx_ModelProto(serializedBytes: bytes)
        let m = try ModelImporter.load(serialized: bytes, file: "hand.onnx", baseDirectory: nil)
        let g = m.graph
        // Bypass r2: id reads a, then r2 (producing b) goes.
        let a = try #require(g.value(named: "a"))
        let b = try #require(g.value(named: "b"))
        b.replaceAllUses(with: a)
        try g.remove(try #require(g.node(named: "r2")))

        let out = try Onnx_ModelProto(serializedBytes: ModelExporter.serialize(m))
        #expect(out.graph.node.map(\.name) == ["r1", "id"])
        #expect(out.graph.node[1].input == ["a"])
        #expect(out.graph.valueInfo.map(\.name) == ["a"])
        #expect(try out.graph.valueInfo[0].serializedBytes() as Data == original.graph.valueInfo[0].serializedBytes() as Data)
        let again = try ModelImporter.load(serialized: try out.serializedBytes(), file: "hand2.onnx", baseDirectory: nil)
        try Verifier().verify(again)
        #expect(again.graph.valueInfos.map(\.name) == ["a"])
    }

    @Test func valueInfoNamingNothingIsKept() throws {
        var p = try Onnx_ModelProto(serializedBytes: Self.protoModel())
        p.graph.valueInfo.append(Self.tensorValueInfo("orphan", .int64, [2], doc: "names no value"))
        let bytes = try p.serializedBytes() as Data
        let m = try ModelImporter.load(serialized: bytes, file: "hand.onnx", baseDirectory: nil)
        #expect(m.graph.valueInfos.map(\.name) == ["a", "b", "orphan"])
        #expect(try ModelExporter.serialize(m) == bytes)
    }
}
