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
