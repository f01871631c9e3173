import Foundation
import Testing

/// The interpreter against onnxruntime on whole models: every example model, on its calibration
/// inputs (two of the sets), and at a second batch size and sequence length where the model's
/// dims are symbolic. `prunec run` writes the outputs; scripts/oracle/ort_run.py runs
/// onnxruntime (in the venv `make test` makes) and compares to rtol 1e-4 / atol 1e-5.
@Suite struct InterpreterOracleTests {
    static var models: [String] {
        let dir = CLI.repoRoot.appendingPathComponent("examples/models")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return files.filter { $0.hasSuffix(".onnx") }.sorted()
    }

    static let script = CLI.repoRoot.appendingPathComponent("scripts/oracle/ort_run.py").path

    /// Runs prunec on `inputs` and checks its outputs against onnxruntime's.
    func check(model: String, inputs: String, set: Int, in dir: URL) throws {
        guard let python = OracleTests.python else {
            Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
            return
        }
        let out = dir.appendingPathComponent("\(model).set\(set).npz").path
        var args = ["run", "examples/models/\(model)", "--inputs", inputs, "-o", out]
        if set > 0 { args += ["--set", "\(set)"] }
        let ours = try CLI.run(args)
        try #require(ours.status == 0, "prunec run \(model): \(ours.stderr)")
        var check = [InterpreterOracleTests.script, "check", "examples/models/\(model)", inputs, out]
        if set > 0 { check += ["--set", "\(set)"] }
        let r = try CLI.exec(URL(fileURLWithPath: python), check, in: CLI.repoRoot)
        #expect(r.status == 0, "\(model) (inputs \(inputs), set \(set)) differs from onnxruntime:\n\(r.stdout)\(r.stderr)")
    }

    static func calibration(of model: String) -> String {
        "examples/models/\(model.split(separator: ".").first!).calib.npz"
    }

    @Test(arguments: models)
    func calibrationInputs(model: String) throws {
        let dir = try CLI.temporaryDirectory("oracle-run")
        defer { try? FileManager.default.removeItem(at: dir) }
        for set in [0, 3] {
            try check(model: model, inputs: InterpreterOracleTests.calibration(of: model), set: set, in: dir)
        }
    }

    /// Models whose inputs have symbolic dims run again at another batch size and length.
    @Test(arguments: ["bert.onnx", "bert.dynamo.onnx"])
    func otherBatchAndSequence(model: String) throws {
        guard let python = OracleTests.python else {
            Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
            return
        }
        let dir = try CLI.temporaryDirectory("oracle-dims")
        defer { try? FileManager.default.removeItem(at: dir) }
        let inputs = dir.appendingPathComponent("inputs.npz").path
        let r = try CLI.exec(URL(fileURLWithPath: python), [
            InterpreterOracleTests.script, "inputs", "examples/models/\(model)", inputs,
            "--dim", "batch=3", "--dim", "sequence=23", "--seed", "7",
            "--like", InterpreterOracleTests.calibration(of: model),
        ], in: CLI.repoRoot)
        try #require(r.status == 0, "\(r.stderr)")
        try check(model: model, inputs: inputs, set: 0, in: dir)
    }
}
