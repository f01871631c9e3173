import Foundation
import PruneIR
import PruneRuntime

/// The options that say how a denoiser is sampled or noised, shared by `ecodiff`, `ld-pruner` and
/// `distill`. Each defaults to `auto`, resolved by ``resolve(model:inputs:modelURL:)``.
public struct DiffusionOptions: PassOptionGroup, Equatable {
    /// The process family (``DiffusionProcess/Kind``), or auto.
    public enum Schedule: String, PassOptionEnum { case auto, vp, edm, consistency, flow }
    /// What the model predicts, or auto.
    public enum Prediction: String, PassOptionEnum { case auto, epsilon, v, x0, velocity }
    /// Where EDM's preconditioning is, or auto.
    public enum Precondition: String, PassOptionEnum { case auto, inside, outside }
    /// The VP sampler, or auto.
    public enum Sampler: String, PassOptionEnum { case auto, ddim, ddpm }
    /// The VP β schedule, or auto.
    public enum Betas: String, PassOptionEnum {
        case auto, linear
        case scaledLinear = "scaled-linear"
        case cosine
    }

    @PassOption("schedule", help: "denoiser family: vp (DDPM/DDIM betas), edm (Karras sigmas, Euler), consistency, flow (rectified flow, Euler); auto: the scheduler_config.json of a diffusers pipeline, else an input named sigma means edm, else vp")
    public var schedule: Schedule = .auto
    @PassOption("prediction", help: "what the denoiser predicts (v: VP v-prediction; velocity: rectified flow's noise − x0); auto: the scheduler config, else the family's usual")
    public var prediction: Prediction = .auto
    @PassOption("precondition", help: "edm/consistency: EDM's c_in/c_noise/c_skip/c_out inside the graph (it takes sigma) or outside (raw network, as diffusers); auto: outside with a diffusers scheduler config, else inside")
    public var precondition: Precondition = .auto
    @PassOption("sampler", help: "vp sampler; auto: ddpm for a DDPMScheduler config, else ddim")
    public var sampler: Sampler = .auto
    @PassOption("betas", help: "vp noise schedule; auto: the scheduler config, else scaled-linear")
    public var betas: Betas = .auto
    @PassOption("sigma-min", .between(0, 1e6), help: "edm/consistency smallest sigma (0: the scheduler config, else 0.002)")
    public var sigmaMin = 0.0
    @PassOption("sigma-max", .between(0, 1e6), help: "edm/consistency largest sigma (0: the scheduler config, else 80)")
    public var sigmaMax = 0.0
    @PassOption("sigma-data", .between(0, 1e6), help: "edm/consistency data standard deviation (0: the scheduler config, else 0.5)")
    public var sigmaData = 0.0
    @PassOption("rho", .between(0, 100), help: "edm/consistency Karras rho (0: the scheduler config, else 7)")
    public var rho = 0.0
    @PassOption("shift", .between(0, 1000), help: "flow time shift (0: the scheduler config, else 1)")
    public var shift = 0.0
    @PassOption("time-scale", .between(0, 1e6), help: "flow: the timestep fed at t=1 (0: 1 when the graph multiplies its timestep by the training steps itself, as FLUX's, else the training steps)")
    public var timeScale = 0.0

    public init() {}

    public func validate() throws {
        if sigmaMin > 0, sigmaMax > 0, sigmaMin >= sigmaMax {
            throw OptionError(key: "sigma-min", message: "(\(sigmaMin)) must be below sigma-max (\(sigmaMax))")
        }
        switch (schedule, prediction) {
        case (.vp, .velocity): throw OptionError(key: "prediction", message: "velocity is rectified flow's; with schedule=vp use epsilon, v or x0")
        case (.flow, .epsilon), (.flow, .v): throw OptionError(key: "prediction", message: "\(prediction.rawValue) is not a rectified-flow prediction; use velocity or x0")
        default: break
        }
    }

    /// The process `inputs`'s denoiser was trained with, and where each choice came from.
    ///
    /// In order: the options set here; the `scheduler_config.json` of a diffusers pipeline beside
    /// the model (``SchedulerConfig/find(near:)``); the graph (a timestep input named like
    /// `sigma` means EDM with the preconditioning inside; a timestep multiplied by a constant
    /// right away sets flow's ``DiffusionProcess/timeScale``); the family's usual values.
    ///
    /// - Throws: ``DenoiserError/ambiguous(_:)`` when nothing says how the timestep input is read
    ///   (an input named `t` or `time` with no scheduler config), naming the option to set;
    ///   ``OptionError`` for a choice the family cannot take; ``SchedulerConfigError`` for an
    ///   unreadable scheduler config.
    public func resolve(model: Model, inputs: DenoiserInputs, modelURL: URL?) throws -> (process: DiffusionProcess, summary: String) {
        let config = try modelURL.flatMap { try SchedulerConfig.find(near: $0) }
        let timeName = inputs.timestep.lowercased()
        var kind: DiffusionProcess.Kind
        var source = "options"
        if let k = DiffusionProcess.Kind(rawValue: schedule.rawValue) {
            kind = k
        } else if let c = config?.kind {
            kind = c
            source = config!.path
        } else if timeName.contains("sigma") {
            kind = .edm
            source = "the input '\(inputs.timestep)'"
        } else if timeName.contains("timestep") || inputs.learnedSigma || prediction == .epsilon || prediction == .v {
            kind = .vp
            source = "defaults"
        } else {
            throw DenoiserError.ambiguous(input: inputs.timestep)
        }
        let trainSteps = config?.trainSteps ?? 1000
        let vpBetas: NoiseSchedule.Betas
        switch betas {
        case .auto: vpBetas = config?.betas ?? .scaledLinear
        case .linear: vpBetas = .linear
        case .scaledLinear: vpBetas = .scaledLinear
        case .cosine: vpBetas = .cosine
        }
        let pre: DiffusionProcess.Precondition
        switch precondition {
        case .inside: pre = .inside
        case .outside: pre = .outside
        case .auto: pre = config?.kind == kind && (kind == .edm || kind == .consistency) ? .outside : .inside
        }
        let pred: NoiseSchedule.Prediction
        if let p = NoiseSchedule.Prediction(rawValue: prediction.rawValue) {
            pred = p
        } else if let p = config?.prediction, config?.kind == kind {
            pred = p
        } else {
            switch kind {
            case .vp: pred = .epsilon
            case .edm, .consistency: pred = pre == .inside ? .x0 : .epsilon
            case .flow: pred = .velocity
            }
        }
        if kind == .vp, pred == .velocity { throw OptionError(key: "prediction", message: "velocity is rectified flow's; this denoiser is read as schedule=vp") }
        if kind == .flow, pred == .epsilon || pred == .v { throw OptionError(key: "schedule", message: "flow takes prediction=velocity or x0, not \(pred.rawValue)") }
        let vpSampler: NoiseSchedule.Sampler = sampler == .auto ? (config?.sampler ?? .ddim) : (sampler == .ddpm ? .ddpm : .ddim)
        func pick(_ option: Double, _ fromConfig: Double?, _ fallback: Double) -> Double { option > 0 ? option : (fromConfig ?? fallback) }
        var process = DiffusionProcess(
            kind: kind, prediction: pred, precondition: pre,
            schedule: NoiseSchedule(vpBetas, trainSteps: trainSteps, betaStart: config?.betaStart, betaEnd: config?.betaEnd),
            sampler: vpSampler,
            sigmaMin: pick(sigmaMin, config?.sigmaMin, 0.002), sigmaMax: pick(sigmaMax, config?.sigmaMax, 80),
            sigmaData: pick(sigmaData, config?.sigmaData, 0.5), rho: pick(rho, config?.rho, 7),
            shift: pick(shift, config?.shift(latentShape: inputs.sampleShape), 1), timeScale: Double(trainSteps))
        if process.sigmaMin >= process.sigmaMax {
            throw OptionError(key: "sigma-min", message: "(\(process.sigmaMin)) must be below sigma-max (\(process.sigmaMax))")
        }
        if kind == .flow {
            process.timeScale = timeScale > 0 ? timeScale : Double(trainSteps) / (Self.timestepMultiplier(model, input: inputs.timestep) ?? 1)
        }
        var summary = "\(kind.rawValue), \(pred.rawValue) prediction"
        switch kind {
        case .vp: summary += ", \(vpBetas.rawValue) betas, \(vpSampler.rawValue)"
        case .edm, .consistency:
            summary += ", preconditioning \(pre.rawValue), sigma \(process.sigmaMin)…\(process.sigmaMax), sigma_data \(process.sigmaData), rho \(process.rho)"
        case .flow: summary += ", shift \(String(format: "%.3g", process.shift)), timestep fed as t×\(String(format: "%g", process.timeScale))"
        }
        summary += " (from \(source))"
        return (process, summary)
    }

    /// The constant the graph multiplies its timestep input by before anything else reads it
    /// (through Casts), when that is all it does with it: FLUX's transformer takes t ∈ [0, 1] and
    /// multiplies by 1000 itself.
    static func timestepMultiplier(_ model: Model, input: String) -> Double? {
        guard var v = model.graph.inputs.first(where: { $0.name == input }) else { return nil }
        while v.uses.count == 1, v.uses[0].node.opType == .cast, let next = v.uses[0].node.outputs.first { v = next }
        guard v.uses.count == 1, v.uses[0].node.opType == .mul else { return nil }
        let mul = v.uses[0].node
        guard let other = mul.inputs.first(where: { $0 !== v }), let t = other?.constantValue, t.elementCount == 1,
              let c = try? NDArray(tensor: t).doubles().first, c >= 10 else { return nil }
        return c
    }
}
