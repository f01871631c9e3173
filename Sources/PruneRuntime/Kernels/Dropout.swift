import Foundation
import PruneIR

// Dropout in inference mode: the output is the input (a view) and the mask is all ones.

func registerDropoutKernels(_ r: inout KernelRegistry) {
    // Versions 1–11 take the ratio as an attribute; from 12 on ratio and training_mode are inputs.
    // Before 10 the mask has the input's type, from 10 on it is bool.
    r.register("Dropout", since: 1) { info in try DropoutKernel(info) }
}

/// Dropout (inference): identity, plus an all-true mask when asked for.
final class DropoutKernel: Kernel {
    let maskType: DType?

    init(_ info: KernelBuildInfo) throws {
        if info.node.outputs.count > 1 && !info.node.outputs[1].isOmitted {
            maskType = info.opset >= 10 ? .bool : (info.inputType(0) ?? info.node.outputs[1].type?.elementType)
        } else {
            maskType = nil
        }
        // Training mode with a non-zero ratio drops at random, which a reference interpreter
        // cannot reproduce; a training_mode fed at run time might be true, so it is refused too.
        if info.opset >= 12 && info.hasInput(2) && info.constantInput(2) == nil {
            throw KernelError.unsupported("training_mode given at run time (random dropout in training mode)")
        }
        if info.opset >= 12, let t = info.constantInput(2), let mode = try? NDArray(tensor: t), mode.count == 1,
           mode.element(at: 0) != 0 {
            // The ratio defaults to 0.5; an unknown ratio may not be 0.
            let ratio: Double? = info.hasInput(1)
                ? info.constantInput(1).flatMap { try? NDArray(tensor: $0) }.map { $0.element(at: 0) }
                : 0.5
            if ratio != 0 { throw KernelError.unsupported("training_mode = true (random dropout)") }
        }
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        if let mode = inputs.optional(2), mode.count > 0, mode.element(at: 0) != 0 {
            let ratio = inputs.optional(1).map { $0.element(at: 0) } ?? 0.5
            if ratio != 0 { throw KernelError("training_mode = true (random dropout) is not supported") }
        }
        guard let maskType else { return [x] }
        let mask = ctx.allocate(maskType, x.shape)
        switch maskType {
        case .bool, .uint8, .int8: memset(mask.rawPointer, 1, mask.count)
        case .float: mask.buffer(as: Float.self).update(repeating: 1)
        case .double: mask.buffer(as: Double.self).update(repeating: 1)
        case .float16: mask.buffer(as: Float16.self).update(repeating: 1)
        default: throw KernelError("mask type \(maskType) is not supported")
        }
        return [x, mask]
    }
}

// MARK: Gradients

/// VJP of Dropout in inference mode (the only mode the kernel runs): the identity on output 0.
/// The mask output, the ratio and training_mode have no gradient.
func registerDropoutGradients(_ r: inout GradientRegistry) {
    r.register(["Dropout"]) { c, gs in
        guard c.needs(0) else { return [nil, nil, nil] }
        let x = try c.input(0)
        return [gs[0].map { $0.reshaped(x.shape) } ?? c.kernel.zeros(x.dtype, x.shape), nil, nil]
    }
}
