import Foundation
import ONNXProto
import PruneTestSupport
import Testing

@testable import PruneIR

/// Tests of the libonnx second opinion (`LibONNX`, over the `CONNX` shim). Every model here is built
/// with the generated protobuf types, so the tests need no files.
@Suite("LibONNX")
struct LibONNXTests {
    // MARK: - Model builders

    private static func opset(_ domain: String, _ version: Int64) -> Onnx_OperatorSetIdProto {
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = domain
        opset.version = version
        return opset
    }

    private static func node(_ opType: String, _ inputs: [String], _ outputs: [String], name: String) -> Onnx_NodeProto
    {
        Onnx_NodeProto(opType, inputs, outputs, name: name)
    }

    /// `y = Relu(x)`, x and y float [2, 3].
    private static func reluModel(
        irVersion: Int64 = 8, opsetVersion: Int64 = 13, elemType: Int32 = 1, extraOpsets: [Onnx_OperatorSetIdProto] = []
    ) -> Onnx_ModelProto {
        var graph = Onnx_GraphProto()
        graph.name = "relu"
        graph.node = [node("Relu", ["x"], ["y"], name: "relu0")]
        graph.input = [Onnx_ValueInfoProto.tensor("x", elemType: elemType, dims: [.value(2), .value(3)])]
        graph.output = [Onnx_ValueInfoProto.tensor("y", elemType: elemType, dims: [.value(2), .value(3)])]
        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        model.producerName = "prunec-tests"
        model.opsetImport = [opset("", opsetVersion)] + extraOpsets
        model.graph = graph
        return model
    }

    private static func serialized(_ model: Onnx_ModelProto) throws -> Data {
        try model.serializedData()
    }

    // MARK: - What libonnx knows

    @Test func knowsAnIRVersionAndOpsets() {
        #expect(LibONNX.irVersion > 0)
        #expect((LibONNX.maxOpset(domain: "") ?? 0) >= 13)
        #expect(LibONNX.maxOpset(domain: "ai.onnx") == LibONNX.maxOpset(domain: ""))
        #expect(LibONNX.maxOpset(domain: "ai.onnx.ml") != nil)
        #expect(LibONNX.maxOpset(domain: "com.example.custom") == nil)
        #expect(!LibONNX.version.isEmpty)
        #expect(LibONNX.maxModelBytes == Int(Int32.max))
    }

    @Test func applicabilityComparesIRVersionAndKnownDomains() throws {
        let ir = LibONNX.irVersion
        let opset = try #require(LibONNX.maxOpset(domain: ""))
        #expect(LibONNX.applicability(irVersion: ir, opsets: ["": opset]) == nil)
        #expect(LibONNX.applicability(irVersion: ir, opsets: ["ai.onnx": opset, "com.example.custom": 99]) == nil)

        let newerIR = try #require(LibONNX.applicability(irVersion: ir + 1, opsets: ["": opset]))
        #expect(newerIR.contains("IR version \(ir + 1)"))

        // "ai.onnx" is the default domain, spelled out.
        let newerOpset = try #require(LibONNX.applicability(irVersion: ir, opsets: ["ai.onnx": opset + 1]))
        #expect(newerOpset.contains("ai.onnx \(opset + 1)"))
        #expect(LibONNX.applicability(irVersion: ir, opsets: ["": opset, "ai.onnx": opset + 1]) != nil)
    }

    // MARK: - Checker

    @Test(arguments: [false, true])
    func validReluModelPasses(fullCheck: Bool) throws {
        let model = Self.reluModel()
        let bytes = try Self.serialized(model)
        #expect(LibONNX.check(serializedModel: bytes, irVersion: 8, opsets: ["": 13], fullCheck: fullCheck) == .passed)
        #expect(LibONNX.check(serializedModel: bytes, fullCheck: fullCheck) == .passed)
    }

    @Test func customDomainImportIsChecked() throws {
        let model = Self.reluModel(extraOpsets: [Self.opset("com.example.custom", 1)])
        #expect(LibONNX.check(serializedModel: try Self.serialized(model), fullCheck: true) == .passed)
    }

    @Test func undefinedInputFailsNamingIt() throws {
        var model = Self.reluModel()
        model.graph.node.append(Self.node("Add", ["y", "not_defined_anywhere"], ["z"], name: "add0"))
        model.graph.output = [Onnx_ValueInfoProto.tensor("z", dims: [.value(2), .value(3)])]
        let result = LibONNX.check(serializedModel: try Self.serialized(model), fullCheck: false)
        guard case .failed(let message) = result else {
            Issue.record("expected a failure, got \(result)")
            return
        }
        #expect(message.contains("not_defined_anywhere"))
    }

    @Test func typeErrorFailsOnlyTheFullCheck() throws {
        // Relu-13 takes floating-point tensors only: the checker proper does not look at types,
        // strict shape inference with type checking does.
        let bytes = try Self.serialized(Self.reluModel(elemType: 6))  // INT32
        #expect(LibONNX.check(serializedModel: bytes, fullCheck: false) == .passed)
        guard case .failed(let message) = LibONNX.check(serializedModel: bytes, fullCheck: true) else {
            Issue.record("expected the full check to fail")
            return
        }
        #expect(message.contains("Relu"))
    }

    @Test func garbageBytesFailToParse() {
        // Field 7 (graph), length 16, but only one byte follows.
        let garbage = Data([0x3a, 0x10, 0x01])
        guard case .failed(let message) = LibONNX.check(serializedModel: garbage, fullCheck: false) else {
            Issue.record("expected a parse failure")
            return
        }
        #expect(message.contains("parse"))
        #expect(
            LibONNX.inferShapes(serializedModel: garbage)
                == .failure(
                    .parseFailed(
                        "libprotobuf could not parse the bytes as an onnx.ModelProto")))
    }

    @Test func emptyBytesAreAModelWithoutIRVersion() {
        // An empty buffer is a valid, empty ModelProto: libonnx rejects it, it does not crash.
        guard case .failed = LibONNX.check(serializedModel: Data(), fullCheck: false) else {
            Issue.record("expected a failure")
            return
        }
    }

    @Test func newerModelIsSkippedWhenLibONNXIsOlder() throws {
        let model = Self.reluModel(irVersion: 10, opsetVersion: 21)
        let bytes = try Self.serialized(model)
        let known = try #require(LibONNX.maxOpset(domain: ""))
        let gated = LibONNX.check(serializedModel: bytes, irVersion: 10, opsets: ["": 21], fullCheck: true)
        let read = LibONNX.check(serializedModel: bytes, fullCheck: true)
        if LibONNX.irVersion < 10 || known < 21 {
            guard case .skipped(let reason) = gated else {
                Issue.record("expected a skip, got \(gated)")
                return
            }
            #expect(reason.contains(LibONNX.irVersion < 10 ? "IR version 10" : "ai.onnx 21"))
            #expect(read == gated)
            guard case .failure(.notApplicable) = LibONNX.inferShapes(serializedModel: bytes) else {
                Issue.record("expected shape inference to be not applicable")
                return
            }
        } else {
            #expect(gated == .passed)
            #expect(read == .passed)
        }
    }

    @Test func unknownOpsetIsSkippedThoughLibONNXWouldPassIt() throws {
        // libonnx's checker itself accepts an opset it does not know (it falls back to the newest
        // schema it has), so the gate is what keeps its verdict meaningful.
        let known = try #require(LibONNX.maxOpset(domain: ""))
        let model = Self.reluModel(irVersion: Int64(LibONNX.irVersion), opsetVersion: Int64(known + 50))
        guard case .skipped(let reason) = LibONNX.check(serializedModel: try Self.serialized(model), fullCheck: true)
        else {
            Issue.record("expected a skip")
            return
        }
        #expect(reason.contains("ai.onnx \(known + 50)"))
    }

    @Test func oversizedModelIsSkippedWithoutReadingIt() {
        // 2 GiB of zeros: calloc'd pages that are never touched.
        let huge = Data(count: LibONNX.maxModelBytes + 1)
        guard case .skipped(let reason) = LibONNX.check(serializedModel: huge, fullCheck: false) else {
            Issue.record("expected a skip")
            return
        }
        #expect(reason.contains("2147483648 bytes"))
    }

    @Test func modelOver64MBParses() throws {
        // protobuf's old 64 MB default limit must not apply.
        var model = Self.reluModel()
        var weight = Onnx_TensorProto()
        weight.name = "w"
        weight.dataType = 2  // UINT8
        weight.dims = [70 << 20]
        weight.rawData = Data(repeating: 1, count: 70 << 20)
        model.graph.initializer = [weight]
        let bytes = try Self.serialized(model)
        #expect(bytes.count > 64 << 20)
        #expect(LibONNX.check(serializedModel: bytes, fullCheck: false) == .passed)
    }

    @Test func concurrentChecksAgree() async throws {
        let good = try Self.serialized(Self.reluModel())
        var broken = Self.reluModel()
        broken.graph.node[0].input = ["nowhere"]
        let bad = try Self.serialized(broken)
        let results = await withTaskGroup(of: (Bool, LibONNXResult).self) { group in
            for index in 0..<16 {
                let expectPass = index.isMultiple(of: 2)
                group.addTask {
                    (expectPass, LibONNX.check(serializedModel: expectPass ? good : bad, fullCheck: true))
                }
            }
            var all: [(Bool, LibONNXResult)] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.count == 16)
        for (expectPass, result) in results {
            #expect((result == .passed) == expectPass)
        }
    }

    // MARK: - Files and external data

    /// The Relu model plus an initializer stored as external data at `location`.
    private static func externalDataModel(location: String) -> Onnx_ModelProto {
        var model = reluModel()
        var weight = Onnx_TensorProto()
        weight.name = "w"
        weight.dataType = 1
        weight.dims = [4]
        weight.dataLocation = .external
        weight.externalData = Onnx_StringStringEntryProto.entries([("location", location)])
        model.graph.initializer = [weight]
        return model
    }

    @Test func modelFileFindsExternalDataBesideIt() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("libonnx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let location = "weights-\(UUID().uuidString).bin"
        let model = Self.externalDataModel(location: location)
        let modelURL = folder.appendingPathComponent("model.onnx")
        try Self.serialized(model).write(to: modelURL)
        try Data(count: 16).write(to: folder.appendingPathComponent(location))

        #expect(LibONNX.check(modelAt: modelURL, irVersion: 8, opsets: ["": 13], fullCheck: true) == .passed)

        // From bytes, libonnx looks for the location in the current directory instead.
        guard case .failed(let fromBytes) = LibONNX.check(serializedModel: try Self.serialized(model), fullCheck: false)
        else {
            Issue.record("expected the bytes check to miss the external data")
            return
        }
        #expect(fromBytes.contains(location))

        try FileManager.default.removeItem(at: folder.appendingPathComponent(location))
        guard
            case .failed(let missing) = LibONNX.check(
                modelAt: modelURL, irVersion: 8, opsets: ["": 13], fullCheck: false)
        else {
            Issue.record("expected a failure for missing external data")
            return
        }
        #expect(missing.contains(location))
    }

    @Test func missingModelFileFails() {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID().uuidString).onnx")
        guard case .failed(let message) = LibONNX.check(modelAt: url, irVersion: 8, opsets: ["": 13], fullCheck: true)
        else {
            Issue.record("expected a failure")
            return
        }
        #expect(message.contains("Unable to open"))
    }

    // MARK: - Header

    @Test func headerReadsIRVersionAndOpsetsOnly() throws {
        let model = Self.reluModel(
            irVersion: 9, opsetVersion: 18, extraOpsets: [Self.opset("ai.onnx.ml", 3), Self.opset("com.x", 1)])
        let header = try #require(LibONNX.Header(serialized: try Self.serialized(model)))
        #expect(header == LibONNX.Header(irVersion: 9, opsets: ["": 18, "ai.onnx.ml": 3, "com.x": 1]))
        #expect(LibONNX.Header(serialized: Data([0x3a, 0x10, 0x01])) == nil)
        #expect(LibONNX.Header(serialized: Data([0x08])) == nil)  // truncated varint
        #expect(LibONNX.Header(serialized: Data()) == LibONNX.Header(irVersion: 0, opsets: [:]))
    }

    // MARK: - Shape inference

    @Test func inferShapesFillsValueInfoAndOutputs() throws {
        // x [N, 3] -> Relu -> h -> Relu -> y; h and the untyped output y get inferred.
        var model = Self.reluModel()
        model.graph.node = [
            Self.node("Relu", ["x"], ["h"], name: "relu0"),
            Self.node("Relu", ["h"], ["y"], name: "relu1"),
        ]
        model.graph.input = [Onnx_ValueInfoProto.tensor("x", dims: [.param("N"), .value(3)])]
        var untypedOutput = Onnx_ValueInfoProto()
        untypedOutput.name = "y"
        model.graph.output = [untypedOutput]

        let inferredBytes = try LibONNX.inferShapes(serializedModel: try Self.serialized(model)).get()
        let inferred = try Onnx_ModelProto(serializedBytes: inferredBytes)

        let hidden = try #require(inferred.graph.valueInfo.first { $0.name == "h" })
        #expect(hidden.type.tensorType.elemType == 1)
        #expect(hidden.type.tensorType.shape.dim.map(\.dimParam) == ["N", ""])
        #expect(hidden.type.tensorType.shape.dim.map(\.dimValue) == [0, 3])

        let output = try #require(inferred.graph.output.first { $0.name == "y" })
        #expect(output.type.tensorType.elemType == 1)
        #expect(output.type.tensorType.shape.dim.map(\.dimParam) == ["N", ""])
        #expect(output.type.tensorType.shape.dim.map(\.dimValue) == [0, 3])
    }

    @Test func inferShapesReportsInferenceErrors() throws {
        // Declared output shape [2, 4] conflicts with the inferred [2, 3].
        var model = Self.reluModel()
        model.graph.output = [Onnx_ValueInfoProto.tensor("y", dims: [.value(2), .value(4)])]
        guard
            case .failure(.inferenceFailed(let message)) = LibONNX.inferShapes(
                serializedModel: try Self.serialized(model))
        else {
            Issue.record("expected an inference error")
            return
        }
        #expect(!message.isEmpty)
    }
}
