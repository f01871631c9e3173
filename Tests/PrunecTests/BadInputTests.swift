import Foundation
import ONNXProto
import PruneTestSupport
import Testing

/// Every kind of bad model gives exit code 65 and a one-line message naming the file and the
/// culprit; nothing crashes and no output file appears.
@Suite struct BadInputTests {
    /// A valid two-node model (x -> Relu -> h -> Neg -> y) to break in different ways.
    static func baseModel() -> Onnx_ModelProto {
        var m = Onnx_ModelProto(irVersion: 8, opset: 13)
        var g = Onnx_GraphProto()
        g.name = "g"
        g.input = [valueInfo("x")]
        g.output = [valueInfo("y")]
        g.node = [node("relu1", "Relu", ["x"], ["h"]), node("neg1", "Neg", ["h"], ["y"])]
        var w = Onnx_TensorProto()
        w.name = "w"
        w.dataType = 1
        w.dims = [2]
        w.floatData = [1, 2]
        g.initializer = [w]
        m.graph = g
        return m
    }

    static func valueInfo(_ name: String) -> Onnx_ValueInfoProto {
        .tensor(name, dims: [2])
    }

    static func node(_ name: String, _ op: String, _ inputs: [String], _ outputs: [String]) -> Onnx_NodeProto {
        Onnx_NodeProto(op, inputs, outputs, name: name)
    }

    /// Writes `model` as `name` in a fresh folder, runs `prunec name -o out.onnx` and checks the result.
    func expectRejected(_ bytes: Data, name: String = "bad.onnx", mentions: [String], setup: ((URL) throws -> Void)? = nil) throws {
        let dir = try CLI.temporaryDirectory("bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        try bytes.write(to: dir.appendingPathComponent(name))
        try setup?(dir)
        for args in [[name, "-o", "out.onnx"], ["inspect", name]] {
            let r = try CLI.run(args, in: dir)
            #expect(r.status == 65, "prunec \(args.joined(separator: " ")) exited \(r.status): \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "expected one line, got: \(r.stderr)")
            #expect(r.stderr.hasPrefix("error: \(name)"), "message should name the file: \(r.stderr)")
            for m in mentions { #expect(r.stderr.contains(m), "message should mention '\(m)': \(r.stderr)") }
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.onnx").path))
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        #expect(left.isEmpty, "temporary files left: \(left)")
    }

    @Test func missingFile() throws {
        let dir = try CLI.temporaryDirectory("missing")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["nope.onnx", "-o", "out.onnx"], in: dir)
        #expect(r.status == 65)
        #expect(r.stderr == "error: nope.onnx: no such file\n")
    }

    @Test func randomBytes() throws {
        var g = SystemRandomNumberGenerator()
        let bytes = Data((0 ..< 4096).map { _ in UInt8.random(in: 0 ... 255, using: &g) })
        try expectRejected(bytes, mentions: ["not a valid ONNX model"])
    }

    @Test func emptyFile() throws {
        try expectRejected(Data(), mentions: ["empty"])
    }

    @Test func truncatedModels() throws {
        let full = try Data(contentsOf: CLI.repoRoot.appendingPathComponent("examples/models/resnet.onnx"))
        for fraction in [0.1, 0.5, 0.9, 0.999] {
            let cut = full.prefix(Int(Double(full.count) * fraction))
            try expectRejected(Data(cut), name: "resnet.onnx", mentions: [])
        }
    }

    @Test func danglingValueName() throws {
        var m = Self.baseModel()
        m.graph.node[1].input = ["ghost"]
        try expectRejected(try m.serializedBytes(), mentions: ["'neg1' (Neg)", "'ghost'"])
    }

    @Test func danglingGraphOutput() throws {
        var m = Self.baseModel()
        m.graph.output = [Self.valueInfo("nowhere")]
        try expectRejected(try m.serializedBytes(), mentions: ["graph output", "'nowhere'"])
    }

    @Test func cycle() throws {
        var m = Self.baseModel()
        m.graph.node = [Self.node("a", "Add", ["x", "d"], ["c"]), Self.node("b", "Relu", ["c"], ["d"]), Self.node("n", "Neg", ["d"], ["y"])]
        try expectRejected(try m.serializedBytes(), mentions: ["cycle", "'a' (Add)"])
    }

    @Test func duplicateOutputNames() throws {
        var m = Self.baseModel()
        m.graph.node.append(Self.node("relu2", "Relu", ["x"], ["h"]))
        try expectRejected(try m.serializedBytes(), mentions: ["'h'", "'relu1' (Relu)", "'relu2' (Relu)"])
    }

    @Test func unknownElementType() throws {
        var m = Self.baseModel()
        m.graph.initializer[0].dataType = 77
        try expectRejected(try m.serializedBytes(), mentions: ["'w'", "element type 77"])
        var m2 = Self.baseModel()
        m2.graph.input[0].type.tensorType.elemType = 99
        try expectRejected(try m2.serializedBytes(), mentions: ["'x'", "element type 99"])
    }

    @Test func tensorDataOfWrongSize() throws {
        var m = Self.baseModel()
        m.graph.initializer[0].floatData = [1, 2, 3]
        try expectRejected(try m.serializedBytes(), mentions: ["'w'", "float_data holds 3"])
        var m2 = Self.baseModel()
        m2.graph.initializer[0].floatData = []
        m2.graph.initializer[0].rawData = Data(count: 7)
        try expectRejected(try m2.serializedBytes(), mentions: ["'w'", "raw_data holds 7 bytes"])
        var m3 = Self.baseModel()
        m3.graph.initializer[0].dims = [Int64.max, 4]
        try expectRejected(try m3.serializedBytes(), mentions: ["'w'"])
    }

    static func externalModel(location: String, length: Int = 8) -> Onnx_ModelProto {
        var m = baseModel()
        var w = Onnx_TensorProto()
        w.name = "w"
        w.dataType = 1
        w.dims = [2]
        w.dataLocation = .external
        w.externalData = Onnx_StringStringEntryProto.entries([("location", location), ("offset", "0"), ("length", String(length))])
        m.graph.initializer = [w]
        return m
    }

    @Test func missingExternalDataFile() throws {
        try expectRejected(try Self.externalModel(location: "weights.bin").serializedBytes(), mentions: ["'w'", "weights.bin", "does not exist"])
    }

    @Test func shortExternalDataFile() throws {
        try expectRejected(try Self.externalModel(location: "weights.bin").serializedBytes(), mentions: ["'w'", "weights.bin", "truncated"]) { dir in
            try Data(count: 5).write(to: dir.appendingPathComponent("weights.bin"))
        }
    }

    @Test func externalDataOutsideTheModelFolder() throws {
        try expectRejected(try Self.externalModel(location: "/etc/passwd").serializedBytes(), mentions: ["'w'", "absolute path"])
        try expectRejected(try Self.externalModel(location: "../secret.bin").serializedBytes(), mentions: ["'w'", "leaves the model's folder"])
        try expectRejected(try Self.externalModel(location: "link.bin").serializedBytes(), mentions: ["'w'", "outside the model's folder"]) { dir in
            let outside = dir.deletingLastPathComponent().appendingPathComponent("outside-\(UUID().uuidString).bin")
            try Data(count: 8).write(to: outside)
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("link.bin"), withDestinationURL: outside)
        }
    }

    @Test func modelWithoutGraphOrOpset() throws {
        var m = Self.baseModel()
        m.clearGraph()
        try expectRejected(try m.serializedBytes(), mentions: ["no graph"])
        var m2 = Self.baseModel()
        m2.opsetImport = []
        try expectRejected(try m2.serializedBytes(), mentions: ["opset"])
    }

    @Test func directoryInsteadOfFile() throws {
        let dir = try CLI.temporaryDirectory("dir")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("m.onnx"), withIntermediateDirectories: true)
        let r = try CLI.run(["inspect", "m.onnx"], in: dir)
        #expect(r.status == 65)
        #expect(r.stderr.contains("m.onnx"))
    }
}
