import Foundation
import PruneRuntime
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

    /// The example decoder's calibration rows (8 sets of [1, 16]) as one [8, 16] batch, in a new
    /// folder; `rows` keeps the first rows only, `ids` replaces every id.
    func oneBatch(rows: Int = 8, ids: Int64? = nil) throws -> (URL, String) {
        let entries = try TensorData.load(CLI.repoRoot.appendingPathComponent("examples/models/llama.calib.npz"))
        let keys = ["input_ids"] + (1...7).map { "set\($0).input_ids" }
        var values: [Int64] = []
        for key in keys.prefix(rows) {
            values += try #require(entries.first { $0.name == key }).array.scalars(as: Int64.self)
        }
        if let ids { values = values.map { _ in ids } }
        let dir = try CLI.temporaryDirectory("depth-batch")
        let url = dir.appendingPathComponent("batch.npz")
        try NPZ.write([(name: "input_ids", array: NDArray(values, shape: [rows, 16]))], to: url)
        return (dir, url.path)
    }

    /// What the depth line says it removes.
    func removed(_ stderr: String) -> String {
        stderr.split(separator: "\n").first { $0.contains("depth: held-out") }.map { String($0.split(separator: "removing").last ?? "") } ?? "none"
    }

    @Test func rowsOfOneBatchAreSamplesAsSetsOfOneAre() throws {
        let (dir, batch) = try oneBatch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = "examples/models/llama.onnx"
        let (r1, j1, out1) = try run([path, "--pass", "depth{blocks=1,criterion=ppl}", "--calib", batch, "--no-validate"])
        let (r8, j8, out8) = try run([path, "--pass", "depth{blocks=1,criterion=ppl}", "--calib", "examples/models/llama.calib.npz", "--no-validate"])
        for out in [out1, out8] { try? FileManager.default.removeItem(at: URL(fileURLWithPath: out).deletingLastPathComponent()) }
        #expect(r1.status == 0 && r8.status == 0, "\(r1.stderr)\n\(r8.stderr)")
        #expect(r1.stderr.contains("batch.npz: 1 set of 8 rows → 8 samples"), "\(r1.stderr)")
        let (s1, s8) = (stats(j1), stats(j8))
        // Held-out perplexity of real rows (not 1), the same whichever way the rows are grouped.
        let before = s1["ppl-before"] ?? .nan
        #expect(before.isFinite && abs(before - 1) > 1e-3, "\(s1)")
        #expect(s1["ppl-before"] == s8["ppl-before"] && s1["ppl-after"] == s8["ppl-after"], "\(s1) vs \(s8)")
        #expect(removed(r1.stderr) == removed(r8.stderr) && removed(r1.stderr) != "none", "\(r1.stderr)\n\(r8.stderr)")
        print("depth llama, one [8, 16] batch: held-out perplexity \(before) → \(s1["ppl-after"] ?? .nan), removing\(removed(r1.stderr))")
    }

    @Test func aLayerUnitRemovesAttentionAndMLPTogether() throws {
        let path = "examples/models/llama.onnx", calib = "examples/models/llama.calib.npz"
        let (r, j, out) = try run([path, "--pass", "depth{unit=layer,search=greedy,blocks=1,protect-first=0,criterion=ppl}", "--calib", calib])
        defer { try? FileManager.default.removeItem(at: URL(fileURLWithPath: out).deletingLastPathComponent()) }
        #expect(r.status == 0, "\(r.stderr)")
        let s = stats(j)
        #expect(s["units-removed"] == 1 && s["blocks-removed"] == 2 && s["candidates"] == 1, "\(s)")
        #expect(r.stderr.contains("depth: 2 units of 4 residual blocks (2 attention blocks paired with the block after them)"), "\(r.stderr)")
        // Layer 0, the one candidate (layer 1 is protected): its attention Add and its MLP Add.
        #expect(removed(r.stderr).contains("layers.0/Add\"") && removed(r.stderr).contains("layers.0/Add_1\""), "\(r.stderr)")
        try expectValidAndRunsInOnnxruntime(path, out, calib)
    }

    @Test func tooFewSamplesForTheHoldoutOrNoPositionIsAnError() throws {
        let (dir, one) = try oneBatch(rows: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = "examples/models/llama.onnx", out = dir.appendingPathComponent("o.onnx").path
        let r = try CLI.run([path, "--pass", "depth{blocks=1,criterion=ppl}", "--calib", one, "-o", out])
        #expect(r.status == 65 && r.stderr.contains("holdout=2") && r.stderr.contains("has 1 sample"), "\(r.stderr)")
        for pipeline in ["depth{blocks=1,criterion=drift,holdout=1}", "ld-pruner{sparsity=0.2,holdout=1}", "autobot{flops=0.3,steps=1,holdout=1}"] {
            let r = try CLI.run([path, "--pass", pipeline, "--calib", one, "-o", out])
            #expect(r.status == 65 && r.stderr.contains("holdout=1") && r.stderr.contains("has 1 sample"), "\(pipeline): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        // holdout=0: the report is on the scoring sample itself.
        let r0 = try CLI.run([path, "--pass", "depth{blocks=1,criterion=ppl,holdout=0}", "--calib", one, "-o", out + ".0.onnx"])
        #expect(r0.status == 0 && r0.stderr.contains("depth: in-sample (holdout=0) perplexity"), "\(r0.stderr)")
        // Targets outside the vocabulary predict nothing: an error, not a perplexity of exp(0) = 1.
        let (dir2, none) = try oneBatch(ids: -1)
        defer { try? FileManager.default.removeItem(at: dir2) }
        let rn = try CLI.run([path, "--pass", "depth{blocks=1,criterion=ppl}", "--calib", none, "-o", out])
        #expect(rn.status == 65 && rn.stderr.contains("perplexity needs sequences of at least 2 tokens"), "\(rn.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test(arguments: [
        (["examples/models/unet.onnx", "--pass", "depth{criterion=ppl}"], "needs a causal LM"),
        (["examples/models/llama.onnx", "--pass", "depth{blocks=3}"], "only 2 of the 4 residual blocks"),
        (["examples/models/unet.dynamo.onnx", "--pass", "depth{preset=bk-sdm}"], "diffusers module names"),
        (["examples/models/resnet.onnx", "--pass", "depth{protect-first=2,protect-last=2}"], "are protected"),
        (["examples/models/llama.onnx", "--pass", "depth{unit=layer}"], "all 2 units (unit=layer) are protected"),
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
