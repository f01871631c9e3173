import Foundation
import PruneIR
import PruneKit
import PruneRuntime
import PruneTestSupport
import Testing

/// Whole-model gradients of the example UNet and DiT (both exporters) against a finite-difference
/// probe: for `L = ⟨w, out⟩` with random `w`, the directional derivative along a random direction,
/// for the latent input and for the gates of every head and FFN group. The models are float32,
/// so the probe uses a central difference with step 1e-2 and a relative tolerance of 2%.
struct ModelGradientTests {
    @Test(arguments: ["unet", "unet.dynamo", "dit", "dit.dynamo"])
    func directionalDerivativesMatchFiniteDifferences(_ name: String) throws {
        let model = try ModelImporter.load(contentsOf: TestPaths.examples.appendingPathComponent("\(name).onnx"))
        let gates = try TrainableGates(model: model, kinds: [.heads, .neurons])
        let interp = try Interpreter(model: gates.trainingModel, options: .init(threads: 2, profile: false))
        let calib = try CalibrationData.load(TestPaths.examples.appendingPathComponent("\(name.split(separator: ".")[0]).calib.npz"),
                                             for: model, note: { _ in })
        var rng = NoiseSource(seed: 21)
        // Gates away from 1 so every head and neuron matters to the output.
        let values = gates.groups.map { g in (0..<g.unitCount).map { _ in 0.5 + 0.5 * rng.uniform() } }
        var feeds = calib[1].merging(gates.feeds(values)) { a, _ in a }
        let tape = try interp.runRecording(feeds)
        let out = try #require(tape.outputs["out_sample"])
        let w = rng.normal(out.shape, dtype: out.dtype)
        let grads = try tape.backward(seeds: ["out_sample": w], wrt: ["sample"] + gates.inputNames)
        func loss(_ f: [String: NDArray]) throws -> Double {
            let y = try interp.run(f)["out_sample"]!
            return zip(GateMath.values(y), GateMath.values(w)).reduce(0) { $0 + $1.0 * $1.1 }
        }
        // Probe 1: the latent.
        let x = try #require(feeds["sample"])
        let d = GateMath.values(rng.normal(x.shape, dtype: x.dtype))
        let gx = GateMath.values(try #require(grads["sample"]))
        let analytic = zip(gx, d).reduce(0) { $0 + $1.0 * $1.1 }
        let h = 1e-2
        var plus = feeds, minus = feeds
        plus["sample"] = GateMath.array(zip(GateMath.values(x), d).map { $0 + h * $1 }, like: x)
        minus["sample"] = GateMath.array(zip(GateMath.values(x), d).map { $0 - h * $1 }, like: x)
        let numeric = (try loss(plus) - loss(minus)) / (2 * h)
        #expect(abs(analytic - numeric) <= 0.02 * max(abs(numeric), 1e-3), "\(name) latent: \(analytic) vs \(numeric)")
        // Probe 2: all gates at once.
        let dirs = gates.groups.map { g in (0..<g.unitCount).map { _ in rng.normal() } }
        let unitGrads = gates.unitGradients(grads)
        let analyticGates = zip(unitGrads.joined(), dirs.joined()).reduce(0) { $0 + $1.0 * $1.1 }
        let up = zip(values, dirs).map { v, d in zip(v, d).map { $0 + h * $1 } }
        let down = zip(values, dirs).map { v, d in zip(v, d).map { $0 - h * $1 } }
        feeds = feeds.merging(gates.feeds(up)) { _, b in b }
        let lp = try loss(feeds)
        feeds = feeds.merging(gates.feeds(down)) { _, b in b }
        let numericGates = (lp - (try loss(feeds))) / (2 * h)
        #expect(abs(analyticGates - numericGates) <= 0.02 * max(abs(numericGates), 1e-3), "\(name) gates: \(analyticGates) vs \(numericGates)")
    }
}
