import Foundation
import Testing

/// Conv channels of a diffusers UNet, tied by GroupNorm (exported as Reshape → InstanceNorm →
/// Reshape by both exporters): `magnitude{sparsity=0.3,kinds=channels}` + `fold-masks` removes at
/// least a quarter of the parameters, and the folded model passes onnx.checker and equals the
/// masked one in onnxruntime (scripts/oracle/prune_check.py, 1e-5).
@Suite struct UNetChannelsTests {
    @Test(arguments: ["unet.onnx", "unet.dynamo.onnx"])
    func channelsThroughGroupNormFold(model: String) throws {
        guard let python = OracleTests.python else {
            Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
            return
        }
        let dir = try CLI.temporaryDirectory("unet-channels")
        defer { try? FileManager.default.removeItem(at: dir) }
        let calib = "examples/models/unet.calib.npz"
        let masked = dir.appendingPathComponent("masked.onnx").path, folded = dir.appendingPathComponent("folded.onnx").path
        let groups = try CLI.run(["inspect", "examples/models/\(model)", "--groups", "--no-check"])
        #expect(groups.stdout.contains("13 channels"), "\(groups.stdout.prefix(300))")
        let m = try CLI.run(["examples/models/\(model)", "--pass", "magnitude{sparsity=0.3,kinds=channels}", "-o", masked, "--calib", calib, "--no-validate"])
        try #require(m.status == 0, "\(m.stderr)")
        let f = try CLI.run([masked, "--pass", "fold-masks", "-o", folded, "--calib", calib, "--no-validate"])
        try #require(f.status == 0, "\(f.stderr)")
        let check = try CLI.exec(URL(fileURLWithPath: python), [
            CLI.repoRoot.appendingPathComponent("scripts/oracle/prune_check.py").path, masked, folded, calib,
            "--set", "0", "--set", "5", "--atol", "1e-5", "--json",
        ], in: CLI.repoRoot)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any] ?? [:]
        let params = j["params"] as? [Int] ?? []
        let original = try CLI.run(["inspect", "examples/models/\(model)", "--json", "--no-check"])
        let before = (try JSONSerialization.jsonObject(with: Data(original.stdout.utf8)) as? [String: Any])?["params"] as? Int ?? 0
        #expect(params.count == 2 && before > 0 && Double(before - params[1]) >= 0.25 * Double(before), "params \(before) → \(params)")
    }
}
