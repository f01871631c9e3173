import Foundation
import PruneIR

// ArgMax, ArgMin, TopK: index-producing selections along one axis.

func registerArgTopKKernels(_ r: inout KernelRegistry) {
    // select_last_index (12) and negative axes (11) only add cases; one kernel serves all versions.
    r.register("ArgMax", since: 1) { info in try ArgKernel(info, isMax: true) }
    r.register("ArgMin", since: 1) { info in try ArgKernel(info, isMax: false) }
    // TopK: k is an attribute in version 1 and an input from 10 on.
    r.register("TopK", since: 1) { info in try TopKKernel(info, kFromInput: false) }
    r.register("TopK", since: 10) { info in try TopKKernel(info, kFromInput: true) }
}

/// Calls `body` with the Swift element type of `dtype` for the comparable numeric types.
/// bfloat16 is not listed: callers widen it to float first.
@inline(__always)
func withComparableType<R>(_ dtype: DType, _ body: (any (Comparable & TensorElement).Type) throws -> R) throws -> R {
    switch dtype {
    case .float: return try body(Float.self)
    case .double: return try body(Double.self)
    case .float16: return try body(Float16.self)
    case .int8: return try body(Int8.self)
    case .int16: return try body(Int16.self)
    case .int32: return try body(Int32.self)
    case .int64: return try body(Int64.self)
    case .uint8: return try body(UInt8.self)
    case .uint16: return try body(UInt16.self)
    case .uint32: return try body(UInt32.self)
    case .uint64: return try body(UInt64.self)
    default: throw KernelError("element type \(dtype) is not supported")
    }
}

private let comparableTypes: [DType] = [.float, .double, .float16, .bfloat16, .int8, .int16, .int32, .int64,
                                        .uint8, .uint16, .uint32, .uint64]

/// (outer, n, inner) sizes of `shape` around `axis`.
@inline(__always)
private func axisLayout(_ shape: [Int], _ axis: Int) -> (outer: Int, n: Int, inner: Int) {
    (shape.prefix(axis).reduce(1, *), shape[axis], shape.dropFirst(axis + 1).reduce(1, *))
}

/// ArgMax / ArgMin: int64 indices of the extreme element along `axis`.
final class ArgKernel: Kernel {
    let isMax: Bool
    let axis: Int
    let keepdims: Bool
    let selectLast: Bool

    init(_ info: KernelBuildInfo, isMax: Bool) throws {
        self.isMax = isMax
        axis = try info.attribute("axis", default: 0)
        keepdims = try info.attribute("keepdims", default: 1) != 0
        selectLast = try info.attribute("select_last_index", default: 0) != 0
        if let t = info.inputType(0), !comparableTypes.contains(t) {
            throw KernelError.unsupported("element type \(t)")
        }
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        var x = try inputs.required(0)
        if x.dtype == .bfloat16 { x = FloatBridge.toFloat(x, ctx) }
        let rank = x.rank
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw KernelError("axis \(axis) out of range for rank \(rank)") }
        let (outer, n, inner) = axisLayout(x.shape, a)
        var shape = x.shape
        if keepdims { shape[a] = 1 } else { shape.remove(at: a) }
        let out = ctx.allocate(.int64, shape)
        if out.count == 0 { return [out] }
        guard n > 0 else { throw KernelError("cannot take an arg\(isMax ? "max" : "min") over an empty axis") }
        try withComparableType(x.dtype) { t in
            func go<E: Comparable & TensorElement>(_: E.Type) {
                let xp = x.pointer(as: E.self), yp = out.pointer(as: Int64.self)
                let isMax = self.isMax, last = self.selectLast
                ctx.parallelFor(outer * inner, grain: max(1, 4096 / n)) { range in
                    for k in range {
                        let o = k / inner, j = k - o * inner
                        let p = xp + o * n * inner + j
                        var best = 0
                        var bv = p[0]
                        for i in 1..<max(1, n) {
                            let v = p[i * inner]
                            let better = isMax ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv)
                            if better { best = i; bv = v }
                        }
                        yp[k] = Int64(best)
                    }
                }
            }
            go(t)
        }
        return [out]
    }
}

/// TopK: the k largest (or smallest) elements along `axis` and their int64 indices, sorted with
/// ties broken by the lower index (as the ONNX reference does).
final class TopKKernel: Kernel {
    let kAttribute: Int?
    let axis: Int
    let largest: Bool

    init(_ info: KernelBuildInfo, kFromInput: Bool) throws {
        kAttribute = kFromInput ? nil : try info.attribute("k", default: 0)
        axis = try info.attribute("axis", default: -1)
        largest = try info.attribute("largest", default: 1) != 0
        // `sorted = 0` leaves the order unspecified; sorted output satisfies it.
        if let t = info.inputType(0), !comparableTypes.contains(t) {
            throw KernelError.unsupported("element type \(t)")
        }
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x0 = try inputs.required(0)
        let x = x0.dtype == .bfloat16 ? FloatBridge.toFloat(x0, ctx) : x0
        let k: Int
        if let ka = kAttribute { k = ka } else {
            let kt = try inputs.required(1)
            guard kt.count == 1 else { throw KernelError("k must hold one value, has shape \(kt.shape)") }
            k = kt.ints()[0]
        }
        let rank = x.rank
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw KernelError("axis \(axis) out of range for rank \(rank)") }
        let (outer, n, inner) = axisLayout(x.shape, a)
        guard k >= 0 && k <= n else { throw KernelError("k = \(k) out of range for axis of size \(n)") }
        var shape = x.shape
        shape[a] = k
        let values = ctx.allocate(x.dtype, shape)
        let indices = ctx.allocate(.int64, shape)
        if values.count > 0 {
            try withComparableType(x.dtype) { t in
                func go<E: Comparable & TensorElement>(_: E.Type) {
                    TopKKernel.select(x.pointer(as: E.self), values.pointer(as: E.self), indices.pointer(as: Int64.self),
                                      outer: outer, n: n, inner: inner, k: k, largest: largest, ctx)
                }
                go(t)
            }
        }
        let v = x0.dtype == .bfloat16 ? FloatBridge.fromFloat(values, to: .bfloat16, ctx) : values
        return [v, indices]
    }

    static func select<E: Comparable>(
        _ xp: UnsafeMutablePointer<E>, _ vp: UnsafeMutablePointer<E>, _ ip: UnsafeMutablePointer<Int64>,
        outer: Int, n: Int, inner: Int, k: Int, largest: Bool, _ ctx: KernelContext
    ) {
        ctx.parallelFor(outer * inner, grain: max(1, 2048 / max(1, n))) { range in
            var row = [E]()
            row.reserveCapacity(n)
            var order = [Int]()
            order.reserveCapacity(n)
            for c in range {
                let o = c / inner, j = c - o * inner
                let src = xp + o * n * inner + j
                row.removeAll(keepingCapacity: true)
                for i in 0..<n { row.append(src[i * inner]) }
                // `before(a, b)`: a ranks ahead of b (the better value, or the same value at a lower index).
                @inline(__always) func before(_ a: Int, _ b: Int) -> Bool {
                    let va = row[a], vb = row[b]
                    if va == vb { return a < b }
                    return largest ? va > vb : va < vb
                }
                order.removeAll(keepingCapacity: true)
                if k <= 16 {
                    // Keep a sorted buffer of the best k: cheap when k is small.
                    for i in 0..<n {
                        if order.count == k {
                            if !before(i, order[k - 1]) { continue }
                            order.removeLast()
                        }
                        var pos = order.count
                        while pos > 0 && before(i, order[pos - 1]) { pos -= 1 }
                        order.insert(i, at: pos)
                    }
                } else {
                    order.append(contentsOf: 0..<n)
                    order.sort(by: before)
                }
                let base = o * k * inner + j
                for r in 0..<k {
                    vp[base + r * inner] = row[order[r]]
                    ip[base + r * inner] = Int64(order[r])
                }
            }
        }
    }
}
