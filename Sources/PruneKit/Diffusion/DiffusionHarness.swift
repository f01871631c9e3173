import Foundation
import PruneIR
import PruneRuntime

/// Samples a denoiser exported alone (a UNet or DiT) on the interpreter, and differentiates the
/// final latent with respect to extra graph inputs (gate masks) through the whole run.
///
/// The model is called with `inputScale·x` and the step's time, and each step is
/// `x_prev = a·x + b·out + c·noise` (``NoiseSchedule/Step``), with classifier-free
/// guidance `out = out_u + w·(out_c − out_u)` when a sample carries unconditional inputs.
///
/// **Time-step checkpointing** (as in EcoDiff): the forward run keeps only each step's latent;
/// the reverse run recomputes one step at a time with a tape, takes its VJP and drops it. Memory
/// is one step's activations plus `steps` latents, whatever the number of steps.
public final class DiffusionHarness {
    /// One sampling run's inputs.
    public struct Sample {
        /// The initial latent (pure noise).
        public var noise: NDArray
        /// Conditioning inputs by name.
        public var conditioning: [String: NDArray]
        /// Unconditional inputs for guidance (`nil`: no guidance).
        public var unconditional: [String: NDArray]?
        /// Per-step noise for stochastic samplers (empty for DDIM).
        public var stepNoise: [NDArray]

        /// A sample.
        public init(noise: NDArray, conditioning: [String: NDArray], unconditional: [String: NDArray]? = nil, stepNoise: [NDArray] = []) {
            self.noise = noise
            self.conditioning = conditioning
            self.unconditional = unconditional
            self.stepNoise = stepNoise
        }

        /// A run drawn from `seed`: the initial noise in the latent's shape, then one noise per step
        /// when the sampler is stochastic (`process`).
        public static func seeded(_ seed: UInt64, inputs: DenoiserInputs, process: DiffusionProcess, steps: Int,
                                  conditioning: [String: NDArray], unconditional: [String: NDArray]? = nil) -> Sample {
            var rng = NoiseSource(seed: seed)
            let noise = rng.normal(inputs.sampleShape, dtype: inputs.sampleType)
            let stepNoise = process.isStochastic ? (0..<steps).map { _ in rng.normal(inputs.sampleShape, dtype: inputs.sampleType) } : []
            return Sample(noise: noise, conditioning: conditioning, unconditional: unconditional, stepNoise: stepNoise)
        }
    }

    /// The interpreter running the denoiser.
    public let interpreter: Interpreter
    /// The input mapping.
    public let inputs: DenoiserInputs
    /// The sampler steps, noisiest first.
    public let steps: [NoiseSchedule.Step]
    /// Guidance scale (used when a sample has unconditional inputs).
    public let guidance: Double
    /// The factor on a sample's noise that makes the first latent (EDM: σ_max).
    public let initialScale: Double

    /// A harness running `inputs`'s denoiser in `interpreter` over the process's `steps`.
    public init(interpreter: Interpreter, inputs: DenoiserInputs, steps: [NoiseSchedule.Step], guidance: Double, initialScale: Double = 1) {
        self.interpreter = interpreter
        self.inputs = inputs
        self.steps = steps
        self.guidance = guidance
        self.initialScale = initialScale
    }

    func feeds(_ x: NDArray, _ step: NoiseSchedule.Step, _ cond: [String: NDArray], _ extra: [String: NDArray]) -> [String: NDArray] {
        var f = cond.merging(extra) { a, _ in a }
        f[inputs.sample] = step.inputScale == 1 ? x : GateMath.array(GateMath.values(x).map { $0 * step.inputScale }, like: x)
        f[inputs.timestep] = inputs.timestepArray(step.time)
        return f
    }

    /// The model output at one step (guided when the sample has unconditional inputs).
    func predict(_ x: NDArray, _ i: Int, _ s: Sample, _ extra: [String: NDArray]) throws -> [Double] {
        let step = steps[i]
        let c = try output(interpreter.run(feeds(x, step, s.conditioning, extra)))
        guard let u = s.unconditional else { return c }
        let uo = try output(interpreter.run(feeds(x, step, u, extra)))
        return zip(uo, c).map { $0 + guidance * ($1 - $0) }
    }

    func output(_ outs: [String: NDArray]) throws -> [Double] {
        guard let y = outs[inputs.output] else { throw RuntimeError.input("the denoiser did not produce '\(inputs.output)'") }
        return inputs.prediction(GateMath.values(y), shape: y.shape)
    }

    /// Runs the sampler from `s.noise`; returns every latent, initial first, final last.
    public func run(_ s: Sample, extra: [String: NDArray] = [:]) throws -> [NDArray] {
        var x = GateMath.values(s.noise).map { $0 * initialScale }
        var latents = [initialScale == 1 ? s.noise : GateMath.array(x, like: s.noise)]
        for i in steps.indices {
            let out = try predict(latents[i], i, s, extra)
            let st = steps[i]
            let n = st.c != 0 && i < s.stepNoise.count ? GateMath.values(s.stepNoise[i]) : nil
            for j in x.indices { x[j] = st.a * x[j] + st.b * out[j] + (n.map { st.c * $0[j] } ?? 0) }
            latents.append(GateMath.array(x, like: s.noise))
        }
        return latents
    }

    /// The final latent of a run.
    public func finalLatent(_ s: Sample, extra: [String: NDArray] = [:]) throws -> [Double] {
        GateMath.values(try run(s, extra: extra).last!)
    }

    /// Runs the sampler and returns the final latent and `∂loss/∂extra[name]` for `wrt`, where
    /// `lossGradient` maps the final latent to `∂loss/∂(final latent)`.
    public func gradient(_ s: Sample, extra: [String: NDArray], wrt: [String],
                         lossGradient: ([Double]) -> [Double]) throws -> (final: [Double], gradients: [String: NDArray]) {
        let latents = try run(s, extra: extra)
        let final = GateMath.values(latents.last!)
        var g = lossGradient(final)
        var total: [String: NDArray] = [:]
        for i in steps.indices.reversed() {
            let st = steps[i]
            let x = latents[i]
            // out = out_c (no guidance) or (1−w)·out_u + w·out_c.
            var branches: [([String: NDArray], Double)] = [(s.conditioning, 1)]
            if let u = s.unconditional { branches = [(s.conditioning, guidance), (u, 1 - guidance)] }
            var gx = g.map { st.a * $0 }
            for (cond, weight) in branches {
                let tape = try interpreter.runRecording(feeds(x, st, cond, extra))
                guard let y = tape.outputs[inputs.output] else { throw RuntimeError.input("the denoiser did not produce '\(inputs.output)'") }
                let seed = GateMath.array(inputs.outputGradient(g.map { st.b * weight * $0 }, shape: y.shape), like: y)
                let grads = try tape.backward(seeds: [inputs.output: seed], wrt: [inputs.sample] + wrt)
                if let gs = grads[inputs.sample] {
                    for j in gx.indices { gx[j] += st.inputScale * GateMath.element(gs, j) }
                }
                for name in wrt {
                    guard let gw = grads[name] else { continue }
                    total[name] = total[name].map { GradientMath.sum($0, gw) } ?? gw
                }
            }
            g = gx
        }
        return (final, total)
    }
}

/// Deterministic Gaussian noise (SplitMix64 + Box–Muller) for latents and gate sampling.
public struct NoiseSource: Sendable {
    private var state: UInt64

    /// A source for `seed`.
    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    public mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) * 0x1p-53 }

    /// Standard normal.
    public mutating func normal() -> Double {
        (-2 * Foundation.log(uniform())).squareRoot() * Foundation.cos(2 * Double.pi * uniform())
    }

    /// An array of standard normal values of `dtype` and `shape`.
    public mutating func normal(_ shape: [Int], dtype: DType) -> NDArray {
        let n = shape.reduce(1, *)
        let v = (0..<n).map { _ in normal() }
        return GateMath.array(v, like: NDArray(zeros: dtype, shape: shape))
    }
}
