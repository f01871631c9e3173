import Foundation
import PruneIR

// Transpose and the block shuffles DepthToSpace / SpaceToDepth (reshape + transpose + reshape).
func registerTransposeKernels(_ r: inout KernelRegistry) {
    r.register("Transpose", since: 1) { info in
        let perm: [Int]? = try info.attribute("perm")
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let p = perm ?? Array((0..<x.rank).reversed())
            guard p.count == x.rank, Set(p) == Set(0..<x.rank) else {
                throw KernelError("Transpose perm \(p) is not a permutation of rank \(x.rank)")
            }
            return [permuted(x, shape: x.shape, perm: p, outShape: p.map { x.shape[$0] }, ctx)]
        }
    }

    // DepthToSpace: `mode` (DCR/CRD) since 11.
    r.register("DepthToSpace", since: 1) { info in
        let b: Int = try info.attribute("blocksize", default: 0)
        let mode: String = try info.attribute("mode", default: "DCR")
        guard b > 0 else { throw KernelError("DepthToSpace needs a positive blocksize") }
        guard mode == "DCR" || mode == "CRD" else { throw KernelError.unsupported("DepthToSpace mode \(mode)") }
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let (view, perm, outShape) = try blockShuffle("DepthToSpace", x.shape, blocksize: b, mode: mode)
            return [permuted(x, shape: view, perm: perm, outShape: outShape, ctx)]
        }
    }

    // SpaceToDepth: `mode` since 28 (DCR before).
    r.register("SpaceToDepth", since: 1) { info in
        let b: Int = try info.attribute("blocksize", default: 0)
        let mode: String = try info.attribute("mode", default: "DCR")
        guard b > 0 else { throw KernelError("SpaceToDepth needs a positive blocksize") }
        guard mode == "DCR" || mode == "CRD" else { throw KernelError.unsupported("SpaceToDepth mode \(mode)") }
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let (view, perm, outShape) = try blockShuffle("SpaceToDepth", x.shape, blocksize: b, mode: mode)
            return [permuted(x, shape: view, perm: perm, outShape: outShape, ctx)]
        }
    }
}

/// DepthToSpace or SpaceToDepth (`op`) on an NCHW `shape` as a transpose: the 6-D view of the
/// input, the permutation of that view, and the output shape.
func blockShuffle(_ op: String, _ shape: [Int], blocksize b: Int, mode: String) throws -> (view: [Int], perm: [Int], outShape: [Int]) {
    let depthToSpace = op == "DepthToSpace"
    guard shape.count == 4, depthToSpace ? shape[1] % (b * b) == 0 : shape[2] % b == 0 && shape[3] % b == 0 else {
        throw KernelError("\(op) input \(shape) does not fit blocksize \(b)")
    }
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    if depthToSpace {
        let outShape = [n, c / (b * b), h * b, w * b]
        if mode == "DCR" { return ([n, b, b, c / (b * b), h, w], [0, 3, 4, 1, 5, 2], outShape) }
        return ([n, c / (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3], outShape)
    }
    let perm = mode == "DCR" ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4]
    return ([n, c, h / b, b, w / b, b], perm, [n, c * b * b, h / b, w / b])
}

/// `x` read as `shape`, its dimensions permuted by `perm`, stored contiguously as `outShape`.
func permuted(_ x: NDArray, shape: [Int], perm: [Int], outShape: [Int], _ ctx: KernelContext) -> NDArray {
    // Moving only unit dimensions keeps the element order: a view suffices.
    let moved = perm.filter { shape[$0] != 1 }
    if moved == moved.sorted() { return x.reshaped(outShape) }
    let out = ctx.allocate(x.dtype, outShape)
    let strides = Broadcast.contiguousStrides(shape)
    Layout.stridedCopy(src: x.rawPointer, srcOffset: 0, srcStrides: perm.map { strides[$0] },
                       dst: out.rawPointer, shape: perm.map { shape[$0] },
                       elementSize: elementSize(x.dtype), context: ctx)
    return out
}

// MARK: Gradients

/// VJPs of Transpose, DepthToSpace and SpaceToDepth: each is a permutation of a view of its
/// input, so the cotangent goes back through the inverse permutation.
func registerTransposeGradients(_ r: inout GradientRegistry) {
    r.register(["Transpose"]) { c, gs in
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let p: [Int] = try c.attribute("perm") ?? Array((0..<x.rank).reversed())
        return [unpermuted(g, shape: x.shape, perm: p, c.kernel)]
    }
    r.register(["DepthToSpace", "SpaceToDepth"]) { c, gs in
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let (view, perm, _) = try blockShuffle(c.node.opType.name, x.shape, blocksize: try c.attribute("blocksize", default: 0),
                                               mode: try c.attribute("mode", default: "DCR"))
        return [unpermuted(g, shape: view, perm: perm, c.kernel).reshaped(x.shape)]
    }
}

/// The inverse of ``permuted(_:shape:perm:outShape:_:)``: `g` holds the permuted array (read as
/// `perm.map { shape[$0] }`); the result has `shape`.
func unpermuted(_ g: NDArray, shape: [Int], perm: [Int], _ ctx: KernelContext) -> NDArray {
    var inverse = [Int](repeating: 0, count: perm.count)
    for (i, p) in perm.enumerated() { inverse[p] = i }
    return permuted(g, shape: perm.map { shape[$0] }, perm: inverse, outShape: shape, ctx)
}
