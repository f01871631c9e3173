import Foundation
import PruneIR

// Concat and Split: block copies along one axis, for any element type.
func registerConcatSplitKernels(_ r: inout KernelRegistry) {
    // Concat: axis required from 4 (default 1 before), negative from 11.
    r.register("Concat", since: 1) { info in
        let axis: Int = try info.attribute("axis", default: 1)
        return ClosureKernel { inputs, ctx in
            let arrays = inputs.compactMap { $0 }
            guard let first = arrays.first else { throw KernelError("Concat needs at least one input") }
            let rank = first.rank
            let a = try normalizedAxis(axis, rank: rank)
            var outShape = first.shape
            outShape[a] = 0
            for x in arrays {
                guard x.rank == rank, x.dtype == first.dtype,
                      zip(x.shape, first.shape).enumerated().allSatisfy({ $0.offset == a || $0.element.0 == $0.element.1 })
                else { throw KernelError("Concat inputs \(arrays.map(\.shape)) do not match along axis \(a)") }
                outShape[a] += x.shape[a]
            }
            let out = ctx.allocate(first.dtype, outShape)
            let size = elementSize(first.dtype)
            let outer = first.shape[..<a].reduce(1, *)
            let inner = first.shape[(a + 1)...].reduce(1, *)
            let outRow = outShape[a] * inner * size
            let dst = out.rawPointer
            var column = 0
            for x in arrays {
                let row = x.shape[a] * inner * size
                let src = x.rawPointer
                if row > 0 {
                    let col = column
                    ctx.parallelFor(outer, grain: max(1, 65536 / row)) { range in
                        for o in range { (dst + o * outRow + col).copyMemory(from: src + o * row, byteCount: row) }
                    }
                }
                column += row
            }
            return [out]
        }
    }

    // Split: sizes from the `split` attribute before 13, from the second input from 13 (opset 1
    // also accepted an input); 18 added `num_outputs` (ceil-sized parts, the last one smaller).
    let split: (_ sizesFromInput: Bool) -> KernelFactory = { fromInput in
        { info in
            let axis: Int = try info.attribute("axis", default: 0)
            let attrSplit: [Int]? = try info.attribute("split")
            let numOutputs: Int? = try info.attribute("num_outputs")
            let outputs = info.node.outputs.count
            return ClosureKernel { inputs, ctx in
                let x = try inputs.required(0)
                let a = try normalizedAxis(axis, rank: x.rank)
                let dim = x.shape[a]
                var sizes: [Int]
                if let s = (fromInput || info.opset == 1 ? inputs.optional(1)?.ints() : nil) ?? attrSplit {
                    sizes = s
                } else if let n = numOutputs {
                    guard n > 0 else { throw KernelError("Split num_outputs must be positive") }
                    let part = (dim + n - 1) / n
                    sizes = (0..<n).map { max(0, min(part, dim - $0 * part)) }
                } else {
                    guard outputs > 0, dim % outputs == 0 else {
                        throw KernelError("Split: axis size \(dim) does not divide into \(outputs) equal parts")
                    }
                    sizes = Array(repeating: dim / outputs, count: outputs)
                }
                guard sizes.count == outputs, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == dim else {
                    throw KernelError("Split sizes \(sizes) do not fit axis size \(dim) and \(outputs) outputs")
                }
                let size = elementSize(x.dtype)
                let outer = x.shape[..<a].reduce(1, *)
                let inner = x.shape[(a + 1)...].reduce(1, *)
                let inRow = dim * inner * size
                var column = 0
                var results: [NDArray?] = []
                for s in sizes {
                    var shape = x.shape
                    shape[a] = s
                    let row = s * inner * size
                    if outer == 1 {
                        // A part of a leading-axis split is a contiguous block: a view.
                        results.append(NDArray(dtype: x.dtype, shape: shape, storage: x.storage, byteOffset: x.byteOffset + column))
                    } else {
                        let out = ctx.allocate(x.dtype, shape)
                        let src = x.rawPointer + column, dst = out.rawPointer
                        if row > 0 {
                            ctx.parallelFor(outer, grain: max(1, 65536 / row)) { range in
                                for o in range { (dst + o * row).copyMemory(from: src + o * inRow, byteCount: row) }
                            }
                        }
                        results.append(out)
                    }
                    column += row
                }
                return results
            }
        }
    }
    r.register("Split", since: 1, split(false))
    r.register("Split", since: 13, split(true))
}

// MARK: Gradients

/// VJPs of Concat (each input gets its block of the cotangent) and Split (the outputs'
/// cotangents concatenated back, zeros for outputs no gradient reached).
func registerConcatSplitGradients(_ r: inout GradientRegistry) {
    r.register(["Concat"]) { c, gs in
        let y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let axis: Int = try c.attribute("axis", default: 1)
        let a = try normalizedAxis(axis, rank: y.rank)
        let gStrides = Broadcast.contiguousStrides(g.shape)
        let size = elementSize(g.dtype)
        var start = 0
        var result: [NDArray?] = []
        for (i, x) in c.inputs.enumerated() {
            guard let x else { result.append(nil); continue }
            defer { start += x.shape[a] }
            guard c.needs(i) else { result.append(nil); continue }
            // Input i's block: the cotangent read from column `start` along the axis.
            let gx = c.kernel.allocate(g.dtype, x.shape)
            Layout.stridedCopy(src: g.rawPointer, srcOffset: start * gStrides[a], srcStrides: gStrides,
                               dst: gx.rawPointer, shape: x.shape, elementSize: size, context: c.kernel)
            result.append(gx)
        }
        return result
    }
    r.register(["Split"]) { c, gs in
        guard c.needs(0) else { return [nil] }
        let x = try c.input(0)
        let axis: Int = try c.attribute("axis", default: 0)
        let a = try normalizedAxis(axis, rank: x.rank)
        let size = elementSize(x.dtype)
        let outer = x.shape[..<a].reduce(1, *)
        let inner = x.shape[(a + 1)...].reduce(1, *)
        let inRow = x.shape[a] * inner * size
        let gx = c.kernel.allocate(x.dtype, x.shape)
        let dst = gx.rawPointer
        var column = 0
        for k in c.outputs.indices {
            let y = try c.output(k)
            let row = y.shape[a] * inner * size
            defer { column += row }
            guard row > 0 else { continue }
            let col = column
            if let g = k < gs.count ? gs[k] : nil {
                let src = g.rawPointer
                c.kernel.parallelFor(outer, grain: max(1, 65536 / row)) { range in
                    for o in range { (dst + o * inRow + col).copyMemory(from: src + o * row, byteCount: row) }
                }
            } else {
                for o in 0..<outer { memset(dst + o * inRow + col, 0, row) }
            }
        }
        return [gx]
    }
}
