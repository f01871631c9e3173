import Foundation
import Testing

/// The issue's acceptance test, on the oracles of record: for every example model (both
/// exporters) and every kind of pruning group it has, `magnitude{sparsity=0.3}` then `fold-masks`
/// gives a model that passes `onnx.checker` (full check), runs in onnxruntime, has fewer
/// parameters, and whose outputs equal the masked model's to 1e-5 on two calibration sets.
@Suite struct PruningOracleTests {
    /// The group kinds each example has (`prunec inspect --groups` lists them; checked here too).
    static let kinds: [String: [String]] = [
        "resnet": ["channels", "blocks"],
        "bert": ["heads", "neurons", "blocks"],
        "llama": ["heads", "neurons", "blocks"],
        "dit": ["heads", "neurons", "blocks"],
        "unet": ["channels", "heads", "neurons", "blocks"],
    ]

    struct Case: CustomStringConvertible, Sendable {
        let file: String
        let kind: String
        var base: String { file.replacingOccurrences(of: ".dynamo", with: "") }
        var description: String { "\(file) \(kind)" }
    }

    static let cases: [Case] = kinds.keys.sorted().flatMap { base in
        [base, "\(base).dynamo"].flatMap { file in kinds[base]!.map { Case(file: file, kind: $0) } }
    }

    /// scripts/oracle/prune_check.py on two calibration sets: onnx.checker on both models, the
    /// folded model's outputs equal to the masked one's in onnxruntime; returns [params before, after].
    static func oracle(_ python: String, _ masked: String, _ folded: String, _ calib: String, atol: Double, label: String) throws -> [Int] {
        let check = try CLI.exec(
            URL(fileURLWithPath: python),
            [CLI.repoRoot.appendingPathComponent("scripts/oracle/prune_check.py").path, masked, folded, calib,
             "--set", "0", "--set", "3", "--atol", "\(atol)", "--json"])
        #expect(check.status == 0, "\(label): \(check.stdout) \(check.stderr)")
        let result = try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any]
        return (result?["params"] as? [Int]) ?? []
    }

    @Test(arguments: cases)
    func magnitudeThenFoldMatchesTheMaskedModelInOnnxruntime(_ c: Case) throws {
        guard let python = OracleTests.python else {
            Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
            return
        }
        let dir = try CLI.temporaryDirectory("prune-\(c.file)-\(c.kind)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = "examples/models/\(c.file).onnx"
        let calib = "examples/models/\(c.base).calib.npz"
        let masked = dir.appendingPathComponent("masked.onnx").path
        let folded = dir.appendingPathComponent("folded.onnx").path

        let inspect = try CLI.run(["inspect", model, "--groups", "--json", "--no-check"])
        let object = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
        let groups = (object?["groups"] as? [[String: Any]]) ?? []
        #expect(groups.contains { $0["kind"] as? String == c.kind && $0["prunable"] as? Bool == true }, "\(c): no prunable \(c.kind) group")

        let mask = try CLI.run([model, "--pass", "magnitude{sparsity=0.3,kinds=\(c.kind)}", "-o", masked, "--no-validate"])
        #expect(mask.status == 0, "\(c): \(mask.stderr)")
        let fold = try CLI.run([masked, "--pass", "fold-masks", "-o", folded, "--no-validate"])
        #expect(fold.status == 0, "\(c): \(fold.stderr)")
        guard mask.status == 0, fold.status == 0 else { return }

        let params = try Self.oracle(python, masked, folded, calib, atol: 1e-5, label: "\(c)")
        #expect(params.count == 2 && params[1] < params[0], "\(c): params \(params)")
        // At 30% of the units, at least a tenth of the group's share must go (blocks: a whole branch).
        #expect(params.count == 2 && Double(params[0] - params[1]) > 0.01 * Double(params[0]), "\(c): params \(params)")
    }

    /// The quality pipeline (docs/QUALITY.md) on a CNN and an encoder: activation scores, the
    /// least-squares re-fit (conv biases on resnet, MatMul weights on bert), then folding. The
    /// folded model passes onnx.checker, runs in onnxruntime, equals the re-fitted masked model,
    /// and is smaller.
    @Test(arguments: [("resnet", "channels"), ("bert", "heads+neurons")])
    func fluctuationReconstructFoldInOnnxruntime(_ model: String, _ kinds: String) throws {
        guard let python = OracleTests.python else {
            Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
            return
        }
        let dir = try CLI.temporaryDirectory("quality-\(model)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = "examples/models/\(model).onnx", calib = "examples/models/\(model).calib.npz"
        let masked = dir.appendingPathComponent("masked.onnx").path, folded = dir.appendingPathComponent("folded.onnx").path
        let refit = try CLI.run([path, "--pass", "fluctuation{sparsity=0.3,kinds=\(kinds)}", "--pass", "reconstruct", "-o", masked,
                                 "--calib", calib, "--no-validate"])
        #expect(refit.status == 0, "\(refit.stderr)")
        #expect(refit.stderr.contains("reconstruct step 1/"), "\(refit.stderr)")
        let fold = try CLI.run([masked, "--pass", "fold-masks", "-o", folded, "--no-validate"])
        #expect(fold.status == 0, "\(fold.stderr)")
        guard refit.status == 0, fold.status == 0 else { return }
        let params = try Self.oracle(python, masked, folded, calib, atol: 1e-4, label: model)
        #expect(params.count == 2 && params[1] < params[0], "params \(params)")
    }
}
