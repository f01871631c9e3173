import Foundation
import PruneIR
import PruneRuntime

/// Validation of a denoiser on what its users see: the final samples of whole sampling runs.
///
/// A pruned denoiser's per-call output drift understates how far its samples move, since errors
/// compound over the steps. When the reference is a denoiser (``DenoiserInputs/map(_:sample:timestep:excluding:)``
/// finds its latent and timestep, and its parametrization resolves), the compiler runs `runs`
/// sampling runs of `steps` steps with the reference and with each candidate, from the same seeded
/// noise and the validation sets' conditioning, and reports the mean relative L2 between final
/// samples.
public struct SamplingDrift {
    /// The denoiser's inputs.
    public let inputs: DenoiserInputs
    /// The process the runs use.
    public let process: DiffusionProcess
    /// How the process was resolved (for the report).
    public let summary: String
    /// The runs.
    public let samples: [DiffusionHarness.Sample]
    /// The sampler steps.
    public let steps: [NoiseSchedule.Step]

    /// The runs for `reference`, or `nil` when it is not a denoiser whose sampling can be told
    /// (the reason is logged at debug level by the caller).
    ///
    /// - Parameters:
    ///   - sets: Validation inputs; their conditioning inputs are used in turn.
    ///   - diffusion: The pipeline's diffusion options (a pass's), or the defaults.
    ///   - modelURL: The model file, for a pipeline's scheduler config.
    public static func setup(reference: Model, sets: [[String: NDArray]], diffusion: DiffusionOptions, modelURL: URL?,
                             runs: Int, steps: Int, seed: UInt64) throws -> SamplingDrift {
        let inputs = try DenoiserInputs.map(reference)
        let (process, summary) = try diffusion.resolve(model: reference, inputs: inputs, modelURL: modelURL)
        let stepList = process.steps(steps)
        let samples = (0..<runs).map { k in
            DiffusionHarness.Sample.seeded((seed ^ 0x5A3D_11F7) &* 31 &+ UInt64(k), inputs: inputs, process: process, steps: stepList.count,
                                           conditioning: sets.isEmpty ? [:] : sets[k % sets.count].filter { inputs.conditioning.contains($0.key) })
        }
        return SamplingDrift(inputs: inputs, process: process, summary: summary, samples: samples, steps: stepList)
    }

    /// The final samples of `model`'s runs.
    public func finals(_ model: Model, threads: Int) throws -> [[Double]] {
        let interpreter = try Interpreter(model: model, options: Interpreter.Options(threads: threads, profile: false))
        let harness = DiffusionHarness(interpreter: interpreter, inputs: inputs, steps: steps, guidance: 0, initialScale: process.initialScale)
        return try samples.map { try harness.finalLatent($0) }
    }

    /// Mean relative L2 between two models' final samples.
    public static func drift(_ a: [[Double]], _ b: [[Double]]) -> Double {
        let d = zip(a, b).map { GateMath.relativeL2($0, $1) }
        return d.reduce(0, +) / Double(max(d.count, 1))
    }
}
