import Foundation
import PruneRuntime

/// A diffusers scheduler's `scheduler_config.json`, as `save_pretrained` writes it into a pipeline
/// directory (and optimum's ONNX exports keep it): `pipeline/scheduler/scheduler_config.json`
/// beside `pipeline/unet/model.onnx` or `pipeline/transformer/model.onnx`.
///
/// Only what prunec's samplers need is read: the class name (which family), the training steps,
/// the β schedule, the prediction type, EDM's σ range, and flow's shift.
public struct SchedulerConfig: Sendable, Equatable {
    /// The file, as found (relative to the current directory when the model path was).
    public var path: String
    /// diffusers' `_class_name`.
    public var className: String
    /// The family the class samples (`nil` for a class prunec does not know).
    public var kind: DiffusionProcess.Kind?
    /// DDPMScheduler samples ancestrally; every other VP scheduler is read as DDIM.
    public var sampler: NoiseSchedule.Sampler
    public var trainSteps: Int?
    public var betas: NoiseSchedule.Betas?
    public var betaStart: Double?
    public var betaEnd: Double?
    public var prediction: NoiseSchedule.Prediction?
    public var sigmaMin: Double?
    public var sigmaMax: Double?
    public var sigmaData: Double?
    public var rho: Double?
    /// Flow: the static shift, and the dynamic-shift parameters (FLUX).
    public var staticShift: Double?
    public var dynamicShift: (base: Double, max: Double, baseLength: Double, maxLength: Double)?

    public static func == (a: SchedulerConfig, b: SchedulerConfig) -> Bool { a.path == b.path && a.className == b.className }

    /// The config of the pipeline a model file belongs to: `scheduler_config.json` beside it, or
    /// `scheduler/scheduler_config.json` beside it or one folder up; `nil` when there is none.
    ///
    /// - Throws: ``SchedulerConfigError`` when the file exists but is not a scheduler config.
    public static func find(near modelURL: URL) throws -> SchedulerConfig? {
        let dir = modelURL.deletingLastPathComponent()
        let candidates = [
            dir.appendingPathComponent("scheduler_config.json"),
            dir.appendingPathComponent("scheduler/scheduler_config.json"),
            dir.deletingLastPathComponent().appendingPathComponent("scheduler/scheduler_config.json"),
        ]
        guard let url = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else { return nil }
        return try load(url)
    }

    /// Reads one config file.
    ///
    /// - Throws: ``SchedulerConfigError`` naming the file.
    public static func load(_ url: URL) throws -> SchedulerConfig {
        let path = url.relativePath
        guard let data = FileManager.default.contents(atPath: url.path) else { throw SchedulerConfigError(path: path, reason: "cannot be read") }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw SchedulerConfigError(path: path, reason: "is not a JSON object")
        }
        guard let name = json["_class_name"] as? String else { throw SchedulerConfigError(path: path, reason: "has no _class_name") }
        func number(_ key: String) -> Double? { (json[key] as? NSNumber)?.doubleValue }
        var c = SchedulerConfig(path: path, className: name, kind: nil, sampler: name == "DDPMScheduler" ? .ddpm : .ddim)
        if name.hasPrefix("FlowMatch") {
            c.kind = .flow
        } else if name.hasPrefix("EDM") {
            c.kind = .edm
        } else if name.hasPrefix("CMStochastic") {
            c.kind = .consistency
        } else if json["beta_schedule"] != nil || json["beta_start"] != nil {
            c.kind = .vp
        }
        c.trainSteps = number("num_train_timesteps").map { Int($0) }
        c.betaStart = number("beta_start")
        c.betaEnd = number("beta_end")
        if let b = json["beta_schedule"] as? String {
            switch b {
            case "linear": c.betas = .linear
            case "scaled_linear": c.betas = .scaledLinear
            case "squaredcos_cap_v2": c.betas = .cosine
            default: throw SchedulerConfigError(path: path, reason: "has beta_schedule '\(b)', which prunec cannot sample; pass betas=linear|scaled-linear|cosine")
            }
        }
        if let p = json["prediction_type"] as? String {
            switch p {
            case "epsilon": c.prediction = .epsilon
            case "v_prediction": c.prediction = .v
            case "sample": c.prediction = .x0
            case "flow_prediction": c.prediction = .velocity
            default: throw SchedulerConfigError(path: path, reason: "has prediction_type '\(p)'; pass prediction=epsilon|v|x0|velocity")
            }
        }
        c.sigmaMin = number("sigma_min")
        c.sigmaMax = number("sigma_max")
        c.sigmaData = number("sigma_data")
        c.rho = number("rho")
        c.staticShift = number("shift")
        if json["use_dynamic_shifting"] as? Bool == true {
            c.dynamicShift = (number("base_shift") ?? 0.5, number("max_shift") ?? 1.15,
                              number("base_image_seq_len") ?? 256, number("max_image_seq_len") ?? 4096)
        }
        return c
    }

    /// Flow's shift for a latent of `latentShape`: the static `shift`, or with dynamic shifting
    /// `exp(μ)`, μ interpolated over the image's token count (FLUX's `calculate_shift`; tokens:
    /// the second axis of a packed `[batch, tokens, channels]` latent, else H·W/4 for 2×2 patches).
    public func shift(latentShape: [Int]) -> Double? {
        guard let d = dynamicShift else { return staticShift }
        let tokens = latentShape.count == 3 ? Double(latentShape[1]) : Double(latentShape.dropFirst(2).reduce(1, *)) / 4
        let m = (d.max - d.base) / max(d.maxLength - d.baseLength, 1)
        return Foundation.exp(tokens * m + d.base - m * d.baseLength)
    }
}

/// A scheduler config that cannot be used.
public struct SchedulerConfigError: Error, CustomStringConvertible {
    /// The file.
    public var path: String
    /// What is wrong with it.
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}
