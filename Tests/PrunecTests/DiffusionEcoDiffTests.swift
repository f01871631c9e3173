import Foundation
import Testing

/// The mission's command on every denoiser family of examples/models/diffusion, with no pass
/// options: `prunec MODEL --pass ecodiff --pass fold-masks -o small.onnx`. The process is read
/// from the pipeline's scheduler config or the graph (the log names it), the result is a valid
/// smaller model, and the final samples of its sampling runs drift less from the original's than
/// magnitude pruning's at the same number of head+FFN parameters.
@Suite struct DiffusionEcoDiffTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let folder: String
        let file: String
        /// What the log must say of the resolved process.
        let process: String
        var testDescription: String { folder }
    }

    static let cases = [
        Case(folder: "dit-sigma", file: "transformer/model.onnx", process: "vp, epsilon prediction, linear betas, ddim (from"),
        Case(folder: "flux", file: "transformer/model.onnx", process: "flow, velocity prediction, shift 1.58, timestep fed as t×1"),
        Case(folder: "edm", file: "unet/model.onnx", process: "edm, epsilon prediction, preconditioning outside"),
        Case(folder: "consistency", file: "unet/model.onnx", process: "consistency, epsilon prediction, preconditioning outside"),
        Case(folder: "edm-precond", file: "unet/model.onnx", process: "edm, x0 prediction, preconditioning inside"),
        Case(folder: "unet2d-condition", file: "unet/model.onnx", process: "vp, epsilon prediction, scaled-linear betas, ddim (from"),
    ]

    @Test(arguments: cases)
    func ecodiffWithNoOptionsBeatsMagnitudeOnFinalSamples(_ c: Case) throws {
        let dir = try CLI.temporaryDirectory("ecodiff-corpus")
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = "examples/models/diffusion/\(c.folder)"
        let model = "\(base)/\(c.file)", calib = "\(base)/calib.npz"
        let out = dir.appendingPathComponent("small.onnx").path, report = dir.appendingPathComponent("r.json").path
        let helper = EcoDiffTests()
        let prunable = try helper.prunableHeadAndFFNParams(model), total = try helper.totalParams(model)
        let baseline = String(format: "magnitude{params=%.6f,kinds=heads+neurons},fold-masks", 0.2 * Double(prunable) / Double(total))
        let r = try CLI.run([model, "--pass", "ecodiff", "--pass", "fold-masks", "-o", out, "--calib", calib, "--report", report, "--compare", baseline, "--sampling-runs", "4"])
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { return }
        #expect(r.stderr.contains(c.process), "\(c.folder): \(r.stderr.split(separator: "\n").first { $0.contains("denoiser") } ?? "")")
        if c.folder == "dit-sigma" { #expect(r.stderr.contains("learned variance")) }
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any] ?? [:]
        let sampling = try #require(j["sampling"] as? [String: Any], "no final-sample validation in the report")
        let own = sampling["rel_l2"] as? Double ?? .nan
        let magnitude = ((j["compare"] as? [[String: Any]])?.first?["sampling_rel_l2"] as? Double) ?? .nan
        let before = (j["before"] as? [String: Any])?["params"] as? Int ?? 0, after = (j["after"] as? [String: Any])?["params"] as? Int ?? 0
        print("ecodiff \(c.folder): final-sample rel L2 \(own) vs magnitude \(magnitude); params \(before) → \(after)")
        // 0.2 of the prunable parameters, less the few weights two removed units share (counted once).
        #expect(Double(before - after) >= 0.19 * Double(prunable), "removed \(before - after) of \(prunable) prunable")
        #expect(own < magnitude, "\(c.folder): ecodiff \(own), magnitude \(magnitude)")
        try expectValidAndRunsInOnnxruntime(model, out, calib)
    }

    /// Literally the mission's command: no calibration data either (the conditioning is
    /// synthesized; an unconditional UNet needs none).
    @Test func theMissionCommandAsIs() throws {
        let dir = try CLI.temporaryDirectory("ecodiff-mission")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("small.onnx").path
        let r = try CLI.run(["examples/models/diffusion/unet2d/unet/model.onnx", "--pass", "ecodiff", "--pass", "fold-masks", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("final samples: rel L2"), "\(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: out))
    }
}
