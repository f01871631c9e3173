import Foundation
import ONNXProto
import PruneTestSupport
import Testing

/// `prunec run` and `prunec bench` end to end.
@Suite struct RunBenchTests {
    static let resnet = "examples/models/resnet.onnx"
    static let resnetData = "examples/models/resnet.calib.npz"

    /// A model whose nodes are `(name, op)` applied in a chain from `input` (float [1,3,32,32],
    /// the shape of resnet.calib.npz) to `y`; `extraInput` adds a second float [2] input.
    static func chainModel(_ nodes: [(String, String)], extraInput: String? = nil, inputDims: [DimSpec] = [1, 3, 32, 32]) throws -> Data {
        var g = Onnx_GraphProto()
        g.name = "chain"
        g.input = [.tensor("input", dims: inputDims)]
        if let extraInput { g.input.append(.tensor(extraInput, dims: [2])) }
        g.output = [.tensor("y")]
        var previous = "input"
        for (i, (name, op)) in nodes.enumerated() {
            let out = i == nodes.count - 1 ? "y" : "t\(i)"
            g.node.append(Onnx_NodeProto(op, [previous], [out], name: name))
            previous = out
        }
        return try Onnx_ModelProto(irVersion: 8, opset: 17, graph: g).serializedBytes()
    }

    /// A fresh folder holding `files`.
    static func folder(_ label: String, _ files: [String: Data]) throws -> URL {
        let dir = try CLI.temporaryDirectory(label)
        for (name, data) in files { try data.write(to: dir.appendingPathComponent(name)) }
        return dir
    }

    static func absolute(_ path: String) -> String { CLI.repoRoot.appendingPathComponent(path).path }

    // MARK: run

    @Test func runWritesOutputsWithOutPrefix() throws {
        let dir = try Self.folder("run", ["id.onnx": try Self.chainModel([("id1", "Identity")])])
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["run", "id.onnx", "--inputs", Self.absolute(Self.resnetData), "-o", "out.npz"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        // The calibration file's set1.–set7. keys name no input: one note says so.
        #expect(r.stderr.hasPrefix("note: ") && r.stderr.contains("ignoring 7 keys") && r.stderr.contains("set1.input"), "\(r.stderr)")
        let zip = try Data(contentsOf: dir.appendingPathComponent("out.npz"))
        // Stored members: the member name and the .npy header appear verbatim.
        #expect(zip.range(of: Data("out.y.npy".utf8)) != nil)
        #expect(zip.range(of: Data("'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 32, 32)".utf8)) != nil)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        #expect(left.isEmpty, "temporary files left: \(left)")

        // --set picks another sample: a different output.
        let r3 = try CLI.run(["run", "id.onnx", "--inputs", Self.absolute(Self.resnetData), "--set", "3", "-o", "out3.npz"], in: dir)
        #expect(r3.status == 0, "\(r3.stderr)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("out3.npz")) != zip)
    }

    @Test func runPrintsASummaryWithoutOutputFile() throws {
        let dir = try Self.folder("run-summary", ["id.onnx": try Self.chainModel([("id1", "Identity"), ("id2", "Identity")])])
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["run", "id.onnx", "--inputs", Self.absolute(Self.resnetData), "--threads", "1"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("y ") })
        for s in ["float", "[1,3,32,32]", "min ", "max ", "mean "] { #expect(line.contains(s), "\(line)") }
    }

    @Test func runReadsOnnxTestDataFolders() throws {
        var t = Onnx_TensorProto()
        t.dataType = 1
        t.dims = [2]
        t.floatData = [1.5, -2]
        let model = try Self.chainModel([("id1", "Identity")], inputDims: [2])
        let dir = try Self.folder("run-pb", ["id.onnx": model])
        defer { try? FileManager.default.removeItem(at: dir) }
        let set = dir.appendingPathComponent("test_data_set_0")
        try FileManager.default.createDirectory(at: set, withIntermediateDirectories: true)
        try (t.serializedBytes() as Data).write(to: set.appendingPathComponent("input_0.pb"))
        let r = try CLI.run(["run", "id.onnx", "--inputs", "test_data_set_0"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("1.5, -2"), "\(r.stdout)")
    }

    /// Needs the Conv, BatchNormalization, Relu, Add, GlobalAveragePool, Flatten and Gemm kernels.
    @Test func resnetRunWritesLogits() throws {
        let dir = try CLI.temporaryDirectory("run-resnet")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("outputs.npz").path
        let r = try CLI.run(["run", Self.resnet, "--inputs", Self.resnetData, "-o", out])
        try #require(r.status == 0, "\(r.stderr)")
        let zip = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(zip.range(of: Data("out.logits.npy".utf8)) != nil)
        #expect(zip.range(of: Data("'shape': (1, 10)".utf8)) != nil)
    }

    @Test func missingInputExits65NamingTheInputAndFile() throws {
        // resnet wants 'input'; bert's data has input_ids and attention_mask.
        let r = try CLI.run(["run", Self.resnet, "--inputs", "examples/models/bert.calib.npz"])
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("error: examples/models/bert.calib.npz: missing input 'input'"), "\(r.stderr)")

        let dir = try Self.folder("run-missing", ["two.onnx": try Self.chainModel([("id1", "Identity")], extraInput: "scale")])
        defer { try? FileManager.default.removeItem(at: dir) }
        let two = try CLI.run(["run", "two.onnx", "--inputs", Self.absolute(Self.resnetData)], in: dir)
        #expect(two.status == 65)
        #expect(two.stderr.contains("missing input 'scale'") && two.stderr.contains("resnet.calib.npz"), "\(two.stderr)")
    }

    @Test func wrongShapeExits65() throws {
        let dir = try Self.folder("run-shape", ["id.onnx": try Self.chainModel([("id1", "Identity")], inputDims: [1, 3, 16, 16])])
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["run", "id.onnx", "--inputs", Self.absolute(Self.resnetData)], in: dir)
        #expect(r.status == 65)
        #expect(r.stderr.contains("input 'input'") && r.stderr.contains("resnet.calib.npz"), "\(r.stderr)")
    }

    @Test func unsupportedOpExits65NamingTheNode() throws {
        let dir = try Self.folder("run-det", ["det.onnx": try Self.chainModel([("id1", "Identity"), ("det_node", "Det")])])
        defer { try? FileManager.default.removeItem(at: dir) }
        for args in [["run", "det.onnx", "--inputs", Self.absolute(Self.resnetData), "-o", "out.npz"], ["bench", "det.onnx"]] {
            let r = try CLI.run(args, in: dir)
            #expect(r.status == 65, "\(args): \(r.stderr)")
            #expect(r.stderr.contains("error: det.onnx: ") && r.stderr.contains("det_node") && r.stderr.contains("Det"), "\(r.stderr)")
            #expect(!r.stderr.contains("id1"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.npz").path))
    }

    @Test func badDataAndUsageErrors() throws {
        let dir = try Self.folder("run-bad", ["id.onnx": try Self.chainModel([("id1", "Identity")]), "junk.npz": Data("not a zip".utf8)])
        defer { try? FileManager.default.removeItem(at: dir) }
        let junk = try CLI.run(["run", "id.onnx", "--inputs", "junk.npz"], in: dir)
        #expect(junk.status == 65)
        #expect(junk.stderr.hasPrefix("error: junk.npz: "), "\(junk.stderr)")
        let noInputs = try CLI.run(["run", "id.onnx"], in: dir)
        #expect(noInputs.status == 64, "\(noInputs.stderr)")
        let badShape = try CLI.run(["bench", "id.onnx", "--shape", "input=1xq"], in: dir)
        #expect(badShape.status == 64)
        let unknownShape = try CLI.run(["bench", "id.onnx", "--shape", "nope=1"], in: dir)
        #expect(unknownShape.status == 64 && unknownShape.stderr.contains("nope"))
        // compile too: a --shape that names no input is a usage error, not silently ignored.
        let compileShape = try CLI.run(["id.onnx", "--pass", "magnitude", "--shape", "nope=1", "-o", "out.onnx"], in: dir)
        #expect(compileShape.status == 64 && compileShape.stderr.contains("'nope'"), "\(compileShape.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.onnx").path))
    }

    // MARK: bench

    static let contractKeys = ["median_ms", "min_ms", "p90_ms", "run_ms", "runs", "threads", "blas_core", "per_op", "gflops", "macs",
                               "arena_bytes", "intermediate_bytes", "weight_bytes", "peak_rss_bytes"]

    static func benchJSON(_ args: [String], in dir: URL? = nil) throws -> [String: Any] {
        let r = try CLI.run(["bench"] + args + ["--json"], in: dir)
        try #require(r.status == 0, "\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let json = try #require(object, "not a JSON object: \(r.stdout)")
        for k in contractKeys { #expect(json.keys.contains(k), "missing key \(k)") }
        return json
    }

    @Test func benchJSONHasTheContractKeys() throws {
        // Symbolic dims default to 1; --shape binds them.
        let dir = try Self.folder("bench", ["id.onnx": try Self.chainModel([("id1", "Identity"), ("id2", "Identity")], inputDims: ["N", 3, 8, 8])])
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = try Self.benchJSON(["id.onnx", "--runs", "5", "--warmup", "1", "--threads", "1", "--shape", "input=2x3x8x8"], in: dir)
        #expect(json["runs"] as? Int == 5 && json["threads"] as? Int == 1)
        #expect(json["macs"] as? Int == 0)
        let perOp = try #require(json["per_op"] as? [[String: Any]])
        #expect(perOp.count == 1 && perOp[0]["op"] as? String == "Identity" && perOp[0]["calls"] as? Int == 2)
        for k in ["op", "calls", "ms", "percent"] { #expect(perOp[0].keys.contains(k)) }
        #expect((json["input_shapes"] as? [String: [Int]])?["input"] == [2, 3, 8, 8])
        let median = try #require(json["median_ms"] as? Double)
        let minimum = try #require(json["min_ms"] as? Double)
        let p90 = try #require(json["p90_ms"] as? Double)
        #expect(minimum <= median && median <= p90)
        let each = try #require(json["run_ms"] as? [Double])
        #expect(each.count == 5 && each.min() == minimum)
        #expect((json["peak_rss_bytes"] as? Int ?? 0) > 0)

        let text = try CLI.run(["bench", "id.onnx", "--runs", "2"], in: dir)
        #expect(text.status == 0, "\(text.stderr)")
        for s in ["latency", "median", "p90", "GFLOP/s", "arena", "Identity"] { #expect(text.stdout.contains(s), "\(s): \(text.stdout)") }
    }

    /// Needs the kernels resnet uses (see ``resnetRunWritesLogits()``).
    @Test func benchResnet() throws {
        let json = try Self.benchJSON([Self.resnet, "--runs", "3", "--warmup", "1"])
        #expect((json["macs"] as? Int ?? 0) > 1_000_000)
        #expect((json["gflops"] as? Double ?? 0) > 0)
        #expect((json["arena_bytes"] as? Int ?? 0) > 0)
        #expect((json["weight_bytes"] as? Int ?? 0) > 100_000)
        #expect((json["per_op"] as? [[String: Any]])?.contains { $0["op"] as? String == "Conv" } == true)
        // Data from a file works too.
        _ = try Self.benchJSON([Self.resnet, "--inputs", Self.resnetData, "--set", "2", "--runs", "2"])
    }
}
