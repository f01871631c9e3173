import PruneIR

// Where: `condition ? X : Y` elementwise with three-way NumPy broadcasting. Only element bytes
// are moved, so the kernel is generic over element width rather than type.

/// Selects between `x` and `y` by `cond` (bool bytes), broadcasting all three.
struct WhereVisitor: IntegerVisitor {
    let cond: NDArray, x: NDArray, y: NDArray, ctx: KernelContext

    func visit<T: NumericElement & FixedWidthInteger>(_: T.Type) throws -> NDArray {
        let shape = try Broadcast.shape([cond.shape, x.shape, y.shape])
        let out = ctx.allocate(x.dtype, shape)
        if out.count == 0 { return out }
        let pc = UnsafePointer(cond.pointer(as: UInt8.self))
        let px = UnsafePointer(x.pointer(as: T.self)), py = UnsafePointer(y.pointer(as: T.self))
        let po = out.pointer(as: T.self)
        let plan = BroadcastPlan(output: shape, operands: [cond.shape, x.shape, y.shape])
        let sc = plan.innerStride(0), sx = plan.innerStride(1), sy = plan.innerStride(2)
        // `n` outputs from the given operand positions.
        func run(_ o: UnsafeMutablePointer<T>, _ c: UnsafePointer<UInt8>, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ n: Int) {
            if sc == 1 && sx == 1 && sy == 1 {
                for i in 0..<n { o[i] = c[i] != 0 ? a[i] : b[i] }
            } else {
                for i in 0..<n { o[i] = c[i &* sc] != 0 ? a[i &* sx] : b[i &* sy] }
            }
        }
        if plan.shape.count == 1 {
            // One flat run (e.g. equal shapes): split it across threads.
            ctx.parallelFor(out.count, grain: elementwiseGrain) { r in
                let s = r.lowerBound
                run(po + s, pc + s * sc, px + s * sx, py + s * sy, r.count)
            }
            return out
        }
        let inner = plan.inner
        ctx.parallelFor(plan.rows, grain: max(1, elementwiseGrain / inner)) { rows in
            var w = RowWalker(plan, row: rows.lowerBound)
            for row in rows {
                run(po + row * inner, pc + w.offsets[0], px + w.offsets[1], py + w.offsets[2], inner)
                w.next()
            }
        }
        return out
    }
}

func registerWhereKernels(_ r: inout KernelRegistry) {
    // Where-16 only adds bfloat16 (handled: it moves 2-byte elements like float16).
    r.register("Where", since: 9) { info in
        if let t = info.inputType(1), !NDArray.supports(t) {
            throw KernelError.unsupported("Where on element type \(t) is not implemented")
        }
        return ClosureKernel { inputs, ctx in
            let cond = try inputs.required(0), x = try inputs.required(1), y = try inputs.required(2)
            guard cond.dtype == .bool else { throw KernelError("condition is \(cond.dtype), not bool") }
            guard x.dtype == y.dtype else { throw KernelError("X is \(x.dtype) but Y is \(y.dtype)") }
            return [try visitWidth(x.dtype, WhereVisitor(cond: cond, x: x, y: y, ctx: ctx))]
        }
    }
}

// MARK: Gradients

/// `g` where the condition (0 or 1, as g's type) selects the operand, else 0: `(g, condition)`.
private struct WhereSelect: ElementwiseGradient {
    let takeTrue: Bool
    func apply<T: UnaryMathFloat>(_ g: T, _ c: T, _: T, _: T) -> T { (c != 0) == takeTrue ? g : 0 }
}

/// VJP of Where: the cotangent goes to X where the condition holds and to Y elsewhere, summed
/// down to each operand's broadcast shape; the condition has none.
func registerWhereGradients(_ r: inout GradientRegistry) {
    r.register(["Where"]) { c, gs in
        let cond = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let mask = try castArray(cond, to: g.dtype, c.kernel)
        var out: [NDArray?] = [nil]
        for i in 1...2 {
            guard c.needs(i) else { out.append(nil); continue }
            let picked = try gradientMap(WhereSelect(takeTrue: i == 1), g.shape, [g, mask], c.kernel)
            out.append(GradientMath.reduce(picked, to: try c.input(i).shape, c.kernel))
        }
        return out
    }
}
