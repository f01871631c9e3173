import Foundation
import PruneIR

// Ops that make arrays from shapes: Shape, Size, ConstantOfShape, Range, EyeLike.
func registerShapeOpsKernels(_ r: inout KernelRegistry) {
    // Shape: opset 15 added `start`/`end` (earlier nodes do not carry them, so one factory serves).
    let shape: KernelFactory = { info in
        let start: Int = try info.attribute("start", default: 0)
        let end: Int? = try info.attribute("end")
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let rank = x.rank
            func clip(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
            let s = clip(start), e = clip(end ?? rank)
            let dims = s < e ? Array(x.shape[s..<e]) : []
            let out = ctx.allocate(.int64, [dims.count])
            let p = out.pointer(as: Int64.self)
            for (i, d) in dims.enumerated() { p[i] = Int64(d) }
            return [out]
        }
    }
    r.register("Shape", since: 1, shape)
    r.register("Shape", since: 15, shape)

    r.register("Size", since: 1) { _ in
        ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let out = ctx.allocate(.int64, [])
            out.pointer(as: Int64.self)[0] = Int64(x.count)
            return [out]
        }
    }

    r.register("ConstantOfShape", since: 9) { info in
        // The fill value: a one-element tensor attribute, float 0 by default.
        let value: NDArray
        if let t: Tensor = try info.attribute("value") {
            guard NDArray.supports(t.dtype) else { throw KernelError.unsupported("ConstantOfShape value of type \(t.dtype)") }
            value = try NDArray(tensor: t)
            guard value.count == 1 else { throw KernelError("ConstantOfShape value must hold one element, it holds \(value.count)") }
        } else {
            value = NDArray(scalar: Float(0))
        }
        let size = elementSize(value.dtype)
        return ClosureKernel { inputs, ctx in
            let dims = try inputs.required(0).ints()
            guard dims.allSatisfy({ $0 >= 0 }) else { throw KernelError("ConstantOfShape: negative dimension in \(dims)") }
            let out = try ctx.allocate(value.dtype, checking: dims)
            Layout.fill(out.rawPointer, count: out.count, value: value.rawPointer, elementSize: size)
            return [out]
        }
    }

    r.register("Range", since: 11) { info in
        if let t = info.inputType(0) {
            switch t {
            case .float, .double, .float16, .bfloat16, .int16, .int32, .int64: break
            default: throw KernelError.unsupported("Range of \(t)")
            }
        }
        return ClosureKernel { inputs, ctx in
            let start = try inputs.required(0), limit = try inputs.required(1), delta = try inputs.required(2)
            guard start.count == 1, limit.count == 1, delta.count == 1 else {
                throw KernelError("Range inputs must be scalars")
            }
            let dtype = start.dtype
            switch dtype {
            case .int16, .int32, .int64:
                // Integer ranges in integer arithmetic (exact for all of int64).
                let s = start.ints()[0], l = limit.ints()[0], d = delta.ints()[0]
                guard d != 0 else { throw KernelError("Range delta is 0") }
                // start, limit and delta come from the model: their arithmetic must not overflow.
                let (diff, overflow) = l.subtractingReportingOverflow(s)
                guard !overflow else { throw KernelError("Range from \(s) to \(l) has more elements than an array can hold") }
                let n = d > 0 ? (diff > 0 ? 1 + (diff - 1) / d : 0) : (diff < 0 ? 1 + (diff + 1) / d : 0)
                let out = try ctx.allocate(dtype, checking: [n])
                switch dtype {
                case .int16: let p = out.pointer(as: Int16.self); for i in 0..<n { p[i] = Int16(truncatingIfNeeded: s + i * d) }
                case .int32: let p = out.pointer(as: Int32.self); for i in 0..<n { p[i] = Int32(truncatingIfNeeded: s + i * d) }
                default: let p = out.pointer(as: Int64.self); for i in 0..<n { p[i] = Int64(s + i * d) }
                }
                return [out]
            default:
                // Floating ranges are computed in double (like the reference's arange) and rounded once.
                let s = start.element(at: 0), l = limit.element(at: 0), d = delta.element(at: 0)
                guard d != 0, s.isFinite, l.isFinite, d.isFinite else { throw KernelError("Range: invalid start/limit/delta \(s), \(l), \(d)") }
                let steps = ((l - s) / d).rounded(.up)
                guard steps < 1e15 else { throw KernelError("Range of \(steps) elements is too large") }
                let n = max(Int(steps), 0)
                let out = try ctx.allocate(dtype, checking: [n])
                if dtype == .float {
                    let p = out.pointer(as: Float.self)
                    for i in 0..<n { p[i] = Float(s + Double(i) * d) }
                } else {
                    for i in 0..<n { try ElementValue.store(s + Double(i) * d, dtype, out.rawPointer, i) }
                }
                return [out]
            }
        }
    }

    r.register("EyeLike", since: 9) { info in
        let k: Int = try info.attribute("k", default: 0)
        var dtype: DType? = nil
        if let code: Int = try info.attribute("dtype") {
            guard let c = Int32(exactly: code), let t = DType(rawValue: c), NDArray.supports(t) else {
                throw KernelError.unsupported("EyeLike dtype \(code)")
            }
            dtype = t
        }
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            guard x.rank == 2 else { throw KernelError("EyeLike input must be 2-D, it is \(x.shape)") }
            let t = dtype ?? x.dtype
            let rows = x.shape[0], cols = x.shape[1]
            let out = ctx.zeros(t, [rows, cols])
            for i in 0..<rows where i + k >= 0 && i + k < cols {
                try ElementValue.store(1, t, out.rawPointer, i * cols + i + k)
            }
            return [out]
        }
    }
}

// MARK: Gradients

/// Shape, Size and ConstantOfShape need no VJP: their outputs are integers, or (ConstantOfShape)
/// depend only on an integer input, so the tape never asks for one. The two ops here can make
/// floats from float inputs that lie on a gradient path:
/// - Range: `y[i] = start + i·delta` — `start` gets `Σ g`, `delta` gets `Σ i·g[i]`, `limit`
///   (which only sets the length) none.
/// - EyeLike: the output depends only on the input's shape, so the input gets none.
func registerShapeOpsGradients(_ r: inout GradientRegistry) {
    r.register(["Range"]) { c, gs in
        guard let g = gs[0] else { return [nil, nil, nil] }
        let start = try c.input(0), delta = try c.input(2)
        var sum = 0.0, weighted = 0.0
        for i in 0..<g.count {
            let v = g.element(at: i)
            sum += v
            weighted += Double(i) * v
        }
        func scalar(_ v: Double, like x: NDArray) throws -> NDArray {
            let out = c.kernel.allocate(x.dtype, x.shape)
            try ElementValue.store(v, x.dtype, out.rawPointer, 0)
            return out
        }
        return [c.needs(0) ? try scalar(sum, like: start) : nil, nil, c.needs(2) ? try scalar(weighted, like: delta) : nil]
    }
    r.register(["EyeLike"]) { _, _ in [nil] }
}
