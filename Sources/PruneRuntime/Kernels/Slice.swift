import Foundation
import PruneIR

// Slice: starts/ends/axes are attributes in opset 1, inputs (with steps) from 10.
func registerSliceKernels(_ r: inout KernelRegistry) {
    r.register("Slice", since: 1) { info in
        guard let starts: [Int] = try info.attribute("starts"), let ends: [Int] = try info.attribute("ends") else {
            throw KernelError("Slice-1 needs starts and ends")
        }
        let axes: [Int]? = try info.attribute("axes")
        return ClosureKernel { inputs, ctx in
            [try slice(try inputs.required(0), starts: starts, ends: ends, axes: axes, steps: nil, ctx)]
        }
    }
    r.register("Slice", since: 10) { info in
        // Exporters give starts/ends/axes/steps as constants (read once here) or as shape
        // arithmetic that repeats each run: either way the plan of the last call is kept.
        let fixed = (1...4).map { i in info.constantInput(i).flatMap { try? NDArray(tensor: $0).ints() } }
        return SliceKernel(fixed: fixed)
    }
}

/// Slice (opset 10 on) that keeps the plan of its last call: planning (axes, clamping, whether
/// the result is a view) costs more than a small slice itself, and a model's slices see the same
/// shape and bounds on every run.
final class SliceKernel: Kernel {
    /// starts, ends, axes, steps when constant (index 0...3 for inputs 1...4).
    let fixed: [[Int]?]
    private let lock = NSLock()
    private var lastKey: [Int] = []
    private var lastPlan: SlicePlan?

    init(fixed: [[Int]?]) { self.fixed = fixed }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        func operand(_ k: Int) throws -> [Int]? {
            if let f = fixed[k] { return f }
            return k < 2 ? try inputs.required(k + 1).ints() : inputs.optional(k + 1)?.ints()
        }
        let starts = try operand(0)!, ends = try operand(1)!, axes = try operand(2), steps = try operand(3)
        // The key: shape, then each list with its length (-1 for an absent one).
        var key = x.shape
        key.reserveCapacity(x.rank + starts.count * 4 + 4)
        for list in [starts, ends, axes, steps] {
            if let list { key.append(list.count); key += list } else { key.append(-1) }
        }
        lock.lock()
        let cached = lastKey == key ? lastPlan : nil
        lock.unlock()
        if let cached { return [cached.apply(x, ctx)] }
        let plan = try SlicePlan(x.shape, starts: starts, ends: ends, axes: axes, steps: steps)
        lock.lock()
        (lastKey, lastPlan) = (key, plan)
        lock.unlock()
        return [plan.apply(x, ctx)]
    }
}

/// Where a slice of an array of one shape reads: a view (one contiguous block) or a strided copy.
struct SlicePlan {
    let count: [Int]
    /// Element offset of the first element read.
    let offset: Int
    /// Source strides of the copy, nil when the slice is a view.
    let srcStrides: [Int]?
    /// The slice takes everything.
    let whole: Bool

    init(_ shape: [Int], starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws {
        let rank = shape.count
        let (begin, step, count) = try slicePlan(shape, starts: starts, ends: ends, axes: axes, steps: steps)
        let strides = Broadcast.contiguousStrides(shape)
        self.count = count
        offset = count.contains(0) ? 0 : zip(begin, strides).reduce(0) { $0 + $1.0 * $1.1 }
        // Contiguous when, past the first dimension that is not taken whole, every dimension is whole
        // with step 1 and the ones before it are single elements.
        if let d = (0..<rank).first(where: { count[$0] != shape[$0] || (step[$0] != 1 && count[$0] > 1) }) {
            whole = false
            let wholeAfter = ((d + 1)..<rank).allSatisfy { count[$0] == shape[$0] && (step[$0] == 1 || count[$0] <= 1) }
            let singleBefore = (0..<d).allSatisfy { count[$0] == 1 }
            srcStrides = wholeAfter && singleBefore && (step[d] == 1 || count[d] <= 1) ? nil : zip(step, strides).map { $0 * $1 }
        } else {
            whole = true
            srcStrides = nil
        }
    }

    func apply(_ x: NDArray, _ ctx: KernelContext) -> NDArray {
        if whole { return x }
        let size = elementSize(x.dtype)
        guard let srcStrides else {
            return NDArray(dtype: x.dtype, shape: count, storage: x.storage, byteOffset: x.byteOffset + offset * size)
        }
        let out = ctx.allocate(x.dtype, count)
        Layout.stridedCopy(src: x.rawPointer, srcOffset: offset, srcStrides: srcStrides,
                           dst: out.rawPointer, shape: count, elementSize: size, context: ctx)
        return out
    }
}

/// ONNX Slice: negative starts/ends count from the end and are clamped to the axis; negative
/// steps walk backwards. A slice that is one contiguous block is returned as a view.
func slice(_ x: NDArray, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?, _ ctx: KernelContext) throws -> NDArray {
    try SlicePlan(x.shape, starts: starts, ends: ends, axes: axes, steps: steps).apply(x, ctx)
}

/// Where a Slice reads in an array of `shape`: per dimension the first index, the step and the
/// number of elements taken (dimensions not sliced: 0, 1, the whole dimension).
func slicePlan(_ shape: [Int], starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws
    -> (begin: [Int], step: [Int], count: [Int]) {
    let rank = shape.count
    let axes = axes ?? Array(0..<starts.count)
    guard starts.count == ends.count, axes.count == starts.count, steps.map({ $0.count == starts.count }) ?? true else {
        throw KernelError("Slice: starts, ends, axes and steps differ in length")
    }
    var begin = [Int](repeating: 0, count: rank)
    var step = [Int](repeating: 1, count: rank)
    var count = shape
    var seen = Set<Int>()
    for (k, axis) in axes.enumerated() {
        let a = try normalizedAxis(axis, rank: rank)
        guard seen.insert(a).inserted else { throw KernelError("Slice: axis \(axis) repeated") }
        let dim = shape[a]
        let st = steps?[k] ?? 1
        guard st != 0 else { throw KernelError("Slice: step 0") }
        var s = starts[k], e = ends[k]
        if s < 0 { s += dim }
        if e < 0 { e += dim }
        if st > 0 {
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
            count[a] = e > s ? (e - s + st - 1) / st : 0
        } else {
            s = min(max(s, 0), dim - 1)
            e = min(max(e, -1), dim - 1)
            count[a] = s > e ? (s - e + (-st) - 1) / (-st) : 0
        }
        begin[a] = s
        step[a] = st
    }
    return (begin, step, count)
}

// MARK: Gradients

/// VJP of Slice: the cotangent written back where the slice read, zeros elsewhere.
func registerSliceGradients(_ r: inout GradientRegistry) {
    r.register(["Slice"]) { c, gs in
        guard c.needs(0) else { return [nil] }
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let plan: (begin: [Int], step: [Int], count: [Int])
        if c.opset < 10 {
            guard let starts: [Int] = try c.attribute("starts"), let ends: [Int] = try c.attribute("ends") else {
                throw KernelError("Slice-1 needs starts and ends")
            }
            plan = try slicePlan(x.shape, starts: starts, ends: ends, axes: try c.attribute("axes"), steps: nil)
        } else {
            plan = try slicePlan(x.shape, starts: try c.input(1).ints(), ends: try c.input(2).ints(),
                                 axes: c.inputs.optional(3)?.ints(), steps: c.inputs.optional(4)?.ints())
        }
        let gx = c.kernel.zeros(x.dtype, x.shape)
        guard !plan.count.contains(0) else { return [gx, nil, nil, nil, nil] }
        let strides = Broadcast.contiguousStrides(x.shape)
        let offset = zip(plan.begin, strides).reduce(0) { $0 + $1.0 * $1.1 }
        let dstStrides = zip(plan.step, strides).map { $0 * $1 }
        func scatter<T>(_: T.Type) {
            scatterStrided(g.pointer(as: T.self), into: gx.pointer(as: T.self) + offset, strides: dstStrides, shape: plan.count, c.kernel)
        }
        if x.dtype == .double { scatter(Double.self) } else { scatter(Float.self) }
        return [gx, nil, nil, nil, nil]
    }
}

/// Writes contiguous `src` (row-major in `shape`) to the distinct elements `Σ ik * strides[k]` of
/// `dst` — the inverse of a strided read, for strides that do not overlap.
private func scatterStrided<T>(_ src: UnsafeMutablePointer<T>, into dst: UnsafeMutablePointer<T>, strides: [Int], shape: [Int],
                               _ ctx: KernelContext) {
    let total = shape.reduce(1, *)
    guard total > 0 else { return }
    if shape.isEmpty { dst[0] = src[0]; return }
    let rank = shape.count
    let inner = shape[rank - 1], st = strides[rank - 1]
    ctx.parallelFor(total / inner, grain: max(1, 65536 / max(inner, 1))) { range in
        Layout.forEachRow(range, shape: shape, strides: strides) { row, off in
            let s = src + row * inner, o = dst + off
            if st == 1 { o.update(from: s, count: inner) } else { for i in 0..<inner { o[i * st] = s[i] } }
        }
    }
}
