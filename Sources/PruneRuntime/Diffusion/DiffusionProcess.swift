import Foundation

/// How a denoiser was trained and how it is sampled: the forward process (how a clean sample is
/// noised), what the network predicts, where the preconditioning lives, and the sampler.
///
/// Four families cover the denoisers people export:
/// - ``Kind/vp``: variance-preserving DDPM/DDIM (β schedules, `x_t = √ᾱ·x₀ + √(1−ᾱ)·ε`), with ε,
///   v or x₀ prediction (Stable Diffusion, DiT, PixArt, UNet2DModel pipelines);
/// - ``Kind/edm``: Karras et al.'s EDM (`x = x₀ + σ·n`, Karras σ spacing, Euler steps), the
///   network either preconditioned inside the graph (it takes σ and returns the denoised D(x; σ),
///   as NVIDIA's `EDMPrecond`) or outside (it is the raw F, fed `c_in·x` and `c_noise = ¼·ln σ`,
///   as diffusers' `EDMEulerScheduler`);
/// - ``Kind/consistency``: consistency models (single step, or multistep with fresh noise between
///   steps), preconditioned inside or outside (diffusers' `CMStochasticIterativeScheduler`);
/// - ``Kind/flow``: rectified flow (FLUX, SD3: `x_t = (1−t)·x₀ + t·ε`, the network predicts
///   `ε − x₀`, Euler over t, with the resolution shift `t' = s·t / (1 + (s−1)·t)`).
///
/// Every sampler step is linear in the latent, the model output and the step's noise
/// (``NoiseSchedule/Step``), which is all the sampling loop and its reverse pass need.
public struct DiffusionProcess: Sendable, Equatable {
    /// The family of the forward process.
    public enum Kind: String, Sendable, CaseIterable {
        /// Variance-preserving DDPM/DDIM.
        case vp
        /// EDM (Karras σ, Euler).
        case edm
        /// Consistency models.
        case consistency
        /// Rectified flow.
        case flow
    }

    /// Where EDM's (or a consistency model's) scalings c_in, c_noise, c_skip, c_out are applied.
    public enum Precondition: String, Sendable, CaseIterable {
        /// In the graph: the model takes `x` and σ and returns the denoised sample.
        case inside
        /// In the sampler: the model is the raw network F, fed `c_in·x` and c_noise.
        case outside
    }

    /// The family.
    public var kind: Kind
    /// What the model predicts (VP: ε, v or x₀; EDM with the preconditioning inside: x₀, or ε
    /// for `x₀ = x − σ·ε`; outside: ε or v selects the sign of c_out as in diffusers; flow: velocity).
    public var prediction: NoiseSchedule.Prediction
    /// Where the preconditioning lives (EDM and consistency).
    public var precondition: Precondition
    /// The VP schedule.
    public var schedule: NoiseSchedule
    /// The VP sampler (DDIM or DDPM); the other families have one sampler each.
    public var sampler: NoiseSchedule.Sampler
    /// EDM/consistency: the smallest and largest σ, the data's standard deviation, Karras' ρ.
    public var sigmaMin: Double
    public var sigmaMax: Double
    public var sigmaData: Double
    public var rho: Double
    /// Flow: the time shift (1: none; FLUX and SD3 use 3).
    public var shift: Double
    /// Flow: the value fed to the timestep input at t = 1 (1000 for SD3's transformer, 1 for
    /// FLUX's, which multiplies by 1000 itself).
    public var timeScale: Double

    /// A process; parameters a family does not use are ignored.
    public init(kind: Kind = .vp, prediction: NoiseSchedule.Prediction = .epsilon, precondition: Precondition = .inside,
                schedule: NoiseSchedule = NoiseSchedule(), sampler: NoiseSchedule.Sampler = .ddim,
                sigmaMin: Double = 0.002, sigmaMax: Double = 80, sigmaData: Double = 0.5, rho: Double = 7,
                shift: Double = 1, timeScale: Double = 1000) {
        self.kind = kind
        self.prediction = prediction
        self.precondition = precondition
        self.schedule = schedule
        self.sampler = sampler
        self.sigmaMin = sigmaMin
        self.sigmaMax = sigmaMax
        self.sigmaData = sigmaData
        self.rho = rho
        self.shift = shift
        self.timeScale = timeScale
    }

    /// The factor on standard normal noise that makes the first latent of a run.
    public var initialScale: Double {
        switch kind {
        case .vp, .flow: return 1
        case .edm, .consistency: return sigmaMax
        }
    }

    /// Whether sampler steps add fresh noise (DDPM, multistep consistency).
    public var isStochastic: Bool {
        switch kind {
        case .vp: return sampler == .ddpm
        case .consistency: return true
        case .edm, .flow: return false
        }
    }

    /// Karras σ at position `u` of the spacing (0: σ_max, 1: σ_min).
    public func karrasSigma(_ u: Double) -> Double {
        let hi = Foundation.pow(sigmaMax, 1 / rho), lo = Foundation.pow(sigmaMin, 1 / rho)
        return Foundation.pow(hi + u * (lo - hi), rho)
    }

    /// The flow time at position `u` of an unshifted spacing, shifted.
    func shifted(_ t: Double) -> Double { shift * t / (1 + (shift - 1) * t) }

    /// How the model is called at noise level σ (EDM/consistency): the fed time, the input
    /// scale, and the denoised sample as `p·x + q·out`.
    func denoiser(_ sigma: Double) -> (time: Double, inputScale: Double, p: Double, q: Double) {
        let sd = sigmaData
        switch precondition {
        case .inside:
            switch prediction {
            case .epsilon: return (sigma, 1, 1, -sigma)
            default: return (sigma, 1, 0, 1)
            }
        case .outside:
            let cIn = 1 / (sigma * sigma + sd * sd).squareRoot()
            let sign = prediction == .v ? -1.0 : 1.0
            if kind == .consistency {
                // diffusers CMStochasticIterativeScheduler: t = 1000·¼·ln σ, c_skip/c_out from σ − σ_min.
                let d = sigma - sigmaMin
                let cSkip = sd * sd / (d * d + sd * sd)
                let cOut = d * sd / (sigma * sigma + sd * sd).squareRoot()
                return (1000 * 0.25 * Foundation.log(sigma + 1e-44), cIn, cSkip, sign * cOut)
            }
            // diffusers EDMEulerScheduler: c_noise = ¼·ln σ.
            let cSkip = sd * sd / (sigma * sigma + sd * sd)
            let cOut = sigma * sd / (sigma * sigma + sd * sd).squareRoot()
            return (0.25 * Foundation.log(sigma), cIn, cSkip, sign * cOut)
        }
    }

    /// The steps of a `count`-step sampling run, noisiest first.
    public func steps(_ count: Int) -> [NoiseSchedule.Step] {
        let n = max(1, count)
        switch kind {
        case .vp:
            return schedule.steps(n, sampler: sampler, prediction: prediction)
        case .edm:
            // Euler on the probability-flow ODE: x' = x + (σ' − σ)·(x − D)/σ, the last step to σ = 0.
            let sigmas = (0..<n).map { karrasSigma(n == 1 ? 0 : Double($0) / Double(n - 1)) } + [0]
            return (0..<n).map { i in
                let s = sigmas[i], r = sigmas[i + 1] / s
                let d = denoiser(s)
                return NoiseSchedule.Step(time: d.time, inputScale: d.inputScale, a: r + (1 - r) * d.p, b: (1 - r) * d.q, c: 0)
            }
        case .consistency:
            // x₀ = D(x, σ_i), then x = x₀ + √(σ_{i+1}² − σ_min²)·z before the next step.
            let sigmas = (0..<n).map { karrasSigma(n == 1 ? 0 : Double($0) / Double(n - 1)) }
            return (0..<n).map { i in
                let d = denoiser(sigmas[i])
                let next = i + 1 < n ? sigmas[i + 1] : 0
                let c = i + 1 < n ? max(0, next * next - sigmaMin * sigmaMin).squareRoot() : 0
                return NoiseSchedule.Step(time: d.time, inputScale: d.inputScale, a: d.p, b: d.q, c: c)
            }
        case .flow:
            // diffusers FlowMatchEulerDiscreteScheduler: t evenly from 1 to the smallest shifted
            // training time shift(1/T) (T: the steps of ``schedule``), shifted, then 0.
            let last = shifted(1 / Double(schedule.alphasCumprod.count))
            let ts = (0..<n).map { shifted(n == 1 ? 1 : 1 - Double($0) * (1 - last) / Double(n - 1)) } + [0]
            return (0..<n).map { i in
                if prediction == .x0 {
                    // velocity = (x − x₀)/t.
                    let r = ts[i + 1] / ts[i]
                    return NoiseSchedule.Step(time: ts[i] * timeScale, a: r, b: 1 - r, c: 0)
                }
                return NoiseSchedule.Step(time: ts[i] * timeScale, a: 1, b: ts[i + 1] - ts[i], c: 0)
            }
        }
    }

    /// A noised sample at level `u` ∈ (0, 1] of the process (1: pure noise), for scoring and
    /// training on single steps: `x = signal·x₀ + noise·ε`, fed as `inputScale·x` with `time`.
    public struct Noising: Sendable, Equatable {
        /// The value fed to the timestep input.
        public var time: Double
        /// The factor on the latent fed to the model.
        public var inputScale: Double
        /// The factor on the clean sample.
        public var signal: Double
        /// The factor on the noise.
        public var noise: Double
    }

    /// The noising at level `u` (clamped to (0, 1]).
    public func noising(_ u: Double) -> Noising {
        let level = min(1, max(1e-6, u))
        switch kind {
        case .vp:
            let n = schedule.alphasCumprod.count
            let t = min(n - 1, Int(level * Double(n)))
            let a = schedule.alphasCumprod[t]
            return Noising(time: Double(t), inputScale: 1, signal: a.squareRoot(), noise: (1 - a).squareRoot())
        case .edm, .consistency:
            let sigma = karrasSigma(1 - level)
            let d = denoiser(sigma)
            return Noising(time: d.time, inputScale: d.inputScale, signal: 1, noise: sigma)
        case .flow:
            let t = shifted(level)
            return Noising(time: t * timeScale, inputScale: 1, signal: 1 - t, noise: t)
        }
    }
}
