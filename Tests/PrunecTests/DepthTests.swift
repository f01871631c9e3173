import Foundation
import Testing

/// `depth` end to end: Shortened-LLaMA block removal on the example decoder (perplexity and
/// Taylor+), BK-SDM on the example UNet, and the errors.
@Suite struct DepthTests {
    func run(_ args: [String]) throws -> (CLI.Result, [String: Any], String) {
        let dir = try CLI.temporaryDirectory("depth")
        let out = dir.appendingPathComponent("out.onnx").path, report = dir.appendingPathComponent("r.json").path
        let r = try CLI.run(args + ["-o", out, "--report", report])
        let j = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report)))) as? [String: Any] ?? [:]
        return (r, j, out)
    }

    func stats(_ j: [String: Any]) -> [String: Double] {
        ((j["passes"] as? [[String: Any]])?.first?["statistics"] as? [String: Double]) ?? [:]
    }

    @Test(arguments: ["llama", "llama.dynamo"], ["ppl", "taylor"])
    func decoderLosesTwoBlocksNoWorseThanRandom(_ model: String, _ criterion: String) throws {
        let path = "examples/models/\(model).onnx", calib = "examples/models/llama.calib.npz"
        let (r, j, out) = try run([path, "--pass", "depth{blocks=2,criterion=\(criterion)}", "--calib", calib,
                                   "--compare", "depth{blocks=2,criterion=random,protect-first=0,protect-last=0}",
                                   "--compare", "depth{blocks=2,criterion=last,protect-first=0,protect-last=0}"])
        defer { try? FileManager.default.removeItem(at: URL(fileURLWithPath: out).deletingLastPathComponent()) }
        #expect(r.status == 0, "\(r.stderr)")
        let s = stats(j)
        #expect(s["blocks-removed"] == 2)
        let before = s["ppl-before"] ?? .nan, after = s["ppl-after"] ?? .nan
        let drift = ReportDrift(j)
        print("depth \(model) \(criterion): held-out perplexity \(before) → \(after); logits drift \(drift.result); random 2, last 2: \(drift.baselines)")
        #expect(after.isFinite && before.isFinite && drift.baselines.count == 2)
        #expect(drift.result <= drift.baselines[0], "criterion \(criterion): drift \(drift.result) vs random \(drift.baselines[0])")
        #expect(r.stdout.contains("depth{blocks=2,criterion=random,") && r.stdout.contains("depth{blocks=2,criterion=last,"))
        let p0 = (j["before"] as? [String: Any])?["params"] as? Int ?? 0, p1 = (j["after"] as? [String: Any])?["params"] as? Int ?? 0
        #expect(p0 - p1 == Int(s["params-removed"] ?? -1), "params \(p0) → \(p1), removed \(s["params-removed"] ?? -1)")
        try expectValidAndRunsInOnnxruntime(path, out, calib)
    }

    @Test func unetBKSDMRemovesTheMidBlockAndAnUpStageAttention() throws {
        let path = "examples/models/unet.onnx", calib = "examples/models/unet.calib.npz"
        let (r, j, out) = try run([path, "--pass", "depth{preset=bk-sdm}", "--calib", calib])
        defer { try? FileManager.default.removeItem(at: URL(fileURLWithPath: out).deletingLastPathComponent()) }
        #expect(r.status == 0, "\(r.stderr)")
        let s = stats(j)
        #expect(s["blocks-removed"] == 4)
        let p0 = (j["before"] as? [String: Any])?["params"] as? Int ?? 0, p1 = (j["after"] as? [String: Any])?["params"] as? Int ?? 0
        // What `inspect --groups` lists for the four blocks: mid_block resnets.0/1 (82,112 each, with
        // their time-embedding projections), the mid attention (86,976), up_blocks.1 attentions.1 (22,944).
        #expect(p0 - p1 == 82_112 * 2 + 86_976 + 22_944, "params \(p0) → \(p1)")
        #expect(Int(s["params-removed"] ?? 0) == p0 - p1)
        let drift = (j["drift"] as? [String: [String: Any]])?["out_sample"]?["rel_l2"] as? Double ?? .nan
        #expect(drift.isFinite && drift > 0 && (s["drift-after"] ?? .nan).isFinite)
        try expectValidAndRunsInOnnxruntime(path, out, calib)
    }

    @Test(arguments: [
        (["examples/models/unet.onnx", "--pass", "depth{criterion=ppl}"], "needs a causal LM"),
        (["examples/models/llama.onnx", "--pass", "depth{blocks=3}"], "only 2 of the 4 residual blocks"),
        (["examples/models/unet.dynamo.onnx", "--pass", "depth{preset=bk-sdm}"], "diffusers module names"),
        (["examples/models/resnet.onnx", "--pass", "depth{protect-first=2,protect-last=2}"], "are protected"),
    ])
    func badRequestsAreClearErrorsAndWriteNothing(_ args: [String], _ message: String) throws {
        let dir = try CLI.temporaryDirectory("depth-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(args + ["-o", dir.appendingPathComponent("o.onnx").path])
        #expect(r.status == 65, "\(args): \(r.stderr)")
        #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
