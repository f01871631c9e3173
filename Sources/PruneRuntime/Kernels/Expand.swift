import Foundation
import PruneIR

// Expand (broadcast to a shape) and Tile (repeat): strided copies with zero strides.
func registerExpandKernels(_ r: inout KernelRegistry) {
    r.register("Expand", since: 8) { _ in
        ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let target = try inputs.required(1).ints()
            let shape = try Broadcast.shape([x.shape, target])
            if shape == x.shape { return [x] }
            let out = ctx.allocate(x.dtype, shape)
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
            let outShape = zip(x.shape, repeats).map { $0 * $1 }
            if repeats.allSatisfy({ $0 == 1 }) { return [x] }
            let out = ctx.allocate(x.dtype, outShape)
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
