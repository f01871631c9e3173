import Foundation
import Testing

/// The compile command end to end: the report, the drift gate, and bad input that must leave
/// nothing behind.
@Suite struct CompileTests {
    static let resnet = "examples/models/resnet.onnx"

    func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
    }

    @Test func readmeCommandPrunesAndReports() throws {
        let dir = try CLI.temporaryDirectory("compile-readme")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("bert.pruned.onnx").path
        let report = dir.appendingPathComponent("report.json").path
        let r = try CLI.run([
            "examples/models/bert.onnx", "--pass", "magnitude{sparsity=0.3}", "--pass", "fold-masks", "-o", out,
            "--calib", "examples/models/bert.calib.npz", "--report", report,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: out))
        #expect(r.stdout.contains("params") && r.stdout.contains("rel L2") && r.stdout.contains("fold-masks"))
        #expect(r.stderr.contains("prunec: magnitude{sparsity=0.3}:"))
        let j = try json(report)
        for key in ["before", "after", "drift", "passes", "pipeline", "passed", "written"] { #expect(j[key] != nil, "missing \(key)") }
        let before = j["before"] as? [String: Any] ?? [:], after = j["after"] as? [String: Any] ?? [:]
        let p0 = before["params"] as? Int ?? 0, p1 = after["params"] as? Int ?? 0
        // bert: 1 of 4 heads (Q/K/V columns, O rows: 4 × 16 × 64) and 38 of 128 FFN neurons
        // (up column + down row: 2 × 64) per layer, 2 layers. The legacy exporter aliases one zero
        // bias for every Q/K/V bias (and one FFN bias for both layers) through Identity nodes; cut
        // per use, they gain copies: +2 × 48 for Q/K/V, and 2 × 90 copies replace the 128 FFN bias.
        #expect(p0 == 138_240)
        #expect(p1 == 138_240 - 2 * (4 * 16 * 64) - 2 * 38 * (2 * 64) + 2 * 48 + (2 * 90 - 128), "after params \(p1)")
        let m0 = before["macs"] as? Int ?? 0, m1 = after["macs"] as? Int ?? 0
        #expect(m0 > 0 && m1 < m0 && before["latency_ms"] is Double)
        let drift = j["drift"] as? [String: [String: Any]] ?? [:]
        #expect(Set(drift.keys) == ["last_hidden_state", "pooler_output"])
        let cos = drift["last_hidden_state"]?["cosine"] as? Double ?? 0
        #expect(cos > 0.9 && cos < 1)
        #expect((j["passes"] as? [Any])?.count == 2)
        #expect((j["inputs"] as? [String: Any])?["sets"] as? Int == 8)
    }

    @Test func driftAboveTheLimitWritesNothingAndExitsOne() throws {
        let dir = try CLI.temporaryDirectory("compile-drift")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.onnx").path
        let report = dir.appendingPathComponent("r.json").path
        let r = try CLI.run([Self.resnet, "--pass", "magnitude{sparsity=0.3},fold-masks", "-o", out, "--max-drift", "0.001", "--report", report])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(r.stderr.contains("exceeds --max-drift"))
        let j = try json(report)
        #expect(j["passed"] as? Bool == false && j["written"] as? Bool == false)
        // The same pipeline with a generous limit writes.
        let ok = try CLI.run([Self.resnet, "--pass", "magnitude{sparsity=0.3},fold-masks", "-o", out, "--max-drift", "10"])
        #expect(ok.status == 0 && FileManager.default.fileExists(atPath: out), "\(ok.stderr)")
    }

    @Test(arguments: [
        (["--pass", "magnitud{sparsity=0.3}"], Int32(64), "unknown pass 'magnitud'"),
        (["--pass", "magnitude{sparsity=1.2}"], 64, "must be between 0 and 1"),
        (["--pass", "magnitude{sparsity=100%}"], 64, "would remove everything"),
        (["--pass", "magnitude{kinds=hats}"], 64, "unknown kind 'hats'"),
        (["--pass", "magnitude{sparsty=0.3}"], 64, "has no option 'sparsty'"),
        (["--pass", "magnitude{sparsity=0.97}"], 65, "would remove all 16 units"),
        (["--pass", "magnitude{kinds=heads}"], 65, "no prunable group of kinds heads"),
        (["--pass", "magnitude", "--calib", "examples/models/bert.calib.npz"], 65, "bert.calib.npz"),
    ])
    func badPipelinesAndDataWriteNothing(_ args: [String], _ status: Int32, _ message: String) throws {
        let dir = try CLI.temporaryDirectory("compile-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.onnx").path
        let r = try CLI.run([Self.resnet, "-o", out] + args)
        #expect(r.status == status, "\(args): \(r.stderr)")
        #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "leftovers in \(dir.path)")
    }

    @Test func maskedModelIsValidAndFoldsSeparately() throws {
        let dir = try CLI.temporaryDirectory("compile-masked")
        defer { try? FileManager.default.removeItem(at: dir) }
        let masked = dir.appendingPathComponent("masked.onnx").path
        let folded = dir.appendingPathComponent("folded.onnx").path
        let a = try CLI.run(["examples/models/llama.onnx", "--pass", "magnitude{sparsity=0.5}", "-o", masked, "--calib", "examples/models/llama.calib.npz"])
        #expect(a.status == 0, "\(a.stderr)")
        let groups = try CLI.run(["inspect", masked, "--groups", "--json", "--no-check"])
        let object = try JSONSerialization.jsonObject(with: Data(groups.stdout.utf8)) as? [String: Any]
        let masks = ((object?["groups"] as? [[String: Any]]) ?? []).compactMap { $0["masked_units"] as? Int }
        // 2 of 4 heads and 64 of 128 neurons in each of 2 layers.
        #expect(masks.sorted() == [2, 2, 64, 64], "\(masks)")
        let b = try CLI.run([masked, "--pass", "fold-masks", "-o", folded])
        #expect(b.status == 0, "\(b.stderr)")
        // Folding a masked model changes nothing it computes.
        #expect(b.stdout.contains("cosine"))
        let line = b.stdout.split(separator: "\n").first { $0.hasPrefix("logits") }.map(String.init) ?? ""
        #expect(line.contains("1.000000"), "\(b.stdout)")
    }
}
