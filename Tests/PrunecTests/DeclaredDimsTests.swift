import Foundation
import Testing

/// Inputs as converters declare them: paddle2onnx writes a dynamic dim as `dim_value: -1`, which
/// onnxruntime runs at any size; prunec must too (it used to refuse: "dimension 0 must be -1").
/// It also writes `dim_param: "?"` for every unknown dim (so `[N, 3, ?, ?]` is no promise that
/// height equals width), and other converters write `dim_value: 0` in outputs and `value_info`,
/// which onnxruntime merges leniently with what it infers.
@Suite struct DeclaredDimsTests {
    @Test func aMinusOneDimIsDynamic() throws {
        let dir = try CLI.temporaryDirectory("declared-dims")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try Self.edited("""
            d = m.graph.input[0].type.tensor_type.shape.dim[0]
            d.Clear(); d.dim_value = -1
            """, as: "resnet.minus1.onnx", in: dir)
        try Self.expectRunMatchesOnnxruntime(model, in: dir)
        // inspect shows the dim as dynamic, not as -1.
        let i = try CLI.run(["inspect", model, "--no-check", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(i.stdout.utf8)) as? [String: Any]
        let shape = ((json?["inputs"] as? [[String: Any]])?.first?["shape"] as? [String]) ?? []
        #expect(i.status == 0 && shape.count == 4 && shape[0] != "-1" && shape[1...] == ["3", "32", "32"], "\(shape)")
    }

    /// `prunec run` on the resnet calibration data gives onnxruntime's outputs for `model`.
    static func expectRunMatchesOnnxruntime(_ model: String, in dir: URL) throws {
        let python = try #require(OracleTests.python, "oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
        let out = dir.appendingPathComponent("out.npz").path
        let r = try CLI.run(["run", model, "--inputs", "examples/models/resnet.calib.npz", "-o", out])
        try #require(r.status == 0, "\(r.stderr)")
        let check = try CLI.exec(URL(fileURLWithPath: python), [
            InterpreterOracleTests.script, "check", model, "examples/models/resnet.calib.npz", out,
        ], in: CLI.repoRoot)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
    }

    /// Edits examples/models/resnet.onnx with `script` (Python; `m` is the loaded model) into `dir`.
    static func edited(_ script: String, as name: String, in dir: URL) throws -> String {
        let python = try #require(OracleTests.python, "oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
        let model = dir.appendingPathComponent(name).path
        let code = "import onnx, sys\nfrom onnx import shape_inference\nm = onnx.load(sys.argv[1])\n" + script + "\nonnx.save(m, sys.argv[2])\n"
        let w = try CLI.exec(URL(fileURLWithPath: python), ["-c", code, "examples/models/resnet.onnx", model], in: CLI.repoRoot)
        try #require(w.status == 0, "\(w.stderr)")
        return model
    }

    /// `dim_value: 0` in the graph output and in every `value_info` is dynamic: the model runs
    /// like onnxruntime runs it, inspect shows the output's batch as dynamic, and it prunes.
    @Test func aZeroDimInOutputsAndValueInfoIsDynamic() throws {
        let dir = try CLI.temporaryDirectory("declared-zero")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try Self.edited("""
            m = shape_inference.infer_shapes(m)
            for vi in list(m.graph.value_info) + list(m.graph.output):
                d = vi.type.tensor_type.shape.dim[0]
                d.Clear(); d.dim_value = 0
            assert len(m.graph.value_info) > 10
            """, as: "resnet.zero.onnx", in: dir)
        try Self.expectRunMatchesOnnxruntime(model, in: dir)
        let i = try CLI.run(["inspect", model, "--no-check", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(i.stdout.utf8)) as? [String: Any]
        let shape = ((json?["outputs"] as? [[String: Any]])?.first?["shape"] as? [String]) ?? []
        #expect(i.status == 0 && shape.count == 2 && shape[0] != "0" && shape[1] == "10", "\(shape)")
        let pruned = dir.appendingPathComponent("pruned.onnx").path
        let p = try CLI.run([model, "--pass", "magnitude{sparsity=0.3}", "--pass", "fold-masks", "-o", pruned,
                             "--calib", "examples/models/resnet.calib.npz"])
        #expect(p.status == 0, "\(p.stderr)")
    }

    /// A graph input declared `dim_value: 0` is an empty tensor, as onnxruntime reads it (it refuses
    /// to feed it any other size): prunec refuses a batch of 1 too, naming the dim.
    @Test func aZeroDimInAGraphInputStaysZero() throws {
        let dir = try CLI.temporaryDirectory("declared-zero-input")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try Self.edited("""
            d = m.graph.input[0].type.tensor_type.shape.dim[0]
            d.Clear(); d.dim_value = 0
            """, as: "resnet.zero-input.onnx", in: dir)
        let r = try CLI.run(["run", model, "--inputs", "examples/models/resnet.calib.npz", "-o", dir.appendingPathComponent("o.npz").path])
        #expect(r.status == 65 && r.stderr.contains("dimension 0 must be 0"), "exit \(r.status): \(r.stderr)")
    }

    /// `dim_param: "?"` on both height and width is two unknown dims, not one symbol: a 32x48
    /// image runs (the interpreter used to refuse: "dimension 3 ('?') is 48, but 'input' gave '?' = 32").
    @Test func aQuestionMarkDimIsNotASymbol() throws {
        let dir = try CLI.temporaryDirectory("declared-question")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try Self.edited("""
            for d in m.graph.input[0].type.tensor_type.shape.dim[2:]:
                d.Clear(); d.dim_param = "?"
            """, as: "resnet.question.onnx", in: dir)
        let python = try #require(OracleTests.python)
        let inputs = dir.appendingPathComponent("in.npz").path
        let g = try CLI.exec(URL(fileURLWithPath: python), [InterpreterOracleTests.script, "inputs", model, inputs, "--shape", "input=1x3x32x48"], in: CLI.repoRoot)
        try #require(g.status == 0, "\(g.stderr)")
        let out = dir.appendingPathComponent("out.npz").path
        let r = try CLI.run(["run", model, "--inputs", inputs, "-o", out])
        try #require(r.status == 0, "\(r.stderr)")
        let check = try CLI.exec(URL(fileURLWithPath: python), [InterpreterOracleTests.script, "check", model, inputs, out], in: CLI.repoRoot)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
    }
}
