import Foundation
import PruneIR

// onnxruntime's activation contrib ops: Gelu, BiasGelu, FastGelu, QuickGelu and BiasAdd.
//
// Each is one elementwise map over float32 (float16 is widened and narrowed again, as onnxruntime's
// CPU provider does by casting around its float kernels). The optional bias is a vector over the
// last axis, as in onnxruntime's bias_gelu_helper.
func registerContribActivationKernels(_ r: inout KernelRegistry) {
    let ms = "com.microsoft"
    r.register("Gelu", domain: ms, since: 1) { info in try ContribActivationKernel(info, .gelu, inputs: 1) }
    r.register("BiasGelu", domain: ms, since: 1) { info in try ContribActivationKernel(info, .gelu, inputs: 2) }
    r.register("FastGelu", domain: ms, since: 1) { info in try ContribActivationKernel(info, .fastGelu, inputs: 2) }
    r.register("QuickGelu", domain: ms, since: 1) { info in
        try ContribActivationKernel(info, .quickGelu(try info.attribute("alpha", default: Float(1.702))), inputs: 1)
    }
    r.register("BiasAdd", domain: ms, since: 1) { info in try BiasAddKernel(info) }
}

private func contribActivationType(_ t: DType) -> Bool { t == .float || t == .float16 }

/// Gelu-family activations with an optional bias over the last axis.
final class ContribActivationKernel: Kernel {
    enum Function {
        /// x · Φ(x), with the exact normal CDF.
        case gelu
        /// The tanh approximation: 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³))).
        case fastGelu
        /// x · sigmoid(alpha · x).
        case quickGelu(Float)
    }

    let function: Function
    /// How many inputs the op takes at most (the second is the bias).
    let maxInputs: Int

    init(_ info: KernelBuildInfo, _ function: Function, inputs: Int) throws {
        for i in 0..<inputs {
            if let t = info.inputType(i), !contribActivationType(t) { throw KernelError.unsupported("element type \(t) (float and float16 only)") }
        }
        self.function = function
        maxInputs = inputs
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let biasIn = maxInputs > 1 ? inputs.optional(1) : nil
        guard contribActivationType(x.dtype) else { throw KernelError("element type \(x.dtype) is not supported (float and float16 only)") }
        var v = attentionFloats(x)
        if let biasIn {
            guard biasIn.rank == 1, let n = x.shape.last, biasIn.shape[0] == n, n > 0 else {
                throw KernelError("bias must be 1-D with the input's last axis (\(x.shape.last ?? 0)), got \(biasIn.shape)")
            }
            let b = attentionFloats(biasIn)
            for i in v.indices { v[i] += b[i % n] }
        }
        switch function {
        case .gelu:
            for i in v.indices { v[i] = 0.5 * v[i] * (1 + erf(v[i] * Float(0.5.squareRoot()))) }
        case .fastGelu:
            let c = Float((2 / Double.pi).squareRoot())
            for i in v.indices { let t = v[i]; v[i] = 0.5 * t * (1 + tanh(c * (t + 0.044715 * t * t * t))) }
        case .quickGelu(let alpha):
            for i in v.indices { let t = v[i]; v[i] = t / (1 + exp(-alpha * t)) }
        }
        return [v.withUnsafeBufferPointer { attentionArray($0.baseAddress!, x.dtype, x.shape, context) }]
    }
}

/// `BiasAdd`: input [N, S, C] + bias [C] + skip [N, S, C].
final class BiasAddKernel: Kernel {
    init(_ info: KernelBuildInfo) throws {
        for i in 0..<3 {
            if let t = info.inputType(i), !contribActivationType(t) { throw KernelError.unsupported("element type \(t) (float and float16 only)") }
        }
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), bias = try inputs.required(1), skip = try inputs.required(2)
        guard x.rank == 3, let c = x.shape.last, bias.shape == [c], skip.shape == x.shape else {
            throw KernelError("BiasAdd wants input [N, S, C], bias [C] and skip [N, S, C]; got \(x.shape), \(bias.shape), \(skip.shape)")
        }
        for a in [x, bias, skip] where !contribActivationType(a.dtype) { throw KernelError("element type \(a.dtype) is not supported") }
        var v = attentionFloats(x)
        let b = attentionFloats(bias), s = attentionFloats(skip)
        for i in v.indices { v[i] += b[i % c] + s[i] }
        return [v.withUnsafeBufferPointer { attentionArray($0.baseAddress!, x.dtype, x.shape, context) }]
    }
}
