import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// The distillation objective over one sample: teacher values (outputs and feature points),
/// the student's loss and its gradient with respect to the trained weights, and the held-out
/// measures (loss, output MSE, relative L2, cosine).
final class DistillObjective {
    let teacher: Interpreter
    let student: Interpreter
    let weights: TrainableWeights
    let outputs: [String]
    /// Per output: KL on logits (true) or normalized MSE.
    let kl: [Bool]
    /// Matched feature points (graph outputs of both copies).
    private(set) var features: [String]
    let featureWeight: Double
    let teacherInputs: [String]
    let studentInputs: Set<String>

    /// Held-out measures, averaged over samples (and outputs).
    struct Measures {
        var loss = 0.0, mse = 0.0, relL2 = 0.0, cosine = 0.0
    }

    init(teacher: Interpreter, student: Interpreter, weights: TrainableWeights, outputs: [String], kl: [Bool], features: [String], featureWeight: Double) {
        self.teacher = teacher
        self.student = student
        self.weights = weights
        self.outputs = outputs
        self.kl = kl
        self.features = features
        self.featureWeight = featureWeight
        teacherInputs = teacher.model.graph.inputs.filter { $0.initializer == nil }.map(\.name)
        let trained = Set(weights.inputNames)
        studentInputs = Set(student.model.graph.inputs.filter { $0.initializer == nil && !trained.contains($0.name) }.map(\.name))
    }

    /// The teacher's outputs and feature values on `feeds`.
    ///
    /// - Throws: ``DistillError/missingInput(_:)`` when `feeds` lacks a teacher input.
    func teacherValues(_ feeds: [String: NDArray]) throws -> [String: NDArray] {
        var f: [String: NDArray] = [:]
        for name in teacherInputs {
            guard let a = feeds[name] else { throw DistillError.missingInput(name) }
            f[name] = a
        }
        return try teacher.run(f)
    }

    private func studentFeeds(_ feeds: [String: NDArray], _ w: [[Double]]) -> [String: NDArray] {
        feeds.filter { studentInputs.contains($0.key) }.merging(weights.feeds(w)) { a, _ in a }
    }

    /// Drops feature points whose student and teacher arrays differ in shape (found on one run).
    func dropMismatchedFeatures(reference: [String: NDArray], feeds: [String: NDArray], weights w: [[Double]], log: (String) -> Void) {
        guard !features.isEmpty, let out = try? student.run(studentFeeds(feeds, w)) else { return }
        features = features.filter { name in
            guard let s = out[name], let t = reference[name], s.shape == t.shape else {
                log("feature point '\(name)' differs in shape between teacher and student at run time; not used")
                return false
            }
            return true
        }
    }

    /// The loss on one sample and, when `seeds` is asked for, the cotangent of every student output.
    private func loss(_ out: [String: NDArray], refs: [String: NDArray], seeds: inout [String: NDArray]?) throws -> Double {
        var total = 0.0
        for (name, useKL) in zip(outputs, kl) {
            guard let y = out[name], let r = refs[name] else { continue }
            guard y.shape == r.shape else {
                throw DistillError.outputMismatch(output: name, reason: "the teacher computes shape \(r.shape), the student \(y.shape) on the same inputs")
            }
            let yv = y.doubles(), rv = r.doubles()
            let (l, g) = useKL ? DistillLoss.kl(student: yv, teacher: rv, classes: y.shape.last ?? 1) : DistillLoss.normalizedMSE(student: yv, teacher: rv)
            total += l
            if seeds != nil { seeds?[name] = GateMath.array(g, like: y) }
        }
        if featureWeight > 0 && !features.isEmpty {
            let w = featureWeight / Double(features.count)
            for name in features {
                guard let y = out[name], let r = refs[name], y.shape == r.shape else { continue }
                let (l, g) = DistillLoss.normalizedMSE(student: y.doubles(), teacher: r.doubles())
                total += w * l
                if seeds != nil { seeds?[name] = GateMath.array(g.map { $0 * w }, like: y) }
            }
        }
        return total
    }

    /// The loss on `feeds` with weights `w`, and its gradient per trained tensor.
    func lossAndGradient(_ feeds: [String: NDArray], refs: [String: NDArray], weights w: [[Double]]) throws -> (Double, [[Double]]) {
        let tape = try student.runRecording(studentFeeds(feeds, w))
        var seeds: [String: NDArray]? = [:]
        let l = try loss(tape.outputs, refs: refs, seeds: &seeds)
        let grads = try tape.backward(seeds: seeds ?? [:], wrt: weights.inputNames)
        let g = weights.params.map { p in grads[p.input].map { $0.doubles() } ?? [Double](repeating: 0, count: p.values.count) }
        return (l, g)
    }

    /// Loss, output MSE, relative L2 and cosine (per row of the last axis) to the teacher,
    /// averaged over `samples` and the outputs.
    func evaluate(_ samples: [[String: NDArray]], refs: [[String: NDArray]], weights w: [[Double]]) throws -> Measures {
        var m = Measures()
        guard !samples.isEmpty else { return m }
        for (feeds, ref) in zip(samples, refs) {
            let out = try student.run(studentFeeds(feeds, w))
            var none: [String: NDArray]? = nil
            m.loss += try loss(out, refs: ref, seeds: &none)
            for name in outputs {
                guard let y = out[name], let r = ref[name] else { continue }
                let yv = y.doubles(), rv = r.doubles()
                let n = Double(outputs.count)
                m.mse += GateMath.mse(yv, rv) / n
                m.relL2 += GateMath.relativeL2(yv, rv) / n
                m.cosine += DistillLoss.rowCosine(yv, rv, width: y.shape.last ?? yv.count) / n
            }
        }
        let k = Double(samples.count)
        return Measures(loss: m.loss / k, mse: m.mse / k, relL2: m.relL2 / k, cosine: m.cosine / k)
    }
}

/// The calibration sets split into training and held-out samples; for denoisers, the sampler of
/// timesteps and noise.
struct DistillData {
    /// Training sets (for denoisers: the clean inputs a draw starts from).
    let train: [[String: NDArray]]
    /// Held-out samples (for denoisers: fixed draws from the held-out sets).
    let held: [[String: NDArray]]
    /// Draws `(t, ε)` per sample for denoisers, `nil` otherwise.
    let diffusion: DiffusionDraws?

    init(student: Model, options: DistillPass.Options, context: PassContext) throws {
        let sets = context.calibration
        let n = sets.count
        // The held-out fraction of the samples, at least one when asked for (an error with one sample).
        let asked = options.heldOut > 0 ? max(1, Int((Double(n) * options.heldOut).rounded())) : 0
        let heldCount = try CalibrationData.heldOutCount(asked, of: n, pass: DistillPass.name, option: "held-out",
                                                         value: String(format: "%g", options.heldOut))
        train = Array(sets.prefix(n - heldCount))
        let heldSets = Array(sets.suffix(heldCount))
        let isDenoiser: Bool
        switch options.diffusion {
        case .some(let on): isDenoiser = on
        case .none: isDenoiser = (try? DenoiserInputs.map(student)) != nil
        }
        if isDenoiser {
            let inputs = try DenoiserInputs.map(student)
            let (process, summary) = try options.process.resolve(model: student, inputs: inputs, modelURL: context.modelURL)
            context.logger.info("distill: denoiser '\(inputs.sample)' → '\(inputs.output)': \(summary)")
            let draws = DiffusionDraws(inputs: inputs, process: process)
            var rng = NoiseSource(seed: context.seed ^ 0x4E1D0)
            held = heldSets.flatMap { set in (0..<options.draws).map { _ in draws.draw(set, rng: &rng) } }
            diffusion = draws
        } else {
            held = heldSets
            diffusion = nil
        }
    }
}

/// Noisy latents for a denoiser: a noise level uniform over the process
/// (``DiffusionProcess/noising(_:)``; VP: `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε`).
struct DiffusionDraws {
    let inputs: DenoiserInputs
    let process: DiffusionProcess

    /// `set` with its latent replaced by a noised one and its timestep by the drawn level's
    /// (`x₀`: the set's latent, or standard normal noise when it has none).
    func draw(_ set: [String: NDArray], rng: inout NoiseSource) -> [String: NDArray] {
        let level = process.noising(rng.uniform())
        let shape = set[inputs.sample]?.shape ?? inputs.sampleShape
        let eps = rng.normal(shape, dtype: inputs.sampleType).doubles()
        let x0 = set[inputs.sample]?.doubles() ?? rng.normal(shape, dtype: inputs.sampleType).doubles()
        let xt = zip(x0, eps).map { level.inputScale * (level.signal * $0 + level.noise * $1) }
        var out = set
        out[inputs.sample] = GateMath.array(xt, like: NDArray(zeros: inputs.sampleType, shape: shape))
        out[inputs.timestep] = inputs.timestepArray(level.time)
        return out
    }
}
