import Foundation
import PruneIR

// Selection by a condition: Compress (slices where a bool vector is true) and NonZero.
func registerCompressKernels(_ r: inout KernelRegistry) {
    r.register("Compress", since: 9) { info in
        let axis: Int? = try info.attribute("axis")
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0), condition = try inputs.required(1)
            let cond = condition.buffer(as: UInt8.self)
            guard condition.dtype == .bool, condition.rank == 1 else { throw KernelError("Compress condition must be a 1-D bool tensor") }
            let size = elementSize(x.dtype)
            // Without an axis the input is flattened; a short condition drops the rest.
            let (outer, dim, inner) = try axis.map { axis -> (Int, Int, Int) in
                let a = try normalizedAxis(axis, rank: x.rank)
                return (x.shape[..<a].reduce(1, *), x.shape[a], x.shape[(a + 1)...].reduce(1, *))
            } ?? (1, x.count, 1)
            guard cond.count <= dim else { throw KernelError("Compress condition is longer (\(cond.count)) than the axis (\(dim))") }
            let selected = (0..<cond.count).filter { cond[$0] != 0 }
            var outShape = [selected.count]
            if let axis {
                let a = try normalizedAxis(axis, rank: x.rank)
                outShape = x.shape
                outShape[a] = selected.count
            }
            let out = ctx.allocate(x.dtype, outShape)
            var w = 0
            for o in 0..<outer {
                for s in selected {
                    Layout.copyElements(x.rawPointer, (o * dim + s) * inner, out.rawPointer, w * inner, count: inner, size: size)
                    w += 1
                }
            }
            return [out]
        }
    }

    r.register("NonZero", since: 9) { _ in
        ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            var hits: [Int] = []
            for i in 0..<x.count where x.element(at: i) != 0 { hits.append(i) }
            // numpy treats a scalar as one-dimensional here.
            let shape = x.rank == 0 ? [1] : x.shape
            let strides = Broadcast.contiguousStrides(shape)
            let out = ctx.allocate(.int64, [shape.count, hits.count])
            let p = out.pointer(as: Int64.self)
            for (k, i) in hits.enumerated() {
                var r = i
                for d in 0..<shape.count {
                    p[d * hits.count + k] = Int64(r / strides[d])
                    r %= strides[d]
                }
            }
            return [out]
        }
    }
}
