import Foundation
import Testing

/// `distill` end to end: recovery of the example UNet after `depth{preset=bk-sdm}` and of the
/// example encoder after 40% head/neuron pruning, determinism for a seed, `--teacher`, and the
/// errors. The budgets are small (a few dozen steps) so each case stays well under a minute in a
/// debug build; the factors asserted are what such a budget reaches with margin.
@Suite(.serialized) struct DistillTests {
    func run(_ args: [String], label: String = "distill") throws -> (CLI.Result, [String: Any], URL) {
        let dir = try CLI.temporaryDirectory(label)
        let out = dir.appendingPathComponent("out.onnx").path, report = dir.appendingPathComponent("r.json").path
        let r = try CLI.run(args + ["-o", out, "--report", report])
        let j = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report)))) as? [String: Any] ?? [:]
        return (r, j, dir)
    }

    /// The statistics of the pass named `name` in the report.
    func stats(_ j: [String: Any], _ name: String) -> [String: Double] {
        let passes = (j["passes"] as? [[String: Any]]) ?? []
        return (passes.first { ($0["pass"] as? String)?.hasPrefix(name) == true }?["statistics"] as? [String: Double]) ?? [:]
    }

    func table(_ title: String, _ s: [String: Double]) -> String {
        var t = "\(title)\n| held-out vs teacher | before distill | after distill |\n|---|---|---|\n"
        for (label, key) in [("loss", "heldout-loss"), ("output MSE", "heldout-mse"), ("rel L2", "heldout-rel-l2"), ("cosine", "heldout-cosine")] {
            t += "| \(label) | \(String(format: "%.4g", s["\(key)-before"] ?? .nan)) | \(String(format: "%.4g", s["\(key)-after"] ?? .nan)) |\n"
        }
        return t
    }

    @Test func unetAfterBKSDMDriftsLessToTheOriginal() throws {
        let started = Date()
        let (r, j, dir) = try run(["examples/models/unet.onnx", "--pass", "depth{preset=bk-sdm}",
                                   "--pass", "distill{steps=16,lr=0.0003,eval-every=8}", "--calib", "examples/models/unet.calib.npz"])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(r.status == 0, "\(r.stderr)")
        let s = stats(j, "distill")
        print(table("distill on unet after depth{preset=bk-sdm} (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)", s))
        let before = s["heldout-mse-before"] ?? .nan, after = s["heldout-mse-after"] ?? .nan
        #expect(after * 1.5 <= before, "held-out latent MSE \(before) → \(after)")
        #expect(r.stderr.contains("distill step"), "progress lines on stderr")
        try expectValidAndRunsInOnnxruntime("examples/models/unet.onnx", dir.appendingPathComponent("out.onnx").path, "examples/models/unet.calib.npz")
    }

    @Test func bertAfterHeadNeuronPruningDriftsLessToTheOriginal() throws {
        let started = Date()
        let (r, j, dir) = try run(["examples/models/bert.onnx", "--pass", "magnitude{sparsity=0.4,kinds=heads+neurons}", "--pass", "fold-masks",
                                   "--pass", "distill{steps=80,eval-every=10}", "--calib", "examples/models/bert.calib.npz"])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(r.status == 0, "\(r.stderr)")
        let s = stats(j, "distill")
        print(table("distill on bert after magnitude{sparsity=0.4,kinds=heads+neurons},fold-masks (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)", s))
        let before = s["heldout-rel-l2-before"] ?? .nan, after = s["heldout-rel-l2-after"] ?? .nan
        #expect(after * 1.5 <= before, "held-out rel L2 \(before) → \(after)")
        #expect((s["heldout-cosine-after"] ?? 0) > (s["heldout-cosine-before"] ?? 1))
        #expect((s["feature-points"] ?? 0) > 0, "residual block outputs keep their width after fold-masks")
    }

    @Test func sameSeedSameWeightsAndTeacherOption() throws {
        // Prune first, then distill the pruned model with --teacher naming the original.
        let (p, _, pdir) = try run(["examples/models/bert.onnx", "--pass", "magnitude{sparsity=0.4,kinds=heads+neurons}", "--pass", "fold-masks",
                                    "--no-validate"], label: "distill-prune")
        defer { try? FileManager.default.removeItem(at: pdir) }
        #expect(p.status == 0, "\(p.stderr)")
        let pruned = pdir.appendingPathComponent("out.onnx").path
        var outputs: [Data] = []
        for _ in 0..<2 {
            let (r, j, dir) = try run([pruned, "--teacher", "examples/models/bert.onnx", "--pass", "distill{steps=6,eval-every=3,train=lora,rank=2}",
                                       "--calib", "examples/models/bert.calib.npz", "--seed", "7"])
            defer { try? FileManager.default.removeItem(at: dir) }
            #expect(r.status == 0, "\(r.stderr)")
            #expect((stats(j, "distill")["heldout-loss-after"] ?? .nan) <= (stats(j, "distill")["heldout-loss-before"] ?? .nan))
            outputs.append((try? Data(contentsOf: dir.appendingPathComponent("out.onnx"))) ?? Data())
        }
        #expect(!outputs[0].isEmpty && outputs[0] == outputs[1], "same --seed, same weights")
    }

    @Test(arguments: [
        (["examples/models/bert.onnx", "--pass", "distill{steps=2}"], "needs calibration data"),
        (["examples/models/resnet.onnx", "--teacher", "examples/models/bert.onnx", "--pass", "distill{steps=2}", "--calib", "examples/models/resnet.calib.npz"],
         "output 'last_hidden_state'"),
    ])
    func badInputIsAClearErrorAndWritesNothing(_ args: [String], _ message: String) throws {
        let dir = try CLI.temporaryDirectory("distill-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(args + ["-o", dir.appendingPathComponent("o.onnx").path])
        #expect(r.status == 65, "\(args): \(r.stderr)")
        #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
