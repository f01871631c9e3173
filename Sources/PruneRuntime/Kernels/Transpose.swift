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
            guard x.rank == 4, x.shape[1] % (b * b) == 0 else {
                throw KernelError("DepthToSpace input \(x.shape) does not fit blocksize \(b)")
            }
            let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let outShape = [n, c / (b * b), h * b, w * b]
            if mode == "DCR" {
                return [permuted(x, shape: [n, b, b, c / (b * b), h, w], perm: [0, 3, 4, 1, 5, 2], outShape: outShape, ctx)]
            }
            return [permuted(x, shape: [n, c / (b * b), b, b, h, w], perm: [0, 1, 4, 2, 5, 3], outShape: outShape, ctx)]
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
            guard x.rank == 4, x.shape[2] % b == 0, x.shape[3] % b == 0 else {
                throw KernelError("SpaceToDepth input \(x.shape) does not fit blocksize \(b)")
            }
            let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let view = [n, c, h / b, b, w / b, b]
            let outShape = [n, c * b * b, h / b, w / b]
            let perm = mode == "DCR" ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4]
            return [permuted(x, shape: view, perm: perm, outShape: outShape, ctx)]
        }
    }
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
    r.register(["DepthToSpace"]) { c, gs in
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let b: Int = try c.attribute("blocksize", default: 0)
        let mode: String = try c.attribute("mode", default: "DCR")
        let (n, ch, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        if mode == "DCR" {
            return [unpermuted(g, shape: [n, b, b, ch / (b * b), h, w], perm: [0, 3, 4, 1, 5, 2], c.kernel).reshaped(x.shape)]
        }
        return [unpermuted(g, shape: [n, ch / (b * b), b, b, h, w], perm: [0, 1, 4, 2, 5, 3], c.kernel).reshaped(x.shape)]
    }
    r.register(["SpaceToDepth"]) { c, gs in
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let b: Int = try c.attribute("blocksize", default: 0)
        let mode: String = try c.attribute("mode", default: "DCR")
        let (n, ch, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let perm = mode == "DCR" ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4]
        return [unpermuted(g, shape: [n, ch, h / b, b, w / b, b], perm: perm, c.kernel).reshaped(x.shape)]
    }
}

/// The inverse of ``permuted(_:shape:perm:outShape:_:)``: `g` holds the permuted array (read as
/// `perm.map { shape[$0] }`); the result has `shape`.
func unpermuted(_ g: NDArray, shape: [Int], perm: [Int], _ ctx: KernelContext) -> NDArray {
    var inverse = [Int](repeating: 0, count: perm.count)
    for (i, p) in perm.enumerated() { inverse[p] = i }
    return permuted(g, shape: perm.map { shape[$0] }, perm: inverse, outShape: shape, ctx)
}
