import Foundation
import Testing

/// The diffusion denoisers of examples/models/diffusion (diffusers pipeline folders: UNet2DCondition
/// and UNet2D through both exporters, EDM and consistency UNets, an EDM-preconditioned UNet, DiT
/// with learned sigma, Flux), each checked end to end by scripts/oracle/diffusion_check.py: the
/// interpreter equal to onnxruntime on every calibration set; UNets have channel groups through
/// GroupNorm and lose at least a quarter of their parameters to
/// `magnitude{sparsity=0.3,kinds=channels}` + `fold-masks`, transformers have head and neuron
/// groups and shrink under `magnitude{sparsity=0.3}`; the folded model passes onnx.checker and
/// equals the masked one in onnxruntime (1e-5).
@Suite struct DiffusionCorpusTests {
    static let corpus = CLI.repoRoot.appendingPathComponent("examples/models/diffusion")

    static var manifest: [String: Any] {
        guard let data = try? Data(contentsOf: corpus.appendingPathComponent("manifest.json")),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return json
    }

    static var models: [String] {
        ((manifest["models"] as? [[String: Any]]) ?? []).compactMap { $0["file"] as? String }.sorted()
    }

    /// Every model of the brief is there, in its pipeline folder, with its scheduler config
    /// (except edm-precond, whose preconditioning is in the graph).
    @Test func theCorpusIsThere() throws {
        let files = Set(Self.models)
        for f in ["unet2d-condition/unet/model.onnx", "unet2d-condition/unet/model.dynamo.onnx", "unet2d/unet/model.onnx",
                  "unet2d/unet/model.dynamo.onnx", "dit-sigma/transformer/model.onnx", "flux/transformer/model.onnx",
                  "edm/unet/model.onnx", "consistency/unet/model.onnx", "edm-precond/unet/model.onnx"] {
            #expect(files.contains(f), "manifest.json does not list \(f)")
        }
        #expect((Self.manifest["failures"] as? [Any])?.isEmpty == true, "\(Self.manifest["failures"] ?? "")")
        let fm = FileManager.default
        for name in ["unet2d-condition", "unet2d", "dit-sigma", "flux", "edm", "consistency"] {
            let config = Self.corpus.appendingPathComponent("\(name)/scheduler/scheduler_config.json")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any], "\(name)")
            #expect(json["_class_name"] is String && json["_diffusers_version"] is String, "\(name): \(json)")
        }
        #expect(!fm.fileExists(atPath: Self.corpus.appendingPathComponent("edm-precond/scheduler").path))
    }

    @Test(arguments: models)
    func endToEnd(model: String) throws {
        try expectOracleChecksPass(script: "scripts/oracle/diffusion_check.py", model: model)
    }
}
