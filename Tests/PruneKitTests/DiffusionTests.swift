import Foundation
import PruneIR
import PruneKit
import PruneRuntime
import PruneTestSupport
import Testing

/// Hard-concrete gates, the denoiser input mapping, and the checkpointed gradient of a whole
/// sampling run against finite differences.
struct DiffusionTests {
    @Test func hardConcreteGatesAndTheirDerivatives() {
        let hc = HardConcrete()
        // log α = 3: the median gate is open (σ(3)·1.2 − 0.1 > 1).
        #expect(hc.gate(logAlpha: 3) == 1)
        #expect(hc.gate(logAlpha: -5) == 0)
        #expect(abs(hc.gate(logAlpha: 0) - 0.5) < 1e-12)
        for (la, u) in [(0.3, 0.4), (-0.5, 0.7), (1.0, 0.2)] {
            let (z, dz) = hc.sample(logAlpha: la, u: u)
            let h = 1e-6
            let fd = (hc.sample(logAlpha: la + h, u: u).z - hc.sample(logAlpha: la - h, u: u).z) / (2 * h)
            #expect(z > 0 && z < 1 && abs(dz - fd) < 1e-6, "log α \(la), u \(u)")
            let (p, dp) = hc.probabilityNonZero(logAlpha: la)
            let fdp = (hc.probabilityNonZero(logAlpha: la + h).p - hc.probabilityNonZero(logAlpha: la - h).p) / (2 * h)
            #expect(p > 0 && p < 1 && abs(dp - fdp) < 1e-6)
        }
        // Clipped samples have no gradient.
        #expect(hc.sample(logAlpha: 6, u: 0.9).dz == 0)
    }

    @Test func examplesMapTheirDenoiserInputs() throws {
        for name in ["unet", "unet.dynamo", "dit", "dit.dynamo"] {
            let m = try ModelImporter.load(contentsOf: TestPaths.examples.appendingPathComponent("\(name).onnx"))
            let d = try DenoiserInputs.map(m)
            #expect(d.sample == "sample" && d.timestep == "timestep" && d.output == "out_sample", "\(name)")
            #expect(d.conditioning == (name.hasPrefix("unet") ? ["encoder_hidden_states"] : ["class_labels"]))
        }
        let bert = try ModelImporter.load(contentsOf: TestPaths.examples.appendingPathComponent("bert.onnx"))
        #expect(throws: DenoiserError.self) { _ = try DenoiserInputs.map(bert) }
        let unet = try ModelImporter.load(contentsOf: TestPaths.examples.appendingPathComponent("unet.onnx"))
        #expect(throws: DenoiserError.self) { _ = try DenoiserInputs.map(unet, sample: "latents") }
    }

    /// A toy denoiser out = (x·W + t·v) ⊙ m (m: a gate input): the harness's gradient of a loss on
    /// the final latent w.r.t. m, through 4 DDIM steps with guidance, equals finite differences.
    @Test(arguments: [NoiseSchedule.Sampler.ddim, .ddpm])
    func checkpointedGradientMatchesFiniteDifferences(_ sampler: NoiseSchedule.Sampler) throws {
        let b = GraphBuilder(name: "toy")
        let x = b.input("sample", .double, [1, 4])
        let t = b.input("timestep", .double, [1])
        let c = b.input("cond", .double, [1, 4])
        let m = b.input("mask", .double, [4])
        var rng = NoiseSource(seed: 3)
        let w = b.initializer("w", Tensor(dtype: .double, shape: [4, 4], bytes: (0..<16).map { _ in 0.3 * rng.normal() }.withUnsafeBytes { Data($0) }))
        let scale = b.initializer("s", Tensor(dtype: .double, shape: [1], bytes: [0.001].withUnsafeBytes { Data($0) }))
        let xw = b.add(.matMul, [x, w])
        let mix = b.add(.add, [b.add(.add, [xw, b.add(.mul, [t, scale])]), c])
        b.graph.outputs = [b.add(.mul, [mix, m], name: "out")]
        b.graph.outputs[0].name = "out_sample"
        let model = b.model(opset: 18)
        ShapeInference().run(on: model)
        let interp = try Interpreter(model: model, options: .init(threads: 1, profile: false))
        let inputs = try DenoiserInputs.map(model, excluding: ["mask"])
        #expect(inputs.conditioning == ["cond"])
        let steps = NoiseSchedule().steps(4, sampler: sampler, prediction: .epsilon)
        let harness = DiffusionHarness(interpreter: interp, inputs: inputs, steps: steps, guidance: 2.5)
        var noise = NoiseSource(seed: 9)
        let sample = DiffusionHarness.Sample(
            noise: noise.normal([1, 4], dtype: .double), conditioning: ["cond": noise.normal([1, 4], dtype: .double)],
            unconditional: ["cond": NDArray([Double](repeating: 0, count: 4), shape: [1, 4])],
            stepNoise: steps.map { _ in noise.normal([1, 4], dtype: .double) })
        let target = [0.1, -0.2, 0.3, 0.05]
        let mask = [0.9, 0.4, 1.0, 0.7]
        func loss(_ mk: [Double]) throws -> Double {
            let xN = try harness.finalLatent(sample, extra: ["mask": NDArray(mk, shape: [4])])
            return zip(xN, target).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        }
        let (_, grads) = try harness.gradient(sample, extra: ["mask": NDArray(mask, shape: [4])], wrt: ["mask"]) { xN in
            zip(xN, target).map { 2 * ($0 - $1) }
        }
        let g = try #require(grads["mask"])
        for i in 0..<4 {
            var p = mask, q = mask
            p[i] += 1e-6
            q[i] -= 1e-6
            let fd = (try loss(p) - loss(q)) / 2e-6
            #expect(abs(GateMath.element(g, i) - fd) < 1e-6 * max(1, abs(fd)), "mask[\(i)]: \(GateMath.element(g, i)) vs \(fd)")
        }
    }
}
