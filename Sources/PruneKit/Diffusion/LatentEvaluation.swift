import Foundation
import PruneIR
import PruneRuntime

/// The inputs a model is evaluated on when a pass compares its outputs with and without some of
/// its units (LD-Pruner's scores, depth's block drift), and the outputs compared.
///
/// A plain model is evaluated on its calibration sets (or seeded sample inputs without calibration
/// data), on every floating-point output. A diffusion denoiser (found by ``DenoiserInputs/map(_:sample:timestep:excluding:)``)
/// is evaluated on its prediction, at `timesteps` noise levels spread over its process
/// (``DiffusionProcess/noising(_:)``) per calibration sample: the latent input is the sample's
/// latent noised to that level by the forward process (VP: `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε`; EDM:
/// `x₀ + σ·ε`; flow: `(1−t)·x₀ + t·ε`; seeded ε), or pure seeded noise when there is no
/// calibration data.
public struct LatentEvaluation {
    /// Feeds (without gate inputs) the scores are computed on, one per evaluation.
    public let scoring: [[String: NDArray]]
    /// Held-out feeds for the reported drift (the last calibration samples).
    public let heldOut: [[String: NDArray]]
    /// The outputs compared.
    public let outputs: [String]
    /// The denoiser's inputs, when the model is one.
    public let denoiser: DenoiserInputs?
    /// The values fed to the timestep input at each noise level (`[]` for a plain model).
    public let timesteps: [Double]
    /// Calibration (or synthesized) samples behind ``scoring``.
    public let samples: Int

    /// Builds the evaluation inputs of `model` (a ``TrainableGates/trainingModel``).
    ///
    /// - Parameters:
    ///   - gateInputs: The model's mask inputs, which are neither data nor conditioning.
    ///   - samples: Most calibration samples to score on.
    ///   - holdout: Samples held out (the last ones; fewer when the data has too few, but at
    ///     least one from calibration data: see ``CalibrationData/heldOutCount(_:of:pass:option:)``).
    ///   - pass: The pass's name, for errors.
    ///   - timesteps: Noise levels per sample for a denoiser.
    ///   - diffusion: How the denoiser is noised (``DiffusionOptions/resolve(model:inputs:modelURL:)``).
    ///   - oneShape: Score on samples that all have one shape, for statistics taken elementwise
    ///     across them: when the calibration samples differ in shape, the first shape (in file
    ///     order) with `samples` of them, else the shape with the most (a log line says which).
    /// - Throws: ``PruningError/invalid(_:)`` when `holdout` > 0 and the calibration data has fewer
    ///   than two samples; ``SampleInputsError`` when inputs must be synthesized and cannot be;
    ///   ``DenoiserError`` when the denoiser's parametrization cannot be told.
    public static func make(model: Model, gateInputs: Set<String>, samples: Int, holdout: Int, timesteps: Int,
                            diffusion: DiffusionOptions = DiffusionOptions(), pass: String, oneShape: Bool = false,
                            context: PassContext) throws -> LatentEvaluation {
        let needed = Set(model.graph.inputs.filter { $0.initializer == nil }.map(\.name)).subtracting(gateInputs)
        var sets = context.calibration.map { $0.filter { needed.contains($0.key) } }
        let synthetic = sets.isEmpty
        if synthetic {
            sets = try (0..<(samples + holdout)).map { k in
                try SampleInputs.make(for: model, seed: context.seed &+ UInt64(k)).filter { needed.contains($0.key) }
            }
        }
        let heldCount = synthetic ? min(holdout, max(0, sets.count - 1))
            : try CalibrationData.heldOutCount(holdout, of: sets.count, pass: pass)
        var scoringSets = Array(sets.dropLast(heldCount).prefix(samples))
        if oneShape {
            scoringSets = Self.oneShape(Array(sets.dropLast(heldCount)), samples: samples, pass: pass, context: context)
        }
        let heldSets = Array(sets.suffix(heldCount))
        guard let inputs = try? DenoiserInputs.map(model, excluding: gateInputs) else {
            let outputs = model.graph.outputs.filter { $0.type?.elementType?.isFloatingPoint == true }.map(\.name)
            return LatentEvaluation(scoring: scoringSets, heldOut: heldSets, outputs: outputs, denoiser: nil, timesteps: [],
                                    samples: scoringSets.count)
        }
        let (process, summary) = try diffusion.resolve(model: model, inputs: inputs, modelURL: context.modelURL)
        context.logger.info("denoiser '\(inputs.sample)' → '\(inputs.output)': \(summary)")
        let levels = (0..<timesteps).map { process.noising((Double($0) + 0.5) / Double(timesteps)) }
        func noised(_ set: [String: NDArray], sample s: Int, timestep k: Int, stream: UInt64) -> [String: NDArray] {
            var rng = NoiseSource(seed: (context.seed &* 0x1D_9E37) &+ stream &+ UInt64(s * timesteps + k))
            let shape = set[inputs.sample]?.shape ?? inputs.sampleShape
            let eps = GateMath.values(rng.normal(shape, dtype: inputs.sampleType))
            let level = levels[k]
            // Without data the latent is noise of the level's total scale (VP: unit variance).
            var x = eps.map { $0 * (level.signal * level.signal + level.noise * level.noise).squareRoot() }
            if !synthetic, let x0 = set[inputs.sample].map(GateMath.values) {
                x = zip(x0, eps).map { level.signal * $0 + level.noise * $1 }
            }
            var f = set
            f[inputs.sample] = GateMath.array(x.map { $0 * level.inputScale }, like: NDArray(zeros: inputs.sampleType, shape: shape))
            f[inputs.timestep] = inputs.timestepArray(level.time)
            return f
        }
        let scoring = scoringSets.enumerated().flatMap { s, set in levels.indices.map { noised(set, sample: s, timestep: $0, stream: 0) } }
        let held = heldSets.enumerated().flatMap { s, set in levels.indices.map { noised(set, sample: s, timestep: $0, stream: 1 << 32) } }
        return LatentEvaluation(scoring: scoring, heldOut: held, outputs: [inputs.output], denoiser: inputs, timesteps: levels.map(\.time),
                                samples: scoringSets.count)
    }

    /// Up to `samples` of `sets` that share one shape: the first `samples` when they do, else those
    /// of the first shape (in order) that has `samples`, else of the shape that has the most.
    static func oneShape(_ sets: [[String: NDArray]], samples: Int, pass: String, context: PassContext) -> [[String: NDArray]] {
        func signature(_ set: [String: NDArray]) -> [String] { set.keys.sorted().map { "\($0)\(set[$0]?.shape ?? [])" } }
        let first = Array(sets.prefix(samples))
        guard let head = first.first, first.contains(where: { signature($0) != signature(head) }) else { return first }
        var order: [[String]] = [], members: [[String]: [Int]] = [:]
        for (i, set) in sets.enumerated() {
            let sig = signature(set)
            if members[sig] == nil { order.append(sig) }
            members[sig, default: []].append(i)
        }
        var chosen = order[0]
        for sig in order where (members[sig]?.count ?? 0) > (members[chosen]?.count ?? 0) && (members[chosen]?.count ?? 0) < samples {
            chosen = sig
        }
        guard let picked = members[chosen] else { return first }
        let out = picked.prefix(samples).map { sets[$0] }
        let shapes = chosen.joined(separator: ", ")
        context.logger.info("\(pass): the calibration samples differ in shape; scoring on the \(out.count) shaped \(shapes) (samples \(picked.prefix(samples).map { String($0 + 1) }.joined(separator: ", ")))")
        return out
    }
}
