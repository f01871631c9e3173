import Foundation
import PruneIR

// Indexing ops: Gather, GatherElements, GatherND and their inverses ScatterND, ScatterElements
// (and the deprecated Scatter). Negative indices count from the end of their axis.
func registerGatherKernels(_ r: inout KernelRegistry) {
    let gather: KernelFactory = { info in
        let axis: Int = try info.attribute("axis", default: 0)
        return ClosureKernel { inputs, ctx in
            let data = try inputs.required(0), indices = try inputs.required(1)
            let (a, outer, dim, inner, idx) = try gatherAxis(data.shape, indices, axis: axis)
            let outShape = Array(data.shape[..<a]) + indices.shape + Array(data.shape[(a + 1)...])
            let out = ctx.allocate(data.dtype, outShape)
            let n = idx.count
            let size = elementSize(data.dtype)
            let src = UnsafeRawPointer(data.rawPointer), dst = out.rawPointer
            guard inner > 0, n > 0 else { return [out] }
            ctx.parallelFor(outer * n, grain: max(1, 16384 / inner)) { range in
                idx.withUnsafeBufferPointer { idx in
                    for w in range {
                        let o = w / n, j = w - o * n
                        Layout.copyElements(src, (o * dim + idx[j]) * inner, dst, w * inner, count: inner, size: size)
                    }
                }
            }
            return [out]
        }
    }
    r.register("Gather", since: 1, gather)
    r.register("Gather", since: 11, gather)
    r.register("Gather", since: 13, gather)

    r.register("GatherElements", since: 11) { info in
        let axis: Int = try info.attribute("axis", default: 0)
        return ClosureKernel { inputs, ctx in
            let data = try inputs.required(0), indices = try inputs.required(1)
            let a = try normalizedAxis(axis, rank: data.rank)
            guard indices.rank == data.rank else { throw KernelError("GatherElements: indices rank \(indices.rank) differs from data rank \(data.rank)") }
            let idx = try checkedIndices(indices.ints(), data.shape[a], "GatherElements")
            let out = ctx.allocate(data.dtype, indices.shape)
            let size = elementSize(data.dtype)
            let dataStrides = Broadcast.contiguousStrides(data.shape)
            forEachOffset(indices.shape, dataStrides, skipping: a) { i, off in
                Layout.copyElement(data.rawPointer, off + idx[i] * dataStrides[a], out.rawPointer, i, size)
            }
            return [out]
        }
    }

    let gatherND: KernelFactory = { info in
        let batchDims: Int = try info.attribute("batch_dims", default: 0)
        return ClosureKernel { inputs, ctx in
            let data = try inputs.required(0), indices = try inputs.required(1)
            let (offsets, slice, outShape) = try gatherNDSlices(data.shape, indices, batchDims: batchDims)
            let out = ctx.allocate(data.dtype, outShape)
            let size = elementSize(data.dtype)
            for (t, off) in offsets.enumerated() {
                Layout.copyElements(data.rawPointer, off, out.rawPointer, t * slice, count: slice, size: size)
            }
            return [out]
        }
    }
    r.register("GatherND", since: 11, gatherND)
    r.register("GatherND", since: 12, gatherND)

    // ScatterND: `reduction` since 16 (add, mul), 18 (max, min).
    let scatterND: KernelFactory = { info in
        let reduction = try ScatterReduction(info.attribute("reduction", default: "none"))
        return ClosureKernel { inputs, ctx in
            let data = try inputs.required(0), indices = try inputs.required(1), updates = try inputs.required(2)
            let q = indices.rank
            guard q >= 1, let k = indices.shape.last, k <= data.rank,
                  updates.shape == Array(indices.shape[..<(q - 1)]) + Array(data.shape[k...]), updates.dtype == data.dtype else {
                throw KernelError("ScatterND: indices \(indices.shape) / updates \(updates.shape) do not fit data \(data.shape)")
            }
            let combine = try reduction.combiner(data.dtype)
            let out = ctx.allocate(data.dtype, data.shape)
            out.rawPointer.copyMemory(from: data.rawPointer, byteCount: data.byteCount)
            let slice = data.shape[k...].reduce(1, *)
            let offsets = try indexTupleOffsets(indices.ints(), k: k, in: data.shape, batchDims: 0,
                                                perBatch: indices.shape[..<(q - 1)].reduce(1, *), op: "ScatterND")
            for (t, off) in offsets.enumerated() {
                combine(out.rawPointer, off, updates.rawPointer, t * slice, slice)
            }
            return [out]
        }
    }
    r.register("ScatterND", since: 11, scatterND)
    r.register("ScatterND", since: 16, scatterND)
    r.register("ScatterND", since: 18, scatterND)

    let scatterElements: KernelFactory = { info in
        let axis: Int = try info.attribute("axis", default: 0)
        let reduction = try ScatterReduction(info.attribute("reduction", default: "none"))
        return ClosureKernel { inputs, ctx in
            let data = try inputs.required(0), indices = try inputs.required(1), updates = try inputs.required(2)
            let a = try normalizedAxis(axis, rank: data.rank)
            guard indices.rank == data.rank, updates.shape == indices.shape, updates.dtype == data.dtype else {
                throw KernelError("ScatterElements: indices \(indices.shape) / updates \(updates.shape) do not fit data \(data.shape)")
            }
            let combine = try reduction.combiner(data.dtype)
            let idx = try checkedIndices(indices.ints(), data.shape[a], "ScatterElements")
            let out = ctx.allocate(data.dtype, data.shape)
            out.rawPointer.copyMemory(from: data.rawPointer, byteCount: data.byteCount)
            let strides = Broadcast.contiguousStrides(data.shape)
            forEachOffset(indices.shape, strides, skipping: a) { i, off in
                combine(out.rawPointer, off + idx[i] * strides[a], updates.rawPointer, i, 1)
            }
            return [out]
        }
    }
    r.register("Scatter", since: 9, scatterElements)
    r.register("ScatterElements", since: 11, scatterElements)
    r.register("ScatterElements", since: 16, scatterElements)
    r.register("ScatterElements", since: 18, scatterElements)
}

/// Indices with negative values wrapped, or a ``KernelError`` for one outside `[-dim, dim)`.
func checkedIndices(_ idx: [Int], _ dim: Int, _ op: String) throws -> [Int] {
    var out = idx
    for i in out.indices {
        if out[i] < 0 { out[i] += dim }
        guard out[i] >= 0, out[i] < dim else { throw KernelError("\(op): index \(idx[i]) out of range for axis size \(dim)") }
    }
    return out
}

/// Gather's view of data shaped `shape` around `axis`: `[outer, dim, inner]` (`axis` made
/// non-negative), and `indices` wrapped into `0..<dim`.
func gatherAxis(_ shape: [Int], _ indices: NDArray, axis: Int) throws -> (axis: Int, outer: Int, dim: Int, inner: Int, indices: [Int]) {
    let a = try normalizedAxis(axis, rank: shape.count)
    let idx = try checkedIndices(indices.ints(), shape[a], "Gather")
    return (a, shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *), idx)
}

/// Where GatherND reads in data shaped `shape`: the element offset of each slice it copies (in
/// output order), the slice's element count, and the output shape.
func gatherNDSlices(_ shape: [Int], _ indices: NDArray, batchDims b: Int) throws -> (offsets: [Int], slice: Int, outShape: [Int]) {
    let q = indices.rank
    guard q >= 1, let k = indices.shape.last, b >= 0, b < q, b + k <= shape.count,
          Array(shape[..<b]) == Array(indices.shape[..<b]) else {
        throw KernelError("GatherND: indices \(indices.shape) do not fit data \(shape) with batch_dims \(b)")
    }
    let offsets = try indexTupleOffsets(indices.ints(), k: k, in: shape, batchDims: b,
                                        perBatch: indices.shape[b..<(q - 1)].reduce(1, *), op: "GatherND")
    return (offsets, shape[(b + k)...].reduce(1, *), Array(indices.shape[..<(q - 1)]) + Array(shape[(b + k)...]))
}

/// The element offsets in data shaped `shape` of the slices that GatherND / ScatterND index
/// tuples select: `idx` holds tuples of `k` indices (negative ones count from the end) into the
/// dimensions after the first `batchDims`, `perBatch` tuples per batch (the leading dimensions).
func indexTupleOffsets(_ idx: [Int], k: Int, in shape: [Int], batchDims b: Int, perBatch: Int, op: String) throws -> [Int] {
    let batches = shape[..<b].reduce(1, *)
    let batchStride = shape[b...].reduce(1, *)
    let strides = Broadcast.contiguousStrides(shape)
    var offsets = [Int](repeating: 0, count: batches * perBatch)
    for batch in 0..<batches {
        for m in 0..<perBatch {
            let t = batch * perBatch + m
            var off = batch * batchStride
            for j in 0..<k {
                let dim = shape[b + j]
                var v = idx[t * k + j]
                if v < 0 { v += dim }
                guard v >= 0, v < dim else { throw KernelError("\(op): index \(idx[t * k + j]) out of range for axis size \(dim)") }
                off += v * strides[b + j]
            }
            offsets[t] = off
        }
    }
    return offsets
}

/// Calls `body(i, offset)` for each element `i` of `shape` (row-major), where `offset` is the
/// element's position under `strides` with the coordinate along `skipping` left out.
func forEachOffset(_ shape: [Int], _ strides: [Int], skipping axis: Int, _ body: (Int, Int) -> Void) {
    let total = shape.reduce(1, *)
    guard total > 0 else { return }
    let rank = shape.count
    var index = [Int](repeating: 0, count: rank)
    var off = 0
    for i in 0..<total {
        body(i, off)
        var d = rank - 1
        while d >= 0 {
            index[d] += 1
            if d != axis { off += strides[d] }
            if index[d] < shape[d] { break }
            if d != axis { off -= strides[d] * shape[d] }
            index[d] = 0
            d -= 1
        }
    }
}

/// How a scatter combines an update with the element already there.
enum ScatterReduction: String {
    case none, add, mul, max, min

    init(_ name: String) throws {
        guard let r = ScatterReduction(rawValue: name) else { throw KernelError.unsupported("scatter reduction '\(name)'") }
        self = r
    }

    /// `(dst, dstIndex, src, srcIndex, count)`: combines `count` elements of `src` into `dst`.
    typealias Combiner = (UnsafeMutableRawPointer, Int, UnsafeRawPointer, Int, Int) -> Void

    /// The combiner for `dtype`; throws for a reduction the element type has no arithmetic for.
    func combiner(_ dtype: DType) throws -> Combiner {
        if self == .none {
            let size = elementSize(dtype)
            return { dst, di, src, si, n in Layout.copyElements(src, si, dst, di, count: n, size: size) }
        }
        switch dtype {
        case .float: return floating(Float.self)
        case .double: return floating(Double.self)
        case .float16: return floating(Float16.self)
        case .int8: return integer(Int8.self)
        case .int16: return integer(Int16.self)
        case .int32: return integer(Int32.self)
        case .int64: return integer(Int64.self)
        case .uint8: return integer(UInt8.self)
        case .uint16: return integer(UInt16.self)
        case .uint32: return integer(UInt32.self)
        case .uint64: return integer(UInt64.self)
        case .bool:
            // add/max act as "or", mul/min as "and" (bool arithmetic as numpy does it).
            let or = self == .add || self == .max
            return { dst, di, src, si, n in
                let d = dst.assumingMemoryBound(to: UInt8.self) + di, s = src.assumingMemoryBound(to: UInt8.self) + si
                for i in 0..<n { d[i] = or ? (d[i] | s[i] != 0 ? 1 : 0) : (d[i] != 0 && s[i] != 0 ? 1 : 0) }
            }
        default: throw KernelError.unsupported("scatter reduction \(rawValue) on \(dtype)")
        }
    }

    private func floating<T: BinaryFloatingPoint>(_: T.Type) -> Combiner {
        let f: (T, T) -> T
        switch self {
        case .add: f = { $0 + $1 }
        case .mul: f = { $0 * $1 }
        case .max: f = { Swift.max($0, $1) }
        default: f = { Swift.min($0, $1) }
        }
        return { dst, di, src, si, n in
            let d = dst.assumingMemoryBound(to: T.self) + di, s = src.assumingMemoryBound(to: T.self) + si
            for i in 0..<n { d[i] = f(d[i], s[i]) }
        }
    }

    private func integer<T: FixedWidthInteger>(_: T.Type) -> Combiner {
        let f: (T, T) -> T
        switch self {
        case .add: f = { $0 &+ $1 }
        case .mul: f = { $0 &* $1 }
        case .max: f = { Swift.max($0, $1) }
        default: f = { Swift.min($0, $1) }
        }
        return { dst, di, src, si, n in
            let d = dst.assumingMemoryBound(to: T.self) + di, s = src.assumingMemoryBound(to: T.self) + si
            for i in 0..<n { d[i] = f(d[i], s[i]) }
        }
    }
}

// MARK: Gradients

/// VJPs of Gather, GatherElements and GatherND with respect to the data: the cotangent added
/// back where each element was read (indices that repeat accumulate). Indices get none.
func registerGatherGradients(_ r: inout GradientRegistry) {
    r.register(["Gather"]) { c, gs in
        guard c.needs(0) else { return [nil, nil] }
        let data = try c.input(0), indices = try c.input(1), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let (_, outer, dim, inner, idx) = try gatherAxis(data.shape, indices, axis: try c.attribute("axis", default: 0))
        let gx = c.kernel.zeros(data.dtype, data.shape)
        if data.dtype == .double {
            gatherAddBack(g.pointer(as: Double.self), gx.pointer(as: Double.self), idx, outer: outer, dim: dim, inner: inner, c.kernel)
        } else {
            gatherAddBack(g.pointer(as: Float.self), gx.pointer(as: Float.self), idx, outer: outer, dim: dim, inner: inner, c.kernel)
        }
        return [gx, nil]
    }
    r.register(["GatherElements"]) { c, gs in
        guard c.needs(0) else { return [nil, nil] }
        let data = try c.input(0), indices = try c.input(1), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let a = try normalizedAxis(try c.attribute("axis", default: 0), rank: data.rank)
        let idx = try checkedIndices(indices.ints(), data.shape[a], "GatherElements")
        let strides = Broadcast.contiguousStrides(data.shape)
        let gx = c.kernel.zeros(data.dtype, data.shape)
        func add<T: BinaryFloatingPoint>(_: T.Type) {
            let src = g.pointer(as: T.self), dst = gx.pointer(as: T.self)
            forEachOffset(indices.shape, strides, skipping: a) { i, off in dst[off + idx[i] * strides[a]] += src[i] }
        }
        if data.dtype == .double { add(Double.self) } else { add(Float.self) }
        return [gx, nil]
    }
    r.register(["GatherND"]) { c, gs in
        guard c.needs(0) else { return [nil, nil] }
        let data = try c.input(0), indices = try c.input(1), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let (offsets, slice, _) = try gatherNDSlices(data.shape, indices, batchDims: try c.attribute("batch_dims", default: 0))
        let gx = c.kernel.zeros(data.dtype, data.shape)
        func add<T: BinaryFloatingPoint>(_: T.Type) {
            let src = g.pointer(as: T.self), dst = gx.pointer(as: T.self)
            for (t, off) in offsets.enumerated() {
                let s = src + t * slice, d = dst + off
                for i in 0..<slice { d[i] += s[i] }
            }
        }
        if data.dtype == .double { add(Double.self) } else { add(Float.self) }
        return [gx, nil]
    }
}

/// `dst[o, idx[j], i] += src[o, j, i]` for data read as `[outer, dim, inner]` and the cotangent
/// as `[outer, idx.count, inner]`. Work is split over `outer` and blocks of `inner`, which never
/// write the same element, so repeated indices accumulate without races.
private func gatherAddBack<T: BinaryFloatingPoint>(_ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>, _ idx: [Int],
                                                   outer: Int, dim: Int, inner: Int, _ ctx: KernelContext) {
    let n = idx.count
    guard outer > 0, inner > 0, n > 0 else { return }
    let block = 4096
    let blocks = (inner + block - 1) / block
    ctx.parallelFor(outer * blocks, grain: max(1, 16384 / max(1, n * min(inner, block)))) { range in
        idx.withUnsafeBufferPointer { idx in
            for w in range {
                let o = w / blocks, i0 = (w - o * blocks) * block, i1 = min(inner, i0 + block)
                for j in 0..<n {
                    let s = src + (o * n + j) * inner, d = dst + (o * dim + idx[j]) * inner
                    for i in i0..<i1 { d[i] += s[i] }
                }
            }
        }
    }
}
