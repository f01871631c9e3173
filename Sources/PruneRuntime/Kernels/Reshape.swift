import Foundation
import PruneIR

// Ops that only change the shape: Reshape, Flatten, Squeeze, Unsqueeze. All are views of their
// input (no copy).
func registerReshapeKernels(_ r: inout KernelRegistry) {
    // Reshape-1 took the shape as an attribute; from 5 it is an input; 14 added `allowzero`.
    r.register("Reshape", since: 1) { info in
        guard let target: [Int] = try info.attribute("shape") else { throw KernelError.unsupported("Reshape-1 without a shape attribute") }
        return ClosureKernel { inputs, _ in
            let x = try inputs.required(0)
            return [x.reshaped(try reshapeTarget(x.shape, target, allowZero: false))]
        }
    }
    let reshape: KernelFactory = { info in
        let allowZero = try info.attribute("allowzero", default: 0) != 0
        return ClosureKernel { inputs, _ in
            let x = try inputs.required(0)
            let target = try inputs.required(1).ints()
            return [x.reshaped(try reshapeTarget(x.shape, target, allowZero: allowZero))]
        }
    }
    r.register("Reshape", since: 5, reshape)
    r.register("Reshape", since: 14, reshape)

    // Flatten: 11 allowed negative axes (harmless to accept earlier).
    r.register("Flatten", since: 1) { info in
        let axis: Int = try info.attribute("axis", default: 1)
        return ClosureKernel { inputs, _ in
            let x = try inputs.required(0)
            let a = axis < 0 ? axis + x.rank : axis
            guard a >= 0, a <= x.rank else { throw KernelError("Flatten axis \(axis) out of range for rank \(x.rank)") }
            let outer = x.shape[..<a].reduce(1, *)
            return [x.reshaped([outer, x.shape[a...].reduce(1, *)])]
        }
    }

    // Squeeze/Unsqueeze: `axes` is an attribute before opset 13, an input from 13.
    let squeeze: (Bool) -> KernelFactory = { fromInput in
        { info in
            let attrAxes: [Int]? = fromInput ? nil : try info.attribute("axes")
            return ClosureKernel { inputs, _ in
                let x = try inputs.required(0)
                let axes = fromInput ? inputs.optional(1)?.ints() : attrAxes
                var keep = [Bool](repeating: true, count: x.rank)
                if let axes {
                    for a in axes {
                        let n = try normalizedAxis(a, rank: x.rank)
                        guard x.shape[n] == 1 else { throw KernelError("Squeeze axis \(a) has size \(x.shape[n]), not 1") }
                        keep[n] = false
                    }
                } else {
                    for (i, d) in x.shape.enumerated() where d == 1 { keep[i] = false }
                }
                return [x.reshaped(x.shape.indices.filter { keep[$0] }.map { x.shape[$0] })]
            }
        }
    }
    r.register("Squeeze", since: 1, squeeze(false))
    r.register("Squeeze", since: 13, squeeze(true))

    let unsqueeze: (Bool) -> KernelFactory = { fromInput in
        { info in
            // Axes from a constant input are read once (exporters write them as constants).
            let fixedAxes: [Int]? = fromInput
                ? info.constantInput(1).flatMap { try? NDArray(tensor: $0).ints() }
                : try info.attribute("axes")
            return ClosureKernel { inputs, _ in
                let x = try inputs.required(0)
                guard let axes = fixedAxes ?? (fromInput ? inputs.optional(1)?.ints() : nil) else {
                    throw KernelError("Unsqueeze needs axes")
                }
                let rank = x.rank + axes.count
                var inserted = [Bool](repeating: false, count: rank)
                for a in axes {
                    let n = try normalizedAxis(a, rank: rank)
                    guard !inserted[n] else { throw KernelError("Unsqueeze axis \(a) repeated") }
                    inserted[n] = true
                }
                var shape: [Int] = []
                shape.reserveCapacity(rank)
                var next = 0
                for i in 0..<rank {
                    if inserted[i] { shape.append(1) } else { shape.append(x.shape[next]); next += 1 }
                }
                return [x.reshaped(shape)]
            }
        }
    }
    r.register("Unsqueeze", since: 1, unsqueeze(false))
    r.register("Unsqueeze", since: 13, unsqueeze(true))
}

/// The shape Reshape produces: `0` copies the input dimension (unless `allowZero`), one `-1` is
/// inferred from the element count.
func reshapeTarget(_ input: [Int], _ target: [Int], allowZero: Bool) throws -> [Int] {
    var out = target
    var inferred: Int? = nil
    for (i, d) in target.enumerated() {
        if d == 0 && !allowZero {
            guard i < input.count else { throw KernelError("Reshape: 0 at position \(i) but the input has rank \(input.count)") }
            out[i] = input[i]
        } else if d == -1 {
            guard inferred == nil else { throw KernelError("Reshape: more than one -1 in \(target)") }
            inferred = i
        } else if d < 0 {
            throw KernelError("Reshape: invalid dimension \(d) in \(target)")
        }
    }
    let count = input.reduce(1, *)
    if let i = inferred {
        let known = out.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
        guard known != 0, count % known == 0 else {
            throw KernelError("Reshape: cannot reshape \(input) to \(target)")
        }
        out[i] = count / known
    }
    guard out.reduce(1, *) == count else { throw KernelError("Reshape: cannot reshape \(input) to \(target)") }
    return out
}

// MARK: Gradients

/// VJP of the ops that only relabel the shape (Reshape, Flatten, Squeeze, Unsqueeze): the
/// cotangent with the input's shape.
func registerReshapeGradients(_ r: inout GradientRegistry) {
    r.register(["Reshape", "Flatten", "Squeeze", "Unsqueeze"]) { c, gs in
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        return [g.reshaped(x.shape)]
    }
}
