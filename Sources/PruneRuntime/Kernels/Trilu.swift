import Foundation
import PruneIR

// Trilu: keeps the upper (or lower) triangle of the last two dimensions, zeroing the rest.
func registerTriluKernels(_ r: inout KernelRegistry) {
    r.register("Trilu", since: 14) { info in
        let upper = try info.attribute("upper", default: 1) != 0
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            guard x.rank >= 2 else { throw KernelError("Trilu input must have rank >= 2, it is \(x.shape)") }
            return [triangle(x, upper: upper, k: inputs.optional(1)?.ints().first ?? 0, ctx)]
        }
    }
}

/// The upper (`j >= i + k`) or lower (`j <= i + k`) triangle of each matrix in the last two
/// dimensions of `x` (rank >= 2), zeros elsewhere.
func triangle(_ x: NDArray, upper: Bool, k diagonal: Int, _ ctx: KernelContext) -> NDArray {
    let rows = x.shape[x.rank - 2], cols = x.shape[x.rank - 1]
    // Clamped so that i + k cannot overflow; any |k| beyond rows + cols acts the same.
    let k = min(max(diagonal, -(rows + cols)), rows + cols)
    let matrices = rows * cols == 0 ? 0 : x.count / (rows * cols)
    let size = elementSize(x.dtype)
    let out = ctx.allocate(x.dtype, x.shape)
    let src = x.rawPointer, dst = out.rawPointer
    for m in 0..<matrices {
        for i in 0..<rows {
            let row = (m * rows + i) * cols
            // Kept columns: j >= i + k (upper) or j <= i + k (lower).
            let lo = upper ? min(max(i + k, 0), cols) : 0
            let hi = upper ? cols : min(max(i + k + 1, 0), cols)
            memset(dst + row * size, 0, cols * size)
            if hi > lo { Layout.copyElements(src, row + lo, dst, row + lo, count: hi - lo, size: size) }
        }
    }
    return out
}

// MARK: Gradients

/// VJP of Trilu: the cotangent masked to the same triangle (`k` gets none).
func registerTriluGradients(_ r: inout GradientRegistry) {
    r.register(["Trilu"]) { c, gs in
        guard c.needs(0) else { return [nil, nil] }
        let y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let upper = try c.attribute("upper", default: 1) != 0
        return [triangle(g, upper: upper, k: c.inputs.optional(1)?.ints().first ?? 0, c.kernel), nil]
    }
}
