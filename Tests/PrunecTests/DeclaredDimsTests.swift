import Foundation
import Testing

/// Inputs as converters declare them: paddle2onnx writes a dynamic dim as `dim_value: -1`, which
/// onnxruntime runs at any size; prunec must too (it used to refuse: "dimension 0 must be -1").
@Suite struct DeclaredDimsTests {
    @Test func aMinusOneDimIsDynamic() throws {
        guard let python = OracleTests.python else {
            Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
            return
        }
        let dir = try CLI.temporaryDirectory("declared-dims")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("resnet.minus1.onnx").path
        let script = """
            import onnx, sys
            m = onnx.load(sys.argv[1])
            d = m.graph.input[0].type.tensor_type.shape.dim[0]
            d.Clear(); d.dim_value = -1
            onnx.save(m, sys.argv[2])
            """
        let w = try CLI.exec(URL(fileURLWithPath: python), ["-c", script, "examples/models/resnet.onnx", model], in: CLI.repoRoot)
        try #require(w.status == 0, "\(w.stderr)")
        let out = dir.appendingPathComponent("out.npz").path
        let r = try CLI.run(["run", model, "--inputs", "examples/models/resnet.calib.npz", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        // The same outputs as onnxruntime on the edited model.
        let check = try CLI.exec(URL(fileURLWithPath: python), [
            InterpreterOracleTests.script, "check", model, "examples/models/resnet.calib.npz", out,
        ], in: CLI.repoRoot)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        // inspect shows the dim as dynamic, not as -1.
        let i = try CLI.run(["inspect", model, "--no-check", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(i.stdout.utf8)) as? [String: Any]
        let shape = ((json?["inputs"] as? [[String: Any]])?.first?["shape"] as? [String]) ?? []
        #expect(i.status == 0 && shape.count == 4 && shape[0] != "-1" && shape[1...] == ["3", "32", "32"], "\(shape)")
    }
}
