import Foundation
import Testing

/// `ld-pruner` end to end on the example encoder, UNet and DiT: with `fold-masks` it makes a
/// smaller model that passes onnx.checker and runs in onnxruntime, and the pass statistics give
/// its held-out drift next to magnitude pruning's at the same sparsity.
@Suite struct LDPrunerTests {
    typealias Case = PassCase

    /// The encoder and the DiT run the defaults (7 samples, × 3 timesteps for the DiT). The UNet
    /// (50× the DiT's MACs, 1,024 units, most of whose masked reruns recompute the whole up path)
    /// scores its heads and channels on 2 samples at one timestep, to keep debug CI fast; its
    /// 896 FFN neurons are in `make bench-ldpruner`.
    static let cases = [
        Case(model: "bert", options: "sparsity=0.2"),
        Case(model: "dit", options: "sparsity=0.2"),
        Case(model: "unet", options: "sparsity=0.2,samples=2,timesteps=1,kinds=heads+channels"),
    ]

    @Test(arguments: cases)
    func foldsToAValidSmallerModelAndReportsDriftBesideMagnitude(_ c: Case) throws {
        let dir = try CLI.temporaryDirectory("ld-pruner-\(c.model)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = "examples/models/\(c.model).onnx", calib = "examples/models/\(c.model).calib.npz"
        let out = dir.appendingPathComponent("small.onnx").path, report = dir.appendingPathComponent("r.json").path
        let r = try CLI.run([model, "--pass", "ld-pruner{\(c.options)}", "--pass", "fold-masks", "-o", out, "--calib", calib, "--report", report,
                             "--compare", "magnitude{\(c.options.split(separator: ",").filter { !$0.hasPrefix("timesteps") && !$0.hasPrefix("samples") && !$0.hasPrefix("holdout") }.joined(separator: ","))},fold-masks"])
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { return }
        #expect(r.stderr.contains("ld-pruner: scored ") && r.stderr.contains("ETA"), "progress lines: \(r.stderr.prefix(600))")
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any] ?? [:]
        let before = (j["before"] as? [String: Any])?["params"] as? Int ?? 0, after = (j["after"] as? [String: Any])?["params"] as? Int ?? 0
        #expect(after > 0 && after < before, "params \(before) → \(after)")
        let stats = ((j["passes"] as? [[String: Any]])?.first?["statistics"] as? [String: Double]) ?? [:]
        let ld = stats["holdout-drift"] ?? .nan, mag = ReportDrift(j).baselines.first ?? .nan
        print("ld-pruner \(c.model): held-out drift \(ld) vs magnitude \(mag) at the same sparsity; params \(before) → \(after); "
              + "\(Int(stats["units-scored"] ?? 0)) units, \(Int(stats["evaluations"] ?? 0)) masked runs in \(stats["scoring-seconds"] ?? 0) s, "
              + "recomputed fraction \(stats["recomputed-fraction"] ?? 1)")
        #expect(ld.isFinite && mag.isFinite && ld > 0 && mag > 0, "drift \(ld), magnitude \(mag)")
        #expect((stats["units-scored"] ?? 0) > 0 && (stats["evaluations"] ?? 0) > 0)
        #expect((stats["recomputed-fraction"] ?? 1) < 1, "reuse recomputes only part of the steps")
        #expect(r.stdout.contains("holdout-drift") && r.stdout.contains("compared with"))
        try expectValidAndRunsInOnnxruntime(model, out, calib)
    }

    /// Whole residual blocks: `kinds=blocks` removes round(sparsity × blocks) of them.
    @Test func removesResidualBlocks() throws {
        let dir = try CLI.temporaryDirectory("ld-pruner-blocks")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("b.onnx").path, report = dir.appendingPathComponent("r.json").path
        let r = try CLI.run(["examples/models/bert.onnx", "--pass", "ld-pruner{kinds=blocks,sparsity=0.25},fold-masks", "-o", out,
                             "--calib", "examples/models/bert.calib.npz", "--report", report])
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { return }
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any] ?? [:]
        let stats = ((j["passes"] as? [[String: Any]])?.first?["statistics"] as? [String: Double]) ?? [:]
        #expect((stats["blocks-removed"] ?? 0) >= 1, "\(stats)")
        #expect((stats["holdout-drift"] ?? .nan).isFinite, "\(stats)")
    }

    @Test(arguments: [
        ("ld-pruner{samples=0}", "must be from 1 to 4096"),
        ("ld-pruner{timesteps=0}", "must be from 1 to 1000"),
        ("ld-pruner{kinds=rows}", "unknown kind 'rows'"),
        ("ld-pruner{estimate=fast}", "estimate"),
        ("ld-pruner{estimate=exact,exact=0.5}", "is the share of units rerun by estimate=shortlist"),
        ("ld-pruner{estimate=exact,projections=8}", "which estimate=exact does not make"),
        ("ld-pruner{projections=0}", "must be from 1 to 1024"),
        ("ld-pruner{exact=1.5}", "exact"),
    ])
    func badOptionsAreClearErrors(_ pipeline: String, _ message: String) throws {
        let dir = try CLI.temporaryDirectory("ld-pruner-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["examples/models/bert.onnx", "--pass", pipeline, "-o", dir.appendingPathComponent("o.onnx").path])
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "\(pipeline): \(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
