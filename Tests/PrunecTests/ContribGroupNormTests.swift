import Foundation
import Testing

/// onnxruntime's fused `com.microsoft.GroupNorm` (its Stable Diffusion optimizer's output,
/// examples/models/diffusion/unet2d/unet/model.ort-unet.onnx, made by ort_fuse.py). onnxruntime's
/// CPU provider cannot run GroupNorm, so the fused graph is checked against the unfused original
/// (which DiffusionCorpusTests checks against onnxruntime): the interpreter gives the same outputs,
/// the analysis finds the same 13 channel groups through the fused norms, and channels fold with
/// `groups` rewritten, equal to the masked model.
@Suite struct ContribGroupNormTests {
    static let folder = "examples/models/diffusion/unet2d"

    func worstMaxAbs(_ report: String) throws -> Double {
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any] ?? [:]
        return ((j["drift"] as? [String: [String: Any]]) ?? [:]).values.compactMap { $0["max_abs"] as? Double }.max() ?? .nan
    }

    @Test func fusedGroupNormRunsPrunesAndFolds() throws {
        let dir = try CLI.temporaryDirectory("contrib-groupnorm")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fused = "\(Self.folder)/unet/model.ort-unet.onnx", original = "\(Self.folder)/unet/model.onnx", calib = "\(Self.folder)/calib.npz"
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

        let same = try CLI.run([fused, "--teacher", original, "--calib", calib, "--report", path("same.json"), "-o", path("copy.onnx"), "--sampling-runs", "0"])
        try #require(same.status == 0, "\(same.stderr)")
        #expect(try worstMaxAbs(path("same.json")) < 1e-4, "fused vs original")

        let groups = try CLI.run(["inspect", fused, "--groups", "--no-check"])
        #expect(groups.stdout.contains("13 channels"), "\(groups.stdout.prefix(300))")

        let m = try CLI.run([fused, "--pass", "magnitude{sparsity=0.3,kinds=channels}", "-o", path("masked.onnx"), "--calib", calib, "--no-validate"])
        try #require(m.status == 0, "\(m.stderr)")
        let f = try CLI.run([path("masked.onnx"), "--pass", "fold-masks", "-o", path("folded.onnx"), "--calib", calib,
                             "--report", path("fold.json"), "--sampling-runs", "0"])
        try #require(f.status == 0, "\(f.stderr)")
        #expect(try worstMaxAbs(path("fold.json")) < 1e-5, "folded vs masked")
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("fold.json")))) as? [String: Any] ?? [:]
        let after = (j["after"] as? [String: Any])?["params"] as? Int ?? 0
        let before = try JSONSerialization.jsonObject(with: Data(CLI.run(["inspect", fused, "--json", "--no-check"]).stdout.utf8)) as? [String: Any]
        let total = before?["params"] as? Int ?? 0
        #expect(total > 0 && Double(total - after) >= 0.25 * Double(total), "params \(total) → \(after)")
        // The folded model loads and verifies (its GroupNorm `groups` match the kept channels).
        let text = try CLI.run(["inspect", path("folded.onnx"), "--no-check"])
        #expect(text.status == 0, "\(text.stderr)")
    }
}
