import Foundation
import PruneIR

// Expand (broadcast to a shape) and Tile (repeat): strided copies with zero strides.
func registerExpandKernels(_ r: inout KernelRegistry) {
    r.register("Expand", since: 8) { _ in
        ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let target = try inputs.required(1).ints()
            let shape = try Broadcast.shape(x.shape, target)
            if shape == x.shape { return [x] }
            let out = try ctx.allocate(x.dtype, checking: shape)
            Layout.stridedCopy(src: x.rawPointer, srcOffset: 0, srcStrides: Broadcast.strides(of: x.shape, to: shape),
                               dst: out.rawPointer, shape: shape, elementSize: elementSize(x.dtype), context: ctx)
            return [out]
        }
    }

    // Tile-6 and later: `repeats` is a 1-D input with one entry per dimension.
    r.register("Tile", since: 6) { _ in
        ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let repeats = try inputs.required(1).ints()
            guard repeats.count == x.rank, repeats.allSatisfy({ $0 >= 0 }) else {
                throw KernelError("Tile repeats \(repeats) do not fit input shape \(x.shape)")
            }
            let outShape = try zip(x.shape, repeats).map { d, r in
                let (n, overflow) = d.multipliedReportingOverflow(by: r)
                if overflow { throw KernelError("Tile repeats \(repeats) of input shape \(x.shape) overflow") }
                return n
            }
            if repeats.allSatisfy({ $0 == 1 }) { return [x] }
            let out = try ctx.allocate(x.dtype, checking: outShape)
            // Read the output as [r0, d0, r1, d1, ...]: the repeat dimensions have stride 0.
            let strides = Broadcast.contiguousStrides(x.shape)
            var shape: [Int] = [], srcStrides: [Int] = []
            for i in 0..<x.rank {
                shape += [repeats[i], x.shape[i]]
                srcStrides += [0, strides[i]]
            }
            Layout.stridedCopy(src: x.rawPointer, srcOffset: 0, srcStrides: srcStrides, dst: out.rawPointer,
                               shape: shape, elementSize: elementSize(x.dtype), context: ctx)
            return [out]
        }
    }
}

// MARK: Gradients

/// VJPs of Expand (the cotangent summed down to the input's shape) and Tile (summed over the
/// tiles). The target shape and the repeats get none.
func registerExpandGradients(_ r: inout GradientRegistry) {
    r.register(["Expand"]) { c, gs in
        guard c.needs(0) else { return [nil, nil] }
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        return [GradientMath.reduce(g, to: x.shape, c.kernel), nil]
    }
    r.register(["Tile"]) { c, gs in
        guard c.needs(0) else { return [nil, nil] }
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        if g.shape == x.shape { return [g, nil] }
        // The cotangent read as [r0, d0, r1, d1, ...], summed over the repeat dimensions.
        let repeats = try c.input(1).ints()
        if g.count == 0 { return [c.kernel.zeros(x.dtype, x.shape), nil] }
        var tiled: [Int] = [], single: [Int] = []
        for (d, rep) in zip(x.shape, repeats) {
            tiled += [rep, d]
            single += [1, d]
        }
        return [GradientMath.reduce(g.reshaped(tiled), to: single, c.kernel).reshaped(x.shape), nil]
    }
}
