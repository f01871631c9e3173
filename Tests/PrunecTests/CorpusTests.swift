import Foundation
import Testing

/// The transformer variants of examples/models/corpus (grouped-query and multi-query decoders,
/// biases, relative position, fp16/bf16 conversions, onnxruntime-fused graphs, opset 23), each
/// checked end to end by scripts/oracle/corpus_check.py: heads (kv groups) and FFN neurons found
/// per layer, the interpreter equal to onnxruntime, `magnitude{sparsity=0.3}` + `fold-masks`
/// accepted by onnx.checker and onnxruntime and equal to the masked model at two sequence lengths,
/// element types unchanged.
@Suite struct CorpusTests {
    static let corpus = CLI.repoRoot.appendingPathComponent("examples/models/corpus")

    static var models: [String] {
        guard let data = try? Data(contentsOf: corpus.appendingPathComponent("manifest.json")),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let models = json["models"] as? [[String: Any]]
        else { return [] }
        return models.compactMap { $0["file"] as? String }.sorted()
    }

    @Test func theCorpusIsThere() {
        #expect(CorpusTests.models.count >= 20, "examples/models/corpus/manifest.json lists \(CorpusTests.models.count) models")
    }

    @Test(arguments: models)
    func endToEnd(model: String) throws {
        try expectOracleChecksPass(script: "scripts/oracle/corpus_check.py", model: model)
    }

    /// Where no head group can be pruned, a heads-only pipeline exits 65, names a blocked group
    /// and why, and writes nothing.
    @Test func noHeadsIsAnError() throws {
        let dir = try CLI.temporaryDirectory("corpus-blocked")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.onnx").path
        let r = try CLI.run(["examples/models/resnet.onnx", "--pass", "magnitude{sparsity=0.3,kinds=heads}", "-o", out, "--no-validate"])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("no prunable group of kinds heads") && r.stderr.contains("blocked; e.g. '"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
