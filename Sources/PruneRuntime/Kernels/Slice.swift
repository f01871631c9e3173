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
    r.register("Slice", since: 10) { _ in
        ClosureKernel { inputs, ctx in
            [try slice(try inputs.required(0), starts: try inputs.required(1).ints(), ends: try inputs.required(2).ints(),
                       axes: inputs.optional(3)?.ints(), steps: inputs.optional(4)?.ints(), ctx)]
        }
    }
}

/// ONNX Slice: negative starts/ends count from the end and are clamped to the axis; negative
/// steps walk backwards. A slice that is one contiguous block is returned as a view.
func slice(_ x: NDArray, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?, _ ctx: KernelContext) throws -> NDArray {
    let rank = x.rank
    let axes = axes ?? Array(0..<starts.count)
    guard starts.count == ends.count, axes.count == starts.count, steps.map({ $0.count == starts.count }) ?? true else {
        throw KernelError("Slice: starts, ends, axes and steps differ in length")
    }
    var begin = [Int](repeating: 0, count: rank)
    var step = [Int](repeating: 1, count: rank)
    var count = x.shape
    var seen = Set<Int>()
    for (k, axis) in axes.enumerated() {
        let a = try normalizedAxis(axis, rank: rank)
        guard seen.insert(a).inserted else { throw KernelError("Slice: axis \(axis) repeated") }
        let dim = x.shape[a]
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
    let strides = Broadcast.contiguousStrides(x.shape)
    let offset = count.contains(0) ? 0 : zip(begin, strides).reduce(0) { $0 + $1.0 * $1.1 }
    let size = elementSize(x.dtype)
    // Contiguous when, past the first dimension that is not taken whole, every dimension is whole
    // with step 1 and the ones before it are single elements.
    if let d = (0..<rank).first(where: { count[$0] != x.shape[$0] || (step[$0] != 1 && count[$0] > 1) }) {
        let wholeAfter = ((d + 1)..<rank).allSatisfy { count[$0] == x.shape[$0] && (step[$0] == 1 || count[$0] <= 1) }
        let singleBefore = (0..<d).allSatisfy { count[$0] == 1 }
        if wholeAfter && singleBefore && (step[d] == 1 || count[d] <= 1) {
            return NDArray(dtype: x.dtype, shape: count, storage: x.storage, byteOffset: x.byteOffset + offset * size)
        }
    } else {
        return x
    }
    let out = ctx.allocate(x.dtype, count)
    Layout.stridedCopy(src: x.rawPointer, srcOffset: offset, srcStrides: zip(step, strides).map { $0 * $1 },
                       dst: out.rawPointer, shape: count, elementSize: size, context: ctx)
    return out
}
