import Foundation
import PruneIR
import PruneRuntime

/// Which graph inputs of a denoiser exported alone are the latent, the timestep and the
/// conditioning, and which output is the prediction.
///
/// Found by name and shape: the latent is the float input shaped like the prediction (names with
/// `sample`/`latent` first), the timestep an input of rank ≤ 1 named like `timestep`/`time`/`t`/
/// `sigma`; every other input is conditioning. `sample=` and `timestep=` options override.
public struct DenoiserInputs: Sendable {
    /// The latent input.
    public let sample: String
    /// The latent's shape (symbolic dims bound to 1).
    public let sampleShape: [Int]
    /// The latent's element type.
    public let sampleType: DType
    /// The timestep input.
    public let timestep: String
    /// The timestep's shape and element type.
    public let timestepShape: [Int]
    /// The timestep's element type.
    public let timestepType: DType
    /// The prediction output.
    public let output: String
    /// The other inputs (text embeddings, class labels, ...).
    public let conditioning: [String]
    /// Whether the output holds the prediction and a learned variance, concatenated on the channel
    /// axis (DiT-XL/2, PixArt, improved DDPM: twice the latent's channels): the prediction is the
    /// first half.
    public var learnedSigma: Bool = false

    /// Maps `model`'s inputs (except `excluding`, e.g. mask inputs).
    ///
    /// - Throws: ``DenoiserError`` naming what could not be found and how to name it.
    public static func map(_ model: Model, sample: String? = nil, timestep: String? = nil, excluding: Set<String> = []) throws -> DenoiserInputs {
        let inputs = model.graph.inputs.filter { $0.initializer == nil && !excluding.contains($0.name) }
        let names = inputs.map(\.name)
        guard let out = model.graph.outputs.first(where: { $0.type?.elementType?.isFloatingPoint == true }), let outShape = out.type?.shape else {
            throw DenoiserError.noPrediction(model.graph.outputs.map(\.name))
        }
        func concrete(_ s: Shape) -> [Int] { s.dims.map { $0.value ?? 1 } }
        /// 1 when `s` is the prediction's shape, 2 when the prediction has twice its channels
        /// (learned sigma), `nil` otherwise; unknown dims match.
        func channelRatio(_ s: Shape) -> Int? {
            guard s.rank == outShape.rank else { return nil }
            let rest = zip(s.dims, outShape.dims).enumerated().allSatisfy { i, p in i == 1 || p.0 == p.1 || p.0.value == nil || p.1.value == nil }
            guard rest else { return nil }
            guard s.rank > 1, let c = s.dims[1].value, let o = outShape.dims[1].value else { return 1 }
            return o == c ? 1 : (o == 2 * c ? 2 : nil)
        }
        let latent: Value
        if let sample {
            guard let v = inputs.first(where: { $0.name == sample }) else { throw DenoiserError.unknownInput(option: "sample", name: sample, inputs: names) }
            latent = v
        } else {
            let floats = inputs.filter { $0.type?.elementType?.isFloatingPoint == true }
            // Shaped like the prediction first; like half of it (learned sigma) only if none is.
            var candidates = floats.filter { v in v.type?.shape.flatMap(channelRatio) == 1 }
            if candidates.isEmpty { candidates = floats.filter { v in v.type?.shape.flatMap(channelRatio) == 2 } }
            let named = candidates.first { v in ["sample", "latent"].contains { v.name.lowercased().contains($0) } }
            guard let v = named ?? candidates.first else {
                throw DenoiserError.noLatent(output: out.name, shape: "\(outShape)", inputs: inputs.map { "\($0.name) \($0.type.map { "\($0)" } ?? "?")" })
            }
            latent = v
        }
        let time: Value
        if let timestep {
            guard let v = inputs.first(where: { $0.name == timestep }) else { throw DenoiserError.unknownInput(option: "timestep", name: timestep, inputs: names) }
            guard v !== latent, (v.type?.shape?.rank ?? 0) <= 1 else {
                throw DenoiserError.notATimestep(name: timestep, shape: v.type?.shape.map { "\($0)" } ?? "?", latent: latent.name)
            }
            time = v
        } else {
            let candidates = inputs.filter { $0 !== latent && ($0.type?.shape?.rank ?? 9) <= 1 }
            let named = candidates.first { v in
                let n = v.name.lowercased()
                return n.contains("timestep") || n.contains("time") || n == "t" || n.contains("sigma")
            }
            guard let v = named else { throw DenoiserError.noTimestep(inputs: names.filter { $0 != latent.name }) }
            time = v
        }
        guard let lt = latent.type?.elementType, let ls = latent.type?.shape, let tt = time.type?.elementType else {
            throw DenoiserError.noLatent(output: out.name, shape: "\(outShape)", inputs: names)
        }
        guard lt.isFloatingPoint, let ratio = channelRatio(ls) else {
            throw DenoiserError.shapeMismatch(sample: latent.name, sampleShape: "\(ls)", output: out.name, outputShape: "\(outShape)")
        }
        var mapped = DenoiserInputs(
            sample: latent.name, sampleShape: concrete(ls), sampleType: lt, timestep: time.name,
            timestepShape: time.type?.shape.map(concrete) ?? [1], timestepType: tt, output: out.name,
            conditioning: names.filter { $0 != latent.name && $0 != time.name })
        mapped.learnedSigma = ratio == 2
        return mapped
    }

    /// The prediction inside the output's values: all of them, or the first half of the channels
    /// of each batch row (learned sigma).
    public func prediction(_ y: [Double], shape: [Int]) -> [Double] {
        guard learnedSigma, shape.count > 1, shape[1] % 2 == 0 else { return y }
        let inner = shape.dropFirst(2).reduce(1, *), half = shape[1] / 2 * inner, row = shape[1] * inner
        var out: [Double] = []
        out.reserveCapacity(y.count / 2)
        for b in 0 ..< shape[0] { out += y[(b * row) ..< (b * row + half)] }
        return out
    }

    /// The output-shaped gradient for a gradient `g` of the prediction: zeros for the variance half.
    public func outputGradient(_ g: [Double], shape: [Int]) -> [Double] {
        guard learnedSigma, shape.count > 1, shape[1] % 2 == 0 else { return g }
        let inner = shape.dropFirst(2).reduce(1, *), half = shape[1] / 2 * inner
        var out: [Double] = []
        out.reserveCapacity(g.count * 2)
        for b in 0 ..< shape[0] {
            out += g[(b * half) ..< ((b + 1) * half)]
            out += repeatElement(0, count: half)
        }
        return out
    }

    /// The timestep input holding `t` (rounded for an integer input).
    public func timestepArray(_ t: Double) -> NDArray {
        let n = timestepShape.reduce(1, *)
        switch timestepType {
        case .double: return NDArray([Double](repeating: t, count: n), shape: timestepShape)
        case .int32: return NDArray([Int32](repeating: Int32(t.rounded()), count: n), shape: timestepShape)
        case .int64: return NDArray([Int64](repeating: Int64(t.rounded()), count: n), shape: timestepShape)
        default: return GateMath.array([Double](repeating: t, count: n), like: NDArray(zeros: timestepType, shape: timestepShape))
        }
    }
}

/// Why a denoiser's inputs could not be mapped.
public enum DenoiserError: Error, CustomStringConvertible {
    case noPrediction([String])
    case noLatent(output: String, shape: String, inputs: [String])
    case noTimestep(inputs: [String])
    case unknownInput(option: String, name: String, inputs: [String])
    case shapeMismatch(sample: String, sampleShape: String, output: String, outputShape: String)
    case ambiguous(input: String)
    case notATimestep(name: String, shape: String, latent: String)

    public var description: String {
        switch self {
        case .noPrediction(let outs):
            return "the model has no floating-point output to use as the prediction (outputs: \(outs.joined(separator: ", ")))"
        case .noLatent(let o, let s, let ins):
            return "no input has the shape of the prediction '\(o)' \(s), so the latent cannot be found (inputs: \(ins.joined(separator: ", "))); name it with sample=NAME, or use objective=output"
        case .noTimestep(let ins):
            return "no input looks like a timestep (inputs: \(ins.joined(separator: ", "))); name it with timestep=NAME, or use objective=output"
        case .shapeMismatch(let i, let iShape, let o, let oShape):
            return "the latent '\(i)' \(iShape) does not match the prediction '\(o)' \(oShape): the prediction must have the latent's shape, or twice its channels (a learned variance); name the latent with sample=NAME, or use objective=output"
        case .notATimestep(let n, let shape, let latent):
            return n == latent
                ? "timestep=\(n) names the latent input; the timestep is another input (one value per batch item)"
                : "timestep=\(n) has shape \(shape); a timestep holds one value per batch item (rank 0 or 1)"
        case .ambiguous(let t):
            return "cannot tell how the denoiser reads its timestep input '\(t)' (no scheduler_config.json beside the model, and the name says neither timestep nor sigma): set schedule=vp|edm|consistency|flow (and prediction= if it is not the family's usual)"
        case .unknownInput(let opt, let n, let ins):
            return "\(opt)=\(n) names no input of the model (inputs: \(ins.joined(separator: ", ")))"
        }
    }
}
