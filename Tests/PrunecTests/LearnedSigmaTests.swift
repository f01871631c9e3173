import Foundation
import Testing

/// Denoisers whose output is the prediction and a learned variance on the channel axis (DiT-XL/2,
/// PixArt: twice the latent's channels). The example DiT is given a second half of channels
/// (`Concat(out, 0.5 · out)`); ecodiff with no options must find the latent, sample with the first
/// half, and choose exactly the units it chooses on the plain DiT. It used to crash.
@Suite struct LearnedSigmaTests {
    @Test func ecodiffUsesTheFirstHalfOfTheChannels() throws {
        guard let python = OracleTests.python else {
            Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
            return
        }
        let dir = try CLI.temporaryDirectory("learned-sigma")
        defer { try? FileManager.default.removeItem(at: dir) }
        let sigma = dir.appendingPathComponent("dit.sigma.onnx").path
        let script = """
            import onnx, sys
            from onnx import helper, TensorProto
            m = onnx.load(sys.argv[1])
            g = m.graph
            out = g.output[0]
            g.initializer.append(helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]))
            g.node.append(helper.make_node("Mul", [out.name, "half"], ["variance"]))
            g.node.append(helper.make_node("Concat", [out.name, "variance"], ["eps_and_variance"], axis=1))
            dims = [d.dim_value for d in out.type.tensor_type.shape.dim]
            dims[1] *= 2
            g.output.pop()
            g.output.append(helper.make_tensor_value_info("eps_and_variance", TensorProto.FLOAT, dims))
            onnx.checker.check_model(m, full_check=True)
            onnx.save(m, sys.argv[2])
            """
        let w = try CLI.exec(URL(fileURLWithPath: python), ["-c", script, "examples/models/dit.onnx", sigma], in: CLI.repoRoot)
        try #require(w.status == 0, "\(w.stderr)")

        let options = "ecodiff{steps=4,samples=1,denoise-steps=4}"
        var removed: [String] = []
        for (model, tag) in [("examples/models/dit.onnx", "plain"), (sigma, "sigma")] {
            let out = dir.appendingPathComponent("\(tag).small.onnx").path
            let r = try CLI.run([model, "--pass", options, "--pass", "fold-masks", "-o", out, "--calib", "examples/models/dit.calib.npz"])
            #expect(r.status == 0, "\(tag): \(r.stderr)")
            let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("ecodiff") }.map(String.init) ?? ""
            // The pass's statistics (units removed, fit, loss, drift) without its wall time.
            let stats = line.components(separatedBy: "  ").filter { $0.contains("removed") }.joined()
            removed.append(stats.components(separatedBy: ", ").filter { !$0.hasPrefix("seconds") }.joined(separator: ", "))
            #expect(FileManager.default.fileExists(atPath: out))
        }
        #expect(removed.count == 2 && !removed[0].isEmpty && removed[0] == removed[1], "plain vs learned sigma: \(removed)")

        // The mission's command, no options at all.
        let small = dir.appendingPathComponent("default.onnx").path
        let d = try CLI.run([sigma, "--pass", "ecodiff", "--pass", "fold-masks", "-o", small, "--calib", "examples/models/dit.calib.npz"])
        #expect(d.status == 0, "\(d.stderr)")
    }

    /// A latent named with sample= whose shape matches neither the prediction nor half of it is an
    /// error that says so (exit 65), never a crash.
    @Test func aMismatchedLatentIsAnError() throws {
        let dir = try CLI.temporaryDirectory("learned-sigma-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.onnx").path
        let r = try CLI.run(["examples/models/dit.onnx", "--pass", "ecodiff{steps=1,sample=class_labels,timestep=timestep}", "-o", out,
                             "--calib", "examples/models/dit.calib.npz"])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("does not match the prediction") || r.stderr.contains("class_labels"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
