import Foundation
import PruneRuntime
import Testing

/// float16 and bfloat16 models in the interpreter: bert and llama converted by
/// scripts/convert_half.py (float16: onnxruntime's converter; bfloat16: ours), both with float32
/// inputs and outputs, run by `prunec run` on the calibration inputs. Their outputs must agree
/// with the float32 model's within the narrow type's precision, and the float16 ones with
/// onnxruntime's run of the same float16 file (onnxruntime's CPU provider has no bfloat16 kernels).
@Suite struct HalfPrecisionTests {
    struct Case: CustomStringConvertible, Sendable {
        let model: String
        let dtype: String
        var description: String { "\(model).\(dtype)" }
        /// Allowed max |half - float32| as a fraction of max |float32|: a few roundings of the
        /// narrow type through the layers (float16 has 11 significant bits, bfloat16 8).
        var tolerance: Double { dtype == "fp16" ? 1e-2 : 5e-2 }
    }

    static let cases = ["bert", "llama"].flatMap { m in ["fp16", "bf16"].map { Case(model: m, dtype: $0) } }

    static func outputs(_ path: String) throws -> [String: [Double]] {
        var out: [String: [Double]] = [:]
        for (name, array) in try NPZ.read(contentsOf: URL(fileURLWithPath: path)) { out[name] = array.doubles() }
        return out
    }

    @Test(arguments: cases)
    func agreesWithFloat32(_ c: Case) throws {
        guard let python = OracleTests.python else {
            Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
            return
        }
        let dir = try CLI.temporaryDirectory("half-\(c)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = "examples/models/\(c.model).onnx", inputs = "examples/models/\(c.model).calib.npz"
        let half = dir.appendingPathComponent("\(c).onnx").path
        let convert = try CLI.exec(URL(fileURLWithPath: python),
                                   [CLI.repoRoot.appendingPathComponent("scripts/convert_half.py").path, c.dtype, model, half])
        try #require(convert.status == 0, "convert_half.py: \(convert.stderr)")

        for set in [0, 3] {
            let pick = set > 0 ? ["--set", "\(set)"] : []
            let ref = dir.appendingPathComponent("ref.set\(set).npz").path
            let ours = dir.appendingPathComponent("ours.set\(set).npz").path
            let r32 = try CLI.run(["run", model, "--inputs", inputs, "-o", ref] + pick)
            try #require(r32.status == 0, "prunec run \(model): \(r32.stderr)")
            let r16 = try CLI.run(["run", half, "--inputs", inputs, "-o", ours] + pick)
            try #require(r16.status == 0, "prunec run \(c): \(r16.stderr)")

            let expected = try HalfPrecisionTests.outputs(ref), got = try HalfPrecisionTests.outputs(ours)
            #expect(Set(expected.keys) == Set(got.keys))
            for (name, e) in expected {
                guard let g = got[name] else { continue }
                try #require(g.count == e.count, "\(c) \(name): \(g.count) values, float32 has \(e.count)")
                let scale = e.reduce(0) { max($0, abs($1)) }
                let err = zip(g, e).reduce(0) { max($0, abs($1.0 - $1.1)) }
                #expect(err.isFinite && err <= c.tolerance * max(scale, 1e-6),
                        "\(c) set \(set) \(name): max |half - float32| = \(err), max |float32| = \(scale)")
            }

            if c.dtype == "fp16" {
                // onnxruntime on the same float16 model: both round to float16 at every node.
                let check = try CLI.exec(URL(fileURLWithPath: python), [
                    InterpreterOracleTests.script, "check", half, inputs, ours, "--rtol", "1e-2", "--atol", "1e-2",
                ] + pick, in: CLI.repoRoot)
                #expect(check.status == 0, "\(c) set \(set) differs from onnxruntime:\n\(check.stdout)\(check.stderr)")
            }
        }
    }
}
