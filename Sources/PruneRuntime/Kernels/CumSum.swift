import Foundation
import PruneIR

// CumSum: running sums along one axis (the axis is an input), optionally exclusive or reversed.
func registerCumSumKernels(_ r: inout KernelRegistry) {
    r.register("CumSum", since: 11) { info in
        let exclusive = try info.attribute("exclusive", default: 0) != 0
        let reverse = try info.attribute("reverse", default: 0) != 0
        if let t = info.inputType(0), !cumSumTypes.contains(t) { throw KernelError.unsupported("CumSum of \(t)") }
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            guard let axisValue = try inputs.required(1).ints().first else { throw KernelError("CumSum axis is empty") }
            let a = try normalizedAxis(axisValue, rank: x.rank)
            let out = ctx.allocate(x.dtype, x.shape)
            let dims = (x.shape[..<a].reduce(1, *), x.rank == 0 ? 1 : x.shape[a], x.shape[(min(a + 1, x.rank))...].reduce(1, *))
            switch x.dtype {
            case .float: cumSum(x, out, Float.self, dims, exclusive, reverse, ctx, add: +)
            case .double: cumSum(x, out, Double.self, dims, exclusive, reverse, ctx, add: +)
            case .float16: cumSum(x, out, Float16.self, dims, exclusive, reverse, ctx, add: +)
            case .int32: cumSum(x, out, Int32.self, dims, exclusive, reverse, ctx, add: &+)
            case .int64: cumSum(x, out, Int64.self, dims, exclusive, reverse, ctx, add: &+)
            case .uint32: cumSum(x, out, UInt32.self, dims, exclusive, reverse, ctx, add: &+)
            case .uint64: cumSum(x, out, UInt64.self, dims, exclusive, reverse, ctx, add: &+)
            default: throw KernelError("CumSum of \(x.dtype) is not supported")
            }
            return [out]
        }
    }
}

private let cumSumTypes: Set<DType> = [.float, .double, .float16, .int32, .int64, .uint32, .uint64]

/// Sums along the middle of `(outer, n, inner)`; the inner dimension is the vectorized loop.
/// `add` is `+` for floats and the wrapping `&+` for integers (ONNX integer sums wrap).
@inline(__always)
private func cumSum<T: Numeric>(
    _ x: NDArray, _ out: NDArray, _: T.Type, _ dims: (Int, Int, Int), _ exclusive: Bool, _ reverse: Bool,
    _ ctx: KernelContext, add: (T, T) -> T
) {
    let (outer, n, inner) = dims
    let src = x.pointer(as: T.self), dst = out.pointer(as: T.self)
    ctx.parallelFor(outer, grain: max(1, 65536 / max(n * inner, 1))) { range in
        for o in range {
            let base = o * n * inner
            var prev: UnsafeMutablePointer<T>? = nil
            for step in 0..<n {
                let i = reverse ? n - 1 - step : step
                let d = dst + base + i * inner
                if let p = prev {
                    // exclusive: out[i] = out[i-1] + x[i-1]; inclusive: out[i] = out[i-1] + x[i].
                    let s = src + base + (exclusive ? (reverse ? i + 1 : i - 1) : i) * inner
                    for j in 0..<inner { d[j] = add(p[j], s[j]) }
                } else if exclusive {
                    d.update(repeating: 0, count: inner)
                } else {
                    d.update(from: src + base + i * inner, count: inner)
                }
                prev = d
            }
        }
    }
}
