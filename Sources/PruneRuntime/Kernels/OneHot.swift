import Foundation
import PruneIR

// OneHot: a new axis of size `depth` holding `on` at each index and `off` elsewhere.
func registerOneHotKernels(_ r: inout KernelRegistry) {
    r.register("OneHot", since: 9) { info in
        let axis: Int = try info.attribute("axis", default: -1)
        return ClosureKernel { inputs, ctx in
            let indices = try inputs.required(0), depthArray = try inputs.required(1), values = try inputs.required(2)
            guard depthArray.count == 1, values.count == 2 else {
                throw KernelError("OneHot needs a scalar depth and two values [off, on]")
            }
            let depthValue = depthArray.element(at: 0)
            guard depthValue.isFinite, depthValue >= 1 else { throw KernelError("OneHot depth \(depthValue) must be positive") }
            guard depthValue < 1e15 else { throw KernelError("OneHot depth \(depthValue) is too large") }
            let depth = Int(depthValue)
            let rank = indices.rank
            let a = axis < 0 ? axis + rank + 1 : axis
            guard a >= 0, a <= rank else { throw KernelError("OneHot axis \(axis) out of range for rank \(rank)") }
            let outShape = Array(indices.shape[..<a]) + [depth] + Array(indices.shape[a...])
            let out = try ctx.allocate(values.dtype, checking: outShape)
            let size = elementSize(values.dtype)
            Layout.fill(out.rawPointer, count: out.count, value: values.rawPointer, elementSize: size)
            let inner = indices.shape[a...].reduce(1, *)
            for i in 0..<indices.count {
                var v = indices.element(at: i)
                if v < 0 { v += Double(depth) }
                // Out-of-range (and fractional) indices match no position: all `off`.
                guard v >= 0, v < Double(depth), v == v.rounded(.towardZero) else { continue }
                let o = i / inner, j = i - o * inner
                Layout.copyElement(values.rawPointer, 1, out.rawPointer, (o * depth + Int(v)) * inner + j, size)
            }
            return [out]
        }
    }
}
