import Foundation
import Testing

/// `ecodiff` end to end on the example denoisers: it removes at least the asked fraction of the
/// prunable head+FFN parameters, the folded model passes onnx.checker and runs in onnxruntime,
/// and its held-out final-latent drift is lower than magnitude pruning's at the same sparsity.
@Suite struct EcoDiffTests {
    typealias Case = PassCase

    /// The DiT runs the defaults; the UNet (50× the MACs) a shorter schedule, to keep debug CI fast.
    static let cases = [
        Case(model: "dit", options: "sparsity=0.2"),
        Case(model: "unet", options: "sparsity=0.2,steps=8,denoise-steps=3,samples=2,holdout=2"),
    ]

    func prunableHeadAndFFNParams(_ model: String) throws -> Int {
        let r = try CLI.run(["inspect", model, "--groups", "--json", "--no-check"])
        let groups = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["groups"] as? [[String: Any]] ?? []
        return groups.filter { $0["prunable"] as? Bool == true && ["heads", "neurons"].contains($0["kind"] as? String ?? "") }
            .reduce(0) { $0 + ($1["params"] as? Int ?? 0) }
    }

    func totalParams(_ model: String) throws -> Int {
        let r = try CLI.run(["inspect", model, "--json", "--no-check"])
        return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["params"] as? Int ?? 0
    }

    @Test(arguments: cases)
    func beatsMagnitudeAndFoldsToAValidSmallerModel(_ c: Case) throws {
        let dir = try CLI.temporaryDirectory("ecodiff-\(c.model)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = "examples/models/\(c.model).onnx", calib = "examples/models/\(c.model).calib.npz"
        let out = dir.appendingPathComponent("small.onnx").path, report = dir.appendingPathComponent("r.json").path
        let prunable = try prunableHeadAndFFNParams(model)
        let total = try totalParams(model)
        // Magnitude pruning of as many head+FFN parameters, ranked globally: the baseline.
        let baseline = String(format: "magnitude{params=%.6f,kinds=heads+neurons},fold-masks", 0.2 * Double(prunable) / Double(total))
        let r = try CLI.run([model, "--pass", "ecodiff{\(c.options)}", "--pass", "fold-masks", "-o", out, "--calib", calib, "--report", report,
                             "--compare", baseline])
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { return }
        #expect(r.stderr.contains("ecodiff step 1/") && r.stderr.contains("ETA"), "progress lines: \(r.stderr.prefix(400))")
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any] ?? [:]
        let before = (j["before"] as? [String: Any])?["params"] as? Int ?? 0, after = (j["after"] as? [String: Any])?["params"] as? Int ?? 0
        #expect(prunable > 0 && Double(before - after) >= 0.2 * Double(prunable), "removed \(before - after) of \(prunable) prunable")
        let stats = ((j["passes"] as? [[String: Any]])?.first?["statistics"] as? [String: Double]) ?? [:]
        let drift = ReportDrift(j)
        print("ecodiff \(c.model): held-out final-latent drift \(stats["holdout-drift"] ?? .nan); prediction drift \(drift.result) vs magnitude \(drift.baselines); removed \(before - after) of \(prunable) prunable params")
        #expect((stats["holdout-drift"] ?? .nan).isFinite)
        #expect(drift.baselines.count == 1 && drift.result < drift.baselines[0], "drift: ecodiff \(drift.result), magnitude \(drift.baselines)")
        #expect(r.stdout.contains("holdout-drift"))
        try expectValidAndRunsInOnnxruntime(model, out, calib)
    }

    /// Time-step checkpointing: 50 denoising steps need at most 1.25× the memory of 10.
    @Test func memoryDoesNotGrowWithDenoisingSteps() throws {
        let dir = try CLI.temporaryDirectory("ecodiff-memory")
        defer { try? FileManager.default.removeItem(at: dir) }
        var peaks: [Int: Int] = [:]
        for n in [10, 50] {
            let r = try CLI.run(["examples/models/dit.onnx", "--pass", "ecodiff{steps=1,denoise-steps=\(n),samples=1,holdout=0}",
                                 "-o", dir.appendingPathComponent("o.onnx").path, "--no-validate", "--report-peak-rss"])
            #expect(r.status == 0, "\(r.stderr)")
            let line = r.stderr.split(separator: "\n").first { $0.hasPrefix("peak-rss-bytes:") }
            peaks[n] = line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        }
        let ratio = Double(peaks[50] ?? 0) / Double(max(peaks[10] ?? 1, 1))
        print("ecodiff dit peak RSS: 10 steps \(peaks[10] ?? 0) B, 50 steps \(peaks[50] ?? 0) B, ratio \(ratio)")
        #expect(ratio > 0 && ratio <= 1.25, "peak RSS 10 steps \(peaks[10] ?? 0), 50 steps \(peaks[50] ?? 0)")
    }

    @Test(arguments: [
        (["examples/models/resnet.onnx", "--pass", "ecodiff"], "no prunable group of kinds heads+neurons"),
        (["examples/models/bert.onnx", "--pass", "ecodiff{steps=1}"], "latent cannot be found"),
        (["examples/models/unet.onnx", "--pass", "ecodiff{steps=1,timestep=tau}"], "timestep=tau names no input"),
        (["examples/models/dit.onnx", "--pass", "ecodiff{steps=1,timestep=sample}"], "names the latent input"),
        (["examples/models/dit.onnx", "--pass", "ecodiff{steps=1,timestep=class_labels}"], "set schedule=vp|edm|consistency|flow"),
        (["examples/models/dit.onnx", "--pass", "ecodiff{objective=output,sample=bogus}"], "objective=output does not use"),
        (["examples/models/unet.onnx", "--pass", "ecodiff{steps=1}", "--calib", "examples/models/dit.calib.npz"], "dit.calib.npz"),
    ])
    func badInputIsAClearErrorAndWritesNothing(_ args: [String], _ message: String) throws {
        let dir = try CLI.temporaryDirectory("ecodiff-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.onnx").path
        let r = try CLI.run(args + ["-o", out])
        // An option that cannot be right is a usage error (64); data that does not fit, 65.
        #expect(r.status == (message.contains("does not use") ? 64 : 65), "\(args): \(r.stderr)")
        #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func outputObjectiveRunsOnAnyModel() throws {
        let dir = try CLI.temporaryDirectory("ecodiff-output")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["examples/models/bert.onnx", "--pass", "ecodiff{objective=output,steps=10,sparsity=0.3},fold-masks",
                             "-o", dir.appendingPathComponent("b.onnx").path, "--calib", "examples/models/bert.calib.npz"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("held-out drift (rel L2 of the outputs)"))
    }
}
