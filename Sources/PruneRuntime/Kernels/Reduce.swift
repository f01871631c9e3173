import Foundation
import PruneIR

// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
// ReduceLogSum, ReduceLogSumExp, ReduceSumSquare.
//
// The reduced axes are first collapsed into an (outer, reduced, inner) layout; when the reduced
// axes are not one block, the input is transposed so that they are. Each output element is then
// one (possibly strided) row reduction, and rows run in parallel. This file also holds the small
// vectorized float helpers and the float16 conversions the softmax and normalization kernels share.

func registerReduceKernels(_ r: inout KernelRegistry) {
    let ops: [(String, ReduceOp, Int)] = [
        ("ReduceSum", .sum, 13), ("ReduceMean", .mean, 18), ("ReduceMax", .max, 18),
        ("ReduceMin", .min, 18), ("ReduceProd", .prod, 18), ("ReduceL1", .l1, 18),
        ("ReduceL2", .l2, 18), ("ReduceLogSum", .logSum, 18), ("ReduceLogSumExp", .logSumExp, 18),
        ("ReduceSumSquare", .sumSquare, 18),
    ]
    for (name, op, inputSince) in ops {
        // Before `inputSince` the axes are an attribute; from it on, an optional second input.
        r.register(name, since: 1) { info in try ReduceKernel(info, op: op, axesFromInput: false) }
        r.register(name, since: inputSince) { info in try ReduceKernel(info, op: op, axesFromInput: true) }
    }
}

/// Which reduction a ``ReduceKernel`` computes.
enum ReduceOp {
    case sum, mean, max, min, prod, l1, l2, logSum, logSumExp, sumSquare
}

/// Any of the ONNX Reduce* ops.
final class ReduceKernel: Kernel {
    let op: ReduceOp
    let keepdims: Bool
    let noopWithEmptyAxes: Bool
    let attributeAxes: [Int]
    let axesFromInput: Bool

    init(_ info: KernelBuildInfo, op: ReduceOp, axesFromInput: Bool) throws {
        self.op = op
        self.axesFromInput = axesFromInput
        keepdims = try info.attribute("keepdims", default: 1) != 0
        let noop = try info.attribute("noop_with_empty_axes", default: 0)
        noopWithEmptyAxes = axesFromInput && noop != 0
        attributeAxes = axesFromInput ? [] : try info.attribute("axes", default: [Int]())
        if let t = info.inputType(0), !ReduceKernel.supports(t, op) {
            throw KernelError.unsupported("element type \(t)")
        }
    }

    static func supports(_ t: DType, _ op: ReduceOp) -> Bool {
        switch t {
        case .float, .double, .float16, .bfloat16, .int8, .int16, .int32, .int64,
             .uint8, .uint16, .uint32, .uint64:
            return true
        case .bool:
            return op == .max || op == .min
        default:
            return false
        }
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        var axes = attributeAxes
        if axesFromInput, let a = inputs.optional(1) { axes = a.ints() }
        if axes.isEmpty {
            if noopWithEmptyAxes { return [x] }
            axes = Array(0..<x.rank)
        }
        let mask = try ReduceKernel.axisMask(axes, rank: x.rank)
        return [try ReduceKernel.reduce(x, op: op, mask: mask, keepdims: keepdims, ctx)]
    }

    /// A per-dimension flag: whether that axis is reduced. Negative axes count from the end.
    static func axisMask(_ axes: [Int], rank: Int) throws -> [Bool] {
        var mask = [Bool](repeating: false, count: rank)
        for a in axes {
            let n = a < 0 ? a + rank : a
            guard n >= 0 && n < rank else { throw KernelError("axis \(a) out of range for rank \(rank)") }
            mask[n] = true
        }
        return mask
    }

    /// Reduces `x` over the axes flagged in `mask`.
    static func reduce(_ x: NDArray, op: ReduceOp, mask: [Bool], keepdims: Bool, _ ctx: KernelContext) throws -> NDArray {
        var outShape: [Int] = []
        for (d, m) in zip(x.shape, mask) {
            if !m { outShape.append(d) } else if keepdims { outShape.append(1) }
        }
        switch x.dtype {
        case .float: return reduceTyped(x, Float.self, op, mask, outShape, ctx)
        case .double: return reduceTyped(x, Double.self, op, mask, outShape, ctx)
        case .float16, .bfloat16:
            let f = FloatBridge.toFloat(x, ctx)
            return FloatBridge.fromFloat(reduceTyped(f, Float.self, op, mask, outShape, ctx), to: x.dtype, ctx)
        case .int8: return reduceTyped(x, Int8.self, op, mask, outShape, ctx)
        case .int16: return reduceTyped(x, Int16.self, op, mask, outShape, ctx)
        case .int32: return reduceTyped(x, Int32.self, op, mask, outShape, ctx)
        case .int64: return reduceTyped(x, Int64.self, op, mask, outShape, ctx)
        case .uint8: return reduceTyped(x, UInt8.self, op, mask, outShape, ctx)
        case .uint16: return reduceTyped(x, UInt16.self, op, mask, outShape, ctx)
        case .uint32: return reduceTyped(x, UInt32.self, op, mask, outShape, ctx)
        case .uint64: return reduceTyped(x, UInt64.self, op, mask, outShape, ctx)
        case .bool:
            guard op == .max || op == .min else { throw KernelError("\(op) does not accept bool input") }
            return reduceTyped(x, Bool.self, op, mask, outShape, ctx)
        default:
            throw KernelError("element type \(x.dtype) is not supported")
        }
    }

    static func reduceTyped<E: ReduceElement>(
        _ x: NDArray, _: E.Type, _ op: ReduceOp, _ mask: [Bool], _ outShape: [Int], _ ctx: KernelContext
    ) -> NDArray {
        let out = ctx.allocate(x.dtype, outShape)
        let outCount = out.count
        if outCount == 0 { return out }
        let layout = ReduceLayout(shape: x.shape, mask: mask)
        var src = x
        if layout.needsTranspose {
            src = ReduceTranspose.permute(x, layout.permutation, ctx)
        }
        let outer = layout.outer, n = layout.reduced, inner = layout.inner
        let xp = UnsafePointer(src.pointer(as: E.self))
        let yp = out.pointer(as: E.self)
        // Grain keeps tiny rows on one thread.
        let grain = max(1, 16384 / max(1, n))
        if inner == 1 {
            ctx.parallelFor(outer, grain: grain) { range in
                for o in range { yp[o] = E.reduce(op, xp + o * n, n, 1) }
            }
        } else if E.columnwise && inner >= 8 {
            // Reduce whole blocks of columns at once: rows of the block are contiguous.
            let width = 256
            let blocks = (inner + width - 1) / width
            ctx.parallelFor(outer * blocks, grain: max(1, 65536 / max(1, n * width))) { range in
                var acc = [Double](repeating: 0, count: width), aux = acc
                for t in range {
                    let o = t / blocks, j0 = (t - o * blocks) * width
                    let w = Swift.min(width, inner - j0)
                    acc.withUnsafeMutableBufferPointer { a in
                        aux.withUnsafeMutableBufferPointer { m in
                            E.reduceColumns(op, xp + o * n * inner + j0, yp + o * inner + j0, n, inner, w,
                                            a.baseAddress!, m.baseAddress!)
                        }
                    }
                }
            }
        } else {
            ctx.parallelFor(outer * inner, grain: grain) { range in
                for k in range {
                    let o = k / inner, j = k - o * inner
                    yp[k] = E.reduce(op, xp + o * n * inner + j, n, inner)
                }
            }
        }
        return out
    }
}

/// The (outer, reduced, inner) view of a reduction, after dropping size-1 dimensions and merging
/// neighbours reduced alike. When the reduced axes do not form one block, `permutation` moves
/// them last (then `inner` is 1).
struct ReduceLayout {
    var outer = 1, reduced = 1, inner = 1
    var needsTranspose = false
    var permutation: [Int] = []

    init(shape: [Int], mask: [Bool]) {
        // Runs of (size, reduced?) over the non-trivial dimensions.
        var runs: [(Int, Bool)] = []
        for (d, m) in zip(shape, mask) where d != 1 {
            if let last = runs.last, last.1 == m { runs[runs.count - 1].0 *= d } else { runs.append((d, m)) }
        }
        let pattern = runs.map(\.1)
        switch pattern {
        case []: break
        case [true]: reduced = runs[0].0
        case [false]: outer = runs[0].0; reduced = 1
        case [false, true]: outer = runs[0].0; reduced = runs[1].0
        case [true, false]: reduced = runs[0].0; inner = runs[1].0
        case [false, true, false]: outer = runs[0].0; reduced = runs[1].0; inner = runs[2].0
        default:
            needsTranspose = true
            let kept = shape.indices.filter { !mask[$0] }
            let red = shape.indices.filter { mask[$0] }
            permutation = kept + red
            outer = kept.map { shape[$0] }.reduce(1, *)
            reduced = red.map { shape[$0] }.reduce(1, *)
        }
    }
}

/// Strided copies that reorder dimensions (used to make reduced axes contiguous).
enum ReduceTranspose {
    /// A copy of `x` with its dimensions in `perm` order.
    static func permute(_ x: NDArray, _ perm: [Int], _ ctx: KernelContext) -> NDArray {
        let newShape = perm.map { x.shape[$0] }
        let out = ctx.allocate(x.dtype, newShape)
        let srcStrides = Broadcast.contiguousStrides(x.shape)
        let strides = perm.map { srcStrides[$0] }
        let width = NDArray.byteCount(x.dtype, 1)
        func copy<T>(_: T.Type) {
            let s = x.pointer(as: T.self), d = out.pointer(as: T.self)
            Broadcast.forEachRun(shape: newShape, strides: [strides]) { start, offsets, len, inner in
                let st = inner[0]
                var p = offsets[0]
                for i in 0..<len { d[start + i] = s[p]; p += st }
            }
        }
        switch width {
        case 1: copy(UInt8.self)
        case 2: copy(UInt16.self)
        case 4: copy(UInt32.self)
        default: copy(UInt64.self)
        }
        return out
    }
}

/// An element type the reductions handle: one (possibly strided) row reduction.
protocol ReduceElement {
    /// Reduces `n` elements at `p`, `p + s`, ... with `op`.
    static func reduce(_ op: ReduceOp, _ p: UnsafePointer<Self>, _ n: Int, _ s: Int) -> Self
    /// Whether ``reduceColumns(_:_:_:_:_:_:_:_:)`` is implemented.
    static var columnwise: Bool { get }
    /// Reduces `w` adjacent columns of `n` rows `stride` apart into `y[0..<w]`, using `acc` and
    /// `aux` (at least `w` each) as scratch.
    static func reduceColumns(
        _ op: ReduceOp, _ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ n: Int, _ stride: Int, _ w: Int,
        _ acc: UnsafeMutablePointer<Double>, _ aux: UnsafeMutablePointer<Double>
    )
}

extension ReduceElement {
    static var columnwise: Bool { false }
    static func reduceColumns(
        _ op: ReduceOp, _ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ n: Int, _ stride: Int, _ w: Int,
        _ acc: UnsafeMutablePointer<Double>, _ aux: UnsafeMutablePointer<Double>
    ) {
        for j in 0..<w { y[j] = reduce(op, x + j, n, stride) }
    }
}

/// Column-block reduction for floating types, accumulating in Double with loops over contiguous
/// row segments (which vectorize).
@inline(__always)
func floatingColumns<F: BinaryFloatingPoint>(
    _ op: ReduceOp, _ x: UnsafePointer<F>, _ y: UnsafeMutablePointer<F>, _ n: Int, _ stride: Int, _ w: Int,
    _ acc: UnsafeMutablePointer<Double>, _ aux: UnsafeMutablePointer<Double>
) {
    let initial: Double
    switch op {
    case .prod: initial = 1
    case .max, .logSumExp: initial = -.infinity
    case .min: initial = .infinity
    default: initial = 0
    }
    for j in 0..<w { acc[j] = initial }
    switch op {
    case .sum, .mean, .logSum:
        for r in 0..<n { let row = x + r * stride; for j in 0..<w { acc[j] += Double(row[j]) } }
    case .sumSquare, .l2:
        for r in 0..<n { let row = x + r * stride; for j in 0..<w { let v = Double(row[j]); acc[j] += v * v } }
    case .l1:
        for r in 0..<n { let row = x + r * stride; for j in 0..<w { acc[j] += abs(Double(row[j])) } }
    case .prod:
        for r in 0..<n { let row = x + r * stride; for j in 0..<w { acc[j] *= Double(row[j]) } }
    case .max:
        for r in 0..<n { let row = x + r * stride; for j in 0..<w { let v = Double(row[j]); acc[j] = v > acc[j] || v.isNaN ? v : acc[j] } }
    case .min:
        for r in 0..<n { let row = x + r * stride; for j in 0..<w { let v = Double(row[j]); acc[j] = v < acc[j] || v.isNaN ? v : acc[j] } }
    case .logSumExp:
        // Largest finite value per column first, then the shifted sum of exponentials.
        for r in 0..<n {
            let row = x + r * stride
            for j in 0..<w { let v = Double(row[j]); if v.isFinite && v > acc[j] { acc[j] = v } }
        }
        for j in 0..<w { aux[j] = acc[j].isFinite ? acc[j] : 0; acc[j] = 0 }
        for r in 0..<n { let row = x + r * stride; for j in 0..<w { acc[j] += Foundation.exp(Double(row[j]) - aux[j]) } }
    }
    switch op {
    case .mean: for j in 0..<w { y[j] = F(acc[j] / Double(n)) }
    case .l2: for j in 0..<w { y[j] = F(acc[j].squareRoot()) }
    case .logSum: for j in 0..<w { y[j] = F(Foundation.log(acc[j])) }
    case .logSumExp: for j in 0..<w { y[j] = F(Foundation.log(acc[j]) + aux[j]) }
    default: for j in 0..<w { y[j] = F(acc[j]) }
    }
}

extension Float: ReduceElement {
    static var columnwise: Bool { true }
    static func reduceColumns(
        _ op: ReduceOp, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ stride: Int, _ w: Int,
        _ acc: UnsafeMutablePointer<Double>, _ aux: UnsafeMutablePointer<Double>
    ) {
        floatingColumns(op, x, y, n, stride, w, acc, aux)
    }

    static func reduce(_ op: ReduceOp, _ p: UnsafePointer<Float>, _ n: Int, _ s: Int) -> Float {
        if s != 1 { return floatingReduce(op, p, n, s) }
        switch op {
        case .sum: return ReduceVec.sum(p, n)
        case .mean: return n == 0 ? .nan : ReduceVec.sum(p, n) / Float(n)
        case .max: return ReduceVec.max(p, n)
        case .min: return ReduceVec.min(p, n)
        case .sumSquare: return ReduceVec.sumSquares(p, n)
        case .l2: return ReduceVec.sumSquares(p, n).squareRoot()
        case .l1: return ReduceVec.sumAbs(p, n)
        case .logSum: return logf(ReduceVec.sum(p, n))
        default: return floatingReduce(op, p, n, s)
        }
    }
}

extension Double: ReduceElement {
    static var columnwise: Bool { true }
    static func reduceColumns(
        _ op: ReduceOp, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int, _ stride: Int, _ w: Int,
        _ acc: UnsafeMutablePointer<Double>, _ aux: UnsafeMutablePointer<Double>
    ) {
        floatingColumns(op, x, y, n, stride, w, acc, aux)
    }

    static func reduce(_ op: ReduceOp, _ p: UnsafePointer<Double>, _ n: Int, _ s: Int) -> Double {
        floatingReduce(op, p, n, s)
    }
}

/// Floating-point row reduction, accumulating in Double.
@inline(__always)
func floatingReduce<F: BinaryFloatingPoint>(_ op: ReduceOp, _ p: UnsafePointer<F>, _ n: Int, _ s: Int) -> F {
    switch op {
    case .sum, .mean, .logSum:
        var acc = 0.0
        for i in 0..<n { acc += Double(p[i * s]) }
        if op == .mean { return F(acc / Double(n)) }
        return op == .logSum ? F(Foundation.log(acc)) : F(acc)
    case .sumSquare, .l2:
        var acc = 0.0
        for i in 0..<n { let v = Double(p[i * s]); acc += v * v }
        return op == .l2 ? F(acc.squareRoot()) : F(acc)
    case .l1:
        var acc = 0.0
        for i in 0..<n { acc += abs(Double(p[i * s])) }
        return F(acc)
    case .prod:
        var acc = 1.0
        for i in 0..<n { acc *= Double(p[i * s]) }
        return F(acc)
    case .max:
        var m = -F.infinity
        for i in 0..<n { let v = p[i * s]; if v > m || v.isNaN { m = v } }
        return m
    case .min:
        var m = F.infinity
        for i in 0..<n { let v = p[i * s]; if v < m || v.isNaN { m = v } }
        return m
    case .logSumExp:
        // Shift by the largest finite value so that exp does not overflow.
        var m = -Double.infinity
        for i in 0..<n { let v = Double(p[i * s]); if v.isFinite && v > m { m = v } }
        if !m.isFinite { m = 0 }
        var acc = 0.0
        for i in 0..<n { acc += Foundation.exp(Double(p[i * s]) - m) }
        return F(Foundation.log(acc) + m)
    }
}

/// Integer row reduction: sums and products wrap like NumPy's; the others go through Double.
@inline(__always)
func integerReduce<I: FixedWidthInteger>(_ op: ReduceOp, _ p: UnsafePointer<I>, _ n: Int, _ s: Int) -> I {
    @inline(__always) func fromDouble(_ d: Double) -> I {
        guard d.isFinite else { return d > 0 ? I.max : (d < 0 ? I.min : 0) }
        return I(exactly: d.rounded(.towardZero)) ?? (d > 0 ? I.max : I.min)
    }
    switch op {
    case .sum, .mean:
        var acc: I = 0
        for i in 0..<n { acc &+= p[i * s] }
        if op == .mean { return n == 0 ? 0 : acc / I(n) }
        return acc
    case .sumSquare:
        var acc: I = 0
        for i in 0..<n { let v = p[i * s]; acc &+= v &* v }
        return acc
    case .l1:
        var acc: I = 0
        for i in 0..<n { let v = p[i * s]; acc &+= v < 0 ? 0 &- v : v }
        return acc
    case .prod:
        var acc: I = 1
        for i in 0..<n { acc &*= p[i * s] }
        return acc
    case .max:
        var m = I.min
        for i in 0..<n { m = Swift.max(m, p[i * s]) }
        return m
    case .min:
        var m = I.max
        for i in 0..<n { m = Swift.min(m, p[i * s]) }
        return m
    case .l2:
        var acc: I = 0
        for i in 0..<n { let v = p[i * s]; acc &+= v &* v }
        return fromDouble(Double(acc).squareRoot())
    case .logSum:
        var acc: I = 0
        for i in 0..<n { acc &+= p[i * s] }
        return fromDouble(Foundation.log(Double(acc)))
    case .logSumExp:
        var m = -Double.infinity
        for i in 0..<n { m = Swift.max(m, Double(p[i * s])) }
        if !m.isFinite { m = 0 }
        var acc = 0.0
        for i in 0..<n { acc += Foundation.exp(Double(p[i * s]) - m) }
        return fromDouble(Foundation.log(acc) + m)
    }
}

// Every integer type reduces the same way (see ``integerReduce(_:_:_:_:)``).
extension ReduceElement where Self: FixedWidthInteger {
    static func reduce(_ op: ReduceOp, _ p: UnsafePointer<Self>, _ n: Int, _ s: Int) -> Self { integerReduce(op, p, n, s) }
}
extension Int8: ReduceElement {}
extension Int16: ReduceElement {}
extension Int32: ReduceElement {}
extension Int64: ReduceElement {}
extension UInt8: ReduceElement {}
extension UInt16: ReduceElement {}
extension UInt32: ReduceElement {}
extension UInt64: ReduceElement {}
extension Bool: ReduceElement {
    /// Max is "any", min is "all" (the empty max is false, the empty min true).
    static func reduce(_ op: ReduceOp, _ p: UnsafePointer<Bool>, _ n: Int, _ s: Int) -> Bool {
        let want = op == .max
        for i in 0..<n where p[i * s] == want { return want }
        return !want
    }
}

/// Vectorized float32 loops over contiguous elements (float addition is not reassociated by the
/// compiler, so the lanes are explicit). Partial sums go to Double every block to bound rounding.
enum ReduceVec {
    static let block = 4096

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// Sum of `n` elements.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var total = 0.0
        var start = 0
        while start < n {
            let end = Swift.min(n, start + block)
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
            var i = start
            while i + 16 <= end { a0 += load(p, i); a1 += load(p, i + 8); i += 16 }
            var s = (a0 + a1).sum()
            while i < end { s += p[i]; i += 1 }
            total += Double(s)
            start = end
        }
        return Float(total)
    }

    /// Sum of squares of `n` elements.
    @inline(__always)
    static func sumSquares(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var total = 0.0
        var start = 0
        while start < n {
            let end = Swift.min(n, start + block)
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
            var i = start
            while i + 16 <= end {
                let v0 = load(p, i), v1 = load(p, i + 8)
                a0 += v0 * v0; a1 += v1 * v1; i += 16
            }
            var s = (a0 + a1).sum()
            while i < end { s += p[i] * p[i]; i += 1 }
            total += Double(s)
            start = end
        }
        return Float(total)
    }

    /// Sum of `(x - c)²`: the numerator of a two-pass variance.
    @inline(__always)
    static func sumSquaredDiff(_ p: UnsafePointer<Float>, _ n: Int, _ c: Float) -> Float {
        var total = 0.0
        var start = 0
        let cv = SIMD8<Float>(repeating: c)
        while start < n {
            let end = Swift.min(n, start + block)
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
            var i = start
            while i + 16 <= end {
                let v0 = load(p, i) - cv, v1 = load(p, i + 8) - cv
                a0 += v0 * v0; a1 += v1 * v1; i += 16
            }
            var s = (a0 + a1).sum()
            while i < end { let d = p[i] - c; s += d * d; i += 1 }
            total += Double(s)
            start = end
        }
        return Float(total)
    }

    /// Sum of absolute values.
    @inline(__always)
    static func sumAbs(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var total = 0.0
        var start = 0
        while start < n {
            let end = Swift.min(n, start + block)
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
            var i = start
            while i + 16 <= end {
                a0 += abs8(load(p, i)); a1 += abs8(load(p, i + 8)); i += 16
            }
            var s = (a0 + a1).sum()
            while i < end { s += abs(p[i]); i += 1 }
            total += Double(s)
            start = end
        }
        return Float(total)
    }

    @inline(__always)
    static func abs8(_ v: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & SIMD8<UInt32>(repeating: 0x7fff_ffff), to: SIMD8<Float>.self)
    }

    /// Largest element (-inf when empty).
    @inline(__always)
    static func max(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var m0 = SIMD8<Float>(repeating: -.infinity), m1 = m0
        var i = 0
        while i + 16 <= n {
            let v0 = load(p, i), v1 = load(p, i + 8)
            m0 = m0.replacing(with: v0, where: v0 .> m0); m1 = m1.replacing(with: v1, where: v1 .> m1)
            i += 16
        }
        var m = m0.replacing(with: m1, where: m1 .> m0).max()
        while i < n { let v = p[i]; if v > m { m = v }; i += 1 }
        return m
    }

    /// Smallest element (+inf when empty).
    @inline(__always)
    static func min(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var m0 = SIMD8<Float>(repeating: .infinity), m1 = m0
        var i = 0
        while i + 16 <= n {
            let v0 = load(p, i), v1 = load(p, i + 8)
            m0 = m0.replacing(with: v0, where: v0 .< m0); m1 = m1.replacing(with: v1, where: v1 .< m1)
            i += 16
        }
        var m = m0.replacing(with: m1, where: m1 .< m0).min()
        while i < n { let v = p[i]; if v < m { m = v }; i += 1 }
        return m
    }
}


// MARK: Gradients

/// Derivative rules of the reductions, with the cotangent and the output broadcast back from
/// the reduced (keepdims) shape.
private enum ReduceGrad {
    /// Sum, Mean: `g · k` from `(g)`.
    struct Scale: ElementwiseGradient {
        let k: Double
        func apply<T: UnaryMathFloat>(_ g: T, _: T, _: T, _: T) -> T { g * T(k) }
    }
    /// SumSquare: `2gx` from `(g, x)`.
    struct SumSquare: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _: T, _: T) -> T { 2 * g * x } }
    /// L1: `g · sign(x)` from `(g, x)`.
    struct L1: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _: T, _: T) -> T { x > 0 ? g : (x < 0 ? -g : 0) }
    }
    /// L2: `g·x / y` (0 where the norm is 0) from `(g, x, y)`.
    struct L2: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { y == 0 ? 0 : g * x / y }
    }
    /// LogSum: `g / Σx = g·e^(−y)` from `(g, x, y)`.
    struct LogSum: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * T.mExp(-y) } }
    /// LogSumExp: `g·e^(x − y)` from `(g, x, y)`.
    struct LogSumExp: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * T.mExp(x - y) } }
    /// 1 where x attains the output, from `(x, y)`.
    struct Hits: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ x: T, _ y: T, _: T, _: T) -> T { x == y ? 1 : 0 } }
    /// Max, Min: an equal share among the ties, from `(g, x, y, ties)`.
    struct Share: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _ ties: T) -> T { x == y ? g / ties : 0 }
    }
    /// 1 where x is zero, from `(x)`.
    struct IsZero: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ x: T, _: T, _: T, _: T) -> T { x == 0 ? 1 : 0 } }
    /// x with zeros replaced by 1, from `(x)`.
    struct NonZero: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ x: T, _: T, _: T, _: T) -> T { x == 0 ? 1 : x } }
    /// Prod: `g · Π_{j≠i} x_j` from `(g, x, P, Z)`, with P the product of the nonzero elements
    /// and Z the number of zeros in the row.
    struct Prod: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ p: T, _ z: T) -> T {
            z == 0 ? g * p / x : (z == 1 && x == 0 ? g * p : 0)
        }
    }
}

/// VJPs of the Reduce* ops: the cotangent, reshaped to the keepdims shape, broadcast back over
/// the reduced axes (read from the `axes` attribute before ReduceSum-13 / the others' opset 18,
/// from the optional second input from then on; `noop_with_empty_axes` with no axes is the
/// identity). ReduceMax/ReduceMin share the cotangent equally among the elements that tie for
/// the extreme; ReduceProd handles zeros exactly (the product of the other elements); ReduceL1
/// takes sign(0) = 0 and ReduceL2 a zero gradient for a zero norm.
func registerReduceGradients(_ r: inout GradientRegistry) {
    let ops: [String: ReduceOp] = [
        "ReduceSum": .sum, "ReduceMean": .mean, "ReduceMax": .max, "ReduceMin": .min, "ReduceProd": .prod,
        "ReduceL1": .l1, "ReduceL2": .l2, "ReduceLogSum": .logSum, "ReduceLogSumExp": .logSumExp,
        "ReduceSumSquare": .sumSquare,
    ]
    r.register(Array(ops.keys)) { c, gs in
        guard c.needs(0) else { return [nil, nil] }
        let name = c.node.opType.name
        guard let op = ops[name] else { throw KernelError("no gradient for \(name)") }
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let fromInput = c.opset >= (op == .sum ? 13 : 18)
        var axes: [Int]
        if fromInput {
            axes = (c.inputs.count > 1 ? c.inputs[1] : nil)?.ints() ?? []
        } else {
            axes = try c.attribute("axes", default: [Int]())
        }
        if axes.isEmpty {
            let noop: Int = try c.attribute("noop_with_empty_axes", default: 0)
            if fromInput && noop != 0 { return [g, nil] }
            axes = Array(0..<x.rank)
        }
        let mask = try ReduceKernel.axisMask(axes, rank: x.rank)
        let kept = zip(x.shape, mask).map { $1 ? 1 : $0 }
        let gk = g.reshaped(kept), yk = y.reshaped(kept)
        let k = c.kernel
        let dx: NDArray
        switch op {
        case .sum: dx = try gradientMap(ReduceGrad.Scale(k: 1), x.shape, [gk], k)
        case .mean:
            let n = zip(x.shape, mask).filter { $1 }.map { $0.0 }.reduce(1, *)
            dx = try gradientMap(ReduceGrad.Scale(k: 1 / Double(max(1, n))), x.shape, [gk], k)
        case .sumSquare: dx = try gradientMap(ReduceGrad.SumSquare(), x.shape, [gk, x], k)
        case .l1: dx = try gradientMap(ReduceGrad.L1(), x.shape, [gk, x], k)
        case .l2: dx = try gradientMap(ReduceGrad.L2(), x.shape, [gk, x, yk], k)
        case .logSum: dx = try gradientMap(ReduceGrad.LogSum(), x.shape, [gk, x, yk], k)
        case .logSumExp: dx = try gradientMap(ReduceGrad.LogSumExp(), x.shape, [gk, x, yk], k)
        case .max, .min:
            let hits = try gradientMap(ReduceGrad.Hits(), x.shape, [x, yk], k)
            let ties = try ReduceKernel.reduce(hits, op: .sum, mask: mask, keepdims: true, k)
            dx = try gradientMap(ReduceGrad.Share(), x.shape, [gk, x, yk, ties], k)
        case .prod:
            let zeros = try ReduceKernel.reduce(try gradientMap(ReduceGrad.IsZero(), x.shape, [x], k), op: .sum, mask: mask, keepdims: true, k)
            let p = try ReduceKernel.reduce(try gradientMap(ReduceGrad.NonZero(), x.shape, [x], k), op: .prod, mask: mask, keepdims: true, k)
            dx = try gradientMap(ReduceGrad.Prod(), x.shape, [gk, x, p, zeros], k)
        }
        return [dx, nil]
    }
}
