import Foundation
import Testing

/// `autobot{flops=0.5}` on the example CNN and encoder: the folded model keeps 50% ± 2% of the
/// MACs, passes onnx.checker and runs in onnxruntime, and agrees with the original on held-out
/// inputs better than magnitude pruning at the same MACs (ld-pruner reported beside them).
@Suite struct AutoBotTests {
    /// Magnitude pruning that keeps at least as many MACs: a MACs target where the pass can count
    /// them (the CNN's shapes are static), half of every group's units for the encoder (its
    /// sequence length is symbolic, so a flops target has no MACs to count).
    static let baselines = ["resnet": "magnitude{flops=0.5},fold-masks", "bert": "magnitude{sparsity=0.5},fold-masks"]

    @Test(arguments: ["resnet", "bert"])
    func meetsTheMACsTargetAndBeatsMagnitude(_ name: String) throws {
        let dir = try CLI.temporaryDirectory("autobot-\(name)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = "examples/models/\(name).onnx", calib = "examples/models/\(name).calib.npz"
        let out = dir.appendingPathComponent("small.onnx").path, report = dir.appendingPathComponent("r.json").path
        let r = try CLI.run([model, "--pass", "autobot{flops=0.5}", "--pass", "fold-masks", "-o", out, "--calib", calib, "--report", report,
                             "--compare", Self.baselines[name] ?? ""])
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { return }
        #expect(r.stderr.contains("autobot step 1/") && r.stderr.contains("ETA"))
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any] ?? [:]
        let m0 = (j["before"] as? [String: Any])?["macs"] as? Int ?? 0, m1 = (j["after"] as? [String: Any])?["macs"] as? Int ?? 0
        let kept = Double(m1) / Double(max(m0, 1))
        #expect(abs(kept - 0.5) <= 0.02, "\(name): kept \(kept) of the MACs (\(m0) → \(m1))")
        let s = ((j["passes"] as? [[String: Any]])?.first?["statistics"] as? [String: Double]) ?? [:]
        let drift = ReportDrift(j)
        let magnitudeMACs = ((j["compare"] as? [[String: Any]])?.first?["macs"] as? Int).map { Double($0) / Double(max(m0, 1)) } ?? .nan
        print("autobot \(name): held-out cosine \(s["holdout-cosine"] ?? .nan), agreement \(s["holdout-agreement"] ?? .nan); "
              + "drift (rel L2) \(drift.result) vs magnitude at the same MACs \(drift.baselines) (kept \(magnitudeMACs) of the MACs)")
        #expect((s["holdout-cosine"] ?? .nan).isFinite)
        #expect(drift.baselines.count == 1 && drift.result < drift.baselines[0], "autobot \(drift.result) vs magnitude \(drift.baselines)")
        #expect(magnitudeMACs >= kept - 0.02, "the baseline removes no more MACs than autobot: kept \(magnitudeMACs) vs \(kept)")
        try expectValidAndRunsInOnnxruntime(model, out, calib)
    }
}
