import Foundation

/// A diffusion model's noise schedule and the sampler steps built on it (after diffusers'
/// `DDIMScheduler` and `DDPMScheduler`, `timestep_spacing="leading"`, `set_alpha_to_one=True`).
///
/// Every step is linear in the current latent, the model output and the step's noise:
/// `x_prev = a·x + b·out + c·noise` (``Step``). That is all the sampling loop and its reverse
/// pass need.
public struct NoiseSchedule: Sendable, Equatable {
    /// How β grows over the training timesteps.
    public enum Betas: String, Sendable, CaseIterable {
        /// Evenly spaced β (DDPM: 1e-4 … 0.02).
        case linear
        /// Evenly spaced √β, squared (Stable Diffusion: 0.00085 … 0.012).
        case scaledLinear = "scaled-linear"
        /// Nichol & Dhariwal's cosine ᾱ (diffusers' `squaredcos_cap_v2`, β capped at 0.999).
        case cosine
    }

    /// What the model predicts.
    public enum Prediction: String, Sendable, CaseIterable {
        /// The noise ε.
        case epsilon
        /// The velocity v = √ᾱ·ε − √(1−ᾱ)·x₀ (diffusers' `v_prediction`).
        case v
        /// The clean sample x₀ (diffusers' `sample`; EDM and consistency models with their
        /// preconditioning inside the graph predict the denoised sample D(x; σ)).
        case x0
        /// Rectified flow's velocity ε − x₀ (FLUX, SD3: `x_t = (1−t)·x₀ + t·ε`).
        case velocity
    }

    /// The sampler.
    public enum Sampler: String, Sendable, CaseIterable {
        /// Deterministic DDIM (η = 0).
        case ddim
        /// Ancestral DDPM (posterior variance, fresh noise each step).
        case ddpm
    }

    /// One sampler step: the model is called with `inputScale·x` and `time`, and the next
    /// latent is `a·x + b·out + c·noise`.
    public struct Step: Sendable, Equatable {
        /// The value fed to the model's timestep input (a training timestep, σ, c_noise(σ) or
        /// a flow time, depending on the parametrization).
        public var time: Double
        /// The factor on the latent fed to the model (EDM's c_in when the preconditioning is
        /// outside the graph; 1 otherwise).
        public var inputScale: Double
        /// Coefficient of the current latent.
        public var a: Double
        /// Coefficient of the model output.
        public var b: Double
        /// Coefficient of this step's noise (0 for deterministic samplers).
        public var c: Double

        /// A step.
        public init(time: Double, inputScale: Double = 1, a: Double, b: Double, c: Double) {
            self.time = time
            self.inputScale = inputScale
            self.a = a
            self.b = b
            self.c = c
        }

        /// A step of a discrete-time schedule, called with training timestep `timestep`.
        public init(timestep: Int, a: Double, b: Double, c: Double) {
            self.init(time: Double(timestep), a: a, b: b, c: c)
        }

        /// ``time`` as a training timestep (discrete-time schedules).
        public var timestep: Int { Int(time.rounded()) }
    }

    /// ᾱ_t for t in 0..<trainSteps.
    public let alphasCumprod: [Double]

    /// A schedule of `trainSteps` timesteps; `betaStart`/`betaEnd` default to the schedule's usual values.
    public init(_ betas: Betas = .scaledLinear, trainSteps: Int = 1000, betaStart: Double? = nil, betaEnd: Double? = nil) {
        let n = max(2, trainSteps)
        let lo = betaStart ?? (betas == .linear ? 1e-4 : 0.00085)
        let hi = betaEnd ?? (betas == .linear ? 0.02 : 0.012)
        var acc = 1.0
        var out: [Double] = []
        out.reserveCapacity(n)
        func cosineBar(_ t: Double) -> Double { let c = Foundation.cos((t + 0.008) / 1.008 * Double.pi / 2); return c * c }
        for i in 0..<n {
            let f = Double(i) / Double(n - 1)
            let beta: Double
            switch betas {
            case .linear: beta = lo + (hi - lo) * f
            case .scaledLinear: let r = lo.squareRoot() + (hi.squareRoot() - lo.squareRoot()) * f; beta = r * r
            case .cosine: beta = min(1 - cosineBar(Double(i + 1) / Double(n)) / cosineBar(Double(i) / Double(n)), 0.999)
            }
            acc *= 1 - beta
            out.append(acc)
        }
        alphasCumprod = out
    }

    /// The steps of an `count`-step sampling run, first (noisiest) first.
    public func steps(_ count: Int, sampler: Sampler, prediction: Prediction) -> [Step] {
        let n = alphasCumprod.count
        let k = max(1, min(count, n))
        let ratio = n / k
        let timesteps = (0..<k).map { $0 * ratio }.reversed()
        return timesteps.map { t in
            let prev = t - ratio
            let at = alphasCumprod[t], ap = prev >= 0 ? alphasCumprod[prev] : 1.0
            switch sampler {
            case .ddim:
                // x0 and ε from the output, then x_prev = √ᾱp·x0 + √(1−ᾱp)·ε.
                switch prediction {
                case .epsilon:
                    return Step(timestep: t, a: (ap / at).squareRoot(), b: (1 - ap).squareRoot() - (ap * (1 - at) / at).squareRoot(), c: 0)
                case .v:
                    return Step(timestep: t, a: (ap * at).squareRoot() + ((1 - ap) * (1 - at)).squareRoot(),
                                b: ((1 - ap) * at).squareRoot() - (ap * (1 - at)).squareRoot(), c: 0)
                case .x0, .velocity:
                    // ε = (x − √ᾱ·x0)/√(1−ᾱ) (velocity is not a VP parametrization; read as x0).
                    let r = ((1 - ap) / (1 - at)).squareRoot()
                    return Step(timestep: t, a: r, b: ap.squareRoot() - r * at.squareRoot(), c: 0)
                }
            case .ddpm:
                let alpha = at / ap, beta = 1 - alpha
                let c0 = ap.squareRoot() * beta / (1 - at), ct = alpha.squareRoot() * (1 - ap) / (1 - at)
                let sigma = prev >= 0 ? (beta * (1 - ap) / (1 - at)).squareRoot() : 0
                switch prediction {
                case .epsilon:
                    // x0 = (x − √(1−ᾱ)·ε)/√ᾱ.
                    return Step(timestep: t, a: c0 / at.squareRoot() + ct, b: -c0 * ((1 - at) / at).squareRoot(), c: sigma)
                case .v:
                    // x0 = √ᾱ·x − √(1−ᾱ)·v.
                    return Step(timestep: t, a: c0 * at.squareRoot() + ct, b: -c0 * (1 - at).squareRoot(), c: sigma)
                case .x0, .velocity:
                    return Step(timestep: t, a: ct, b: c0, c: sigma)
                }
            }
        }
    }
}
