import PruneIR

// Variadic elementwise ops (Max, Min, Sum, Mean): any number of inputs, all broadcast together,
// folded pairwise with the broadcasting driver in Binary.swift.

/// Folds ``ArithKind`` `K` over the inputs; a single input is returned as is (a view).
func variadicFold<K: ArithKind>(_: K.Type, _ inputs: [NDArray?], _ ctx: KernelContext) throws -> NDArray {
    let arrays = inputs.compactMap { $0 }
    guard var acc = arrays.first else { throw KernelError("needs at least one input") }
    for x in arrays.dropFirst() { acc = try arith(K.self, acc, x, ctx) }
    return acc
}

/// Divides every element of `a` (an array this kernel allocated) by `n`, in place.
struct ScaleVisitor: NumericVisitor {
    let a: NDArray, n: Int, ctx: KernelContext
    func visit<T: NumericElement>(_: T.Type) throws {
        let p = a.pointer(as: T.self)
        let d = T(fromDouble: Double(n))
        ctx.parallelFor(a.count, grain: elementwiseGrain) { r in
            for i in r { p[i] = T.div(p[i], d) }
        }
    }
}

/// A kernel folding `K` over all inputs; `types` are the element types the op allows.
func variadicKernel<K: ArithKind>(_: K.Type, _ info: KernelBuildInfo, types: Set<DType>, mean: Bool = false) throws -> any Kernel {
    for i in info.node.inputs.indices { try requireInputType(info, i, in: types) }
    return ClosureKernel { inputs, ctx in
        let out = try variadicFold(K.self, inputs, ctx)
        let n = inputs.compactMap { $0 }.count
        if mean && n > 1 { try visitNumeric(out.dtype, ScaleVisitor(a: out, n: n, ctx: ctx)) }
        return [out]
    }
}

func registerVariadicKernels(_ r: inout KernelRegistry) {
    let floats: Set<DType> = [.float, .double, .float16]
    // Version 6 required equal shapes (a special case of broadcasting); 8 added broadcasting,
    // 12/13 added element types.
    r.register("Max", since: 6) { try variadicKernel(MaxKind.self, $0, types: numericTypes) }
    r.register("Min", since: 6) { try variadicKernel(MinKind.self, $0, types: numericTypes) }
    r.register("Sum", since: 6) { try variadicKernel(AddKind.self, $0, types: floats) }
    r.register("Mean", since: 6) { try variadicKernel(AddKind.self, $0, types: floats, mean: true) }
}

// MARK: Gradients

/// `1` where `x` equals the output `y`, else 0: `(x, y)`.
private struct VariadicHits: ElementwiseGradient {
    func apply<T: UnaryMathFloat>(_ x: T, _ y: T, _: T, _: T) -> T { x == y ? 1 : 0 }
}

/// An input's share of the cotangent of Max/Min: `g / ties` where it attains the output, from
/// `(g, x, y, ties)`.
private struct VariadicShare: ElementwiseGradient {
    func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _ ties: T) -> T { x == y ? g / ties : 0 }
}

/// `g · k`: `(g)`.
private struct VariadicScale: ElementwiseGradient {
    let k: Double
    func apply<T: UnaryMathFloat>(_ g: T, _: T, _: T, _: T) -> T { g * T(k) }
}

/// VJPs of Sum, Mean, Max and Min, each input's cotangent summed down to its broadcast shape.
/// Sum passes the cotangent to every input, Mean a 1/n share. Max and Min route it to the
/// input that attains the output; where several inputs tie, each gets an equal share (as
/// PyTorch's maximum/minimum do), a subgradient that treats the tied inputs symmetrically.
func registerVariadicGradients(_ r: inout GradientRegistry) {
    r.register(["Sum", "Mean"]) { c, gs in
        let y = try c.output(0)
        var g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let n = c.inputs.compactMap { $0 }.count
        if c.node.opType.name == "Mean" && n > 1 { g = try gradientMap(VariadicScale(k: 1 / Double(n)), g.shape, [g], c.kernel) }
        return c.inputs.enumerated().map { i, x in
            guard c.needs(i), let x else { return nil }
            return GradientMath.reduce(g, to: x.shape, c.kernel)
        }
    }
    r.register(["Max", "Min"]) { c, gs in
        let y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        var ties: NDArray?
        for x in c.inputs.compactMap({ $0 }) {
            let hits = try gradientMap(VariadicHits(), y.shape, [x, y], c.kernel)
            ties = ties.map { GradientMath.sum($0, hits) } ?? hits
        }
        guard let ties else { return [] }
        return try c.inputs.enumerated().map { i, x in
            guard c.needs(i), let x else { return nil }
            return GradientMath.reduce(try gradientMap(VariadicShare(), y.shape, [g, x, y, ties], c.kernel), to: x.shape, c.kernel)
        }
    }
}
