import Foundation
@testable import PruneRuntime
import Testing

/// The schedules against diffusers' numbers, and the sampler steps against their definitions:
/// given the true noise, a step must land exactly on the forward process at the previous timestep.
struct NoiseScheduleTests {
    @Test func alphasMatchDiffusers() {
        // diffusers DDPMScheduler(beta_schedule="scaled_linear") / ("linear"), 1000 steps.
        let sd = NoiseSchedule(.scaledLinear)
        #expect(abs(sd.alphasCumprod[0] - 0.99915) < 1e-6)
        #expect(abs(sd.alphasCumprod[999] - 0.0046600) < 1e-6)
        let ddpm = NoiseSchedule(.linear)
        #expect(abs(ddpm.alphasCumprod[0] - 0.9999) < 1e-9)
        #expect(abs(ddpm.alphasCumprod[999] - 4.0358e-5) < 1e-8)
    }

    @Test func ddimTimestepsAreLeadingSpaced() {
        let steps = NoiseSchedule().steps(10, sampler: .ddim, prediction: .epsilon)
        #expect(steps.map(\.timestep) == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0])
        #expect(steps.allSatisfy { $0.c == 0 })
    }

    /// x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε; with the exact ε (or v) as the model output, a DDIM step gives
    /// √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε, and a DDPM step's mean is the posterior mean.
    @Test(arguments: [NoiseSchedule.Prediction.epsilon, .v], [NoiseSchedule.Betas.linear, .scaledLinear])
    func stepsLandOnTheForwardProcess(_ prediction: NoiseSchedule.Prediction, _ betas: NoiseSchedule.Betas) {
        let s = NoiseSchedule(betas)
        let x0 = 0.7, eps = -1.3
        for step in s.steps(5, sampler: .ddim, prediction: prediction) {
            let at = s.alphasCumprod[step.timestep]
            let prev = step.timestep - 200
            let ap = prev >= 0 ? s.alphasCumprod[prev] : 1
            let xt = at.squareRoot() * x0 + (1 - at).squareRoot() * eps
            let out = prediction == .epsilon ? eps : at.squareRoot() * eps - (1 - at).squareRoot() * x0
            let expected = ap.squareRoot() * x0 + (1 - ap).squareRoot() * eps
            #expect(abs(step.a * xt + step.b * out - expected) < 1e-9, "t=\(step.timestep)")
        }
        for step in s.steps(5, sampler: .ddpm, prediction: prediction) {
            let at = s.alphasCumprod[step.timestep]
            let prev = step.timestep - 200
            let ap = prev >= 0 ? s.alphasCumprod[prev] : 1
            let alpha = at / ap, beta = 1 - alpha
            let xt = at.squareRoot() * x0 + (1 - at).squareRoot() * eps
            let out = prediction == .epsilon ? eps : at.squareRoot() * eps - (1 - at).squareRoot() * x0
            let mean = ap.squareRoot() * beta / (1 - at) * x0 + alpha.squareRoot() * (1 - ap) / (1 - at) * xt
            #expect(abs(step.a * xt + step.b * out - mean) < 1e-9, "t=\(step.timestep)")
            #expect(prev < 0 ? step.c == 0 : abs(step.c - (beta * (1 - ap) / (1 - at)).squareRoot()) < 1e-12)
        }
    }

    @Test func adamWMinimizesAQuadraticAndTakesSignSizedFirstSteps() {
        var opt = AdamW(learningRate: 0.1, weightDecay: 0)
        var p = [3.0, -2.0]
        opt.step(&p, gradients: [2 * p[0], 2 * p[1]])
        #expect(abs(p[0] - 2.9) < 1e-6 && abs(p[1] + 1.9) < 1e-6)
        for _ in 0..<500 { opt.step(&p, gradients: [2 * p[0], 2 * p[1]]) }
        #expect(abs(p[0]) < 1e-2 && abs(p[1]) < 1e-2)
        var decayed = AdamW(learningRate: 0.1, weightDecay: 0.5)
        var q = [1.0]
        decayed.step(&q, gradients: [0])
        #expect(abs(q[0] - 0.95) < 1e-12)
    }
}
