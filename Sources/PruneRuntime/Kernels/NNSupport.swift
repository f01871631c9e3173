import PruneIR

// Helpers shared by the BLAS-backed and spatial kernels (MatMul, Gemm, Einsum, Conv,
// ConvTranspose, Pool, Resize): the window geometry (kernel, strides, dilations, pads, auto_pad) of convolutions and pools.

/// The geometry of a sliding-window op (Conv, ConvTranspose, pools) as its attributes give it.
struct WindowAttributes {
    /// `NOTSET`, `SAME_UPPER`, `SAME_LOWER` or `VALID`.
    var autoPad: String
    /// `kernel_shape`, or `nil` when it comes from the weights.
    var kernelShape: [Int]?
    /// `strides` (empty: all 1).
    var strides: [Int]
    /// `dilations` (empty: all 1).
    var dilations: [Int]
    /// `pads` as [begin..., end...] (empty: all 0).
    var pads: [Int]

    /// No padding, unit strides and dilations (global pools).
    init() {
        autoPad = "NOTSET"
        kernelShape = nil
        strides = []
        dilations = []
        pads = []
    }

    init(_ info: KernelBuildInfo) throws {
        autoPad = try info.attribute("auto_pad", default: "NOTSET")
        kernelShape = try info.attribute("kernel_shape", as: [Int].self)
        strides = try info.attribute("strides", default: [Int]())
        dilations = try info.attribute("dilations", default: [Int]())
        pads = try info.attribute("pads", default: [Int]())
        guard ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].contains(autoPad) else {
            throw KernelError.unsupported("auto_pad \(autoPad)")
        }
        // The loops handle up to three spatial dimensions.
        let rank = kernelShape?.count ?? info.node.inputs.first??.type?.shape.map { $0.rank - 2 }
        if let rank, rank > 3 {
            throw KernelError.unsupported("\(rank) spatial dimensions (at most 3 are supported)")
        }
    }

    /// Strides, dilations and pads for `rank` spatial dimensions, with defaults filled in.
    func resolved(rank: Int) throws -> (strides: [Int], dilations: [Int], pads: [Int]) {
        let s = strides.isEmpty ? [Int](repeating: 1, count: rank) : strides
        let d = dilations.isEmpty ? [Int](repeating: 1, count: rank) : dilations
        let p = pads.isEmpty ? [Int](repeating: 0, count: 2 * rank) : pads
        guard s.count == rank, d.count == rank, p.count == 2 * rank else {
            throw KernelError("strides \(s), dilations \(d) or pads \(p) do not fit \(rank) spatial dimensions")
        }
        guard s.allSatisfy({ $0 > 0 }), d.allSatisfy({ $0 > 0 }) else {
            throw KernelError("strides and dilations must be positive")
        }
        return (s, d, p)
    }

    /// Output size and pads [begin..., end...] of a convolution or pool over `input` spatial dims.
    ///
    /// `ceilMode` (pools) rounds the output size up, dropping a last window that would start in
    /// the end padding, as ONNX and PyTorch do.
    func outputGeometry(input: [Int], kernel: [Int], ceilMode: Bool = false) throws -> (output: [Int], strides: [Int], dilations: [Int], pads: [Int]) {
        let rank = input.count
        guard kernel.count == rank else { throw KernelError("kernel_shape \(kernel) does not fit input spatial shape \(input)") }
        var (s, d, p) = try resolved(rank: rank)
        var out = [Int](repeating: 0, count: rank)
        for i in 0..<rank {
            let window = (kernel[i] - 1) * d[i] + 1
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                out[i] = (input[i] + s[i] - 1) / s[i]
                let total = max(0, (out[i] - 1) * s[i] + window - input[i])
                let small = total / 2
                p[i] = autoPad == "SAME_UPPER" ? small : total - small
                p[rank + i] = total - p[i]
            case "VALID":
                p[i] = 0
                p[rank + i] = 0
                out[i] = input[i] >= window ? (input[i] - window) / s[i] + 1 : 0
            default:
                let span = input[i] + p[i] + p[rank + i] - window
                guard span >= 0 else {
                    throw KernelError("window \(window) larger than padded input \(input[i] + p[i] + p[rank + i])")
                }
                if ceilMode {
                    out[i] = (span + s[i] - 1) / s[i] + 1
                    if (out[i] - 1) * s[i] >= input[i] + p[i] { out[i] -= 1 }
                } else {
                    out[i] = span / s[i] + 1
                }
            }
        }
        return (out, s, d, p)
    }
}

/// Element types with a BLAS GEMM (float32 and float64), so kernels can be written once.
protocol BLASElement: TensorElement, BinaryFloatingPoint {
    /// The BLAS GEMM of this type (`BLAS.sgemm` or `BLAS.dgemm`).
    static func blasGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                         alpha: Self, a: UnsafePointer<Self>, lda: Int,
                         b: UnsafePointer<Self>, ldb: Int,
                         beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int, threads: Int)
    /// The BLAS GEMV of this type (`BLAS.sgemv` or `BLAS.dgemv`).
    static func blasGemv(trans: Bool, m: Int, n: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
                         x: UnsafePointer<Self>, incx: Int, beta: Self, y: UnsafeMutablePointer<Self>, incy: Int, threads: Int)
}

extension BLASElement {
    /// Row-major GEMM: `C = alpha * op(A) * op(B) + beta * C`. A single row or column goes to
    /// GEMV: GEMM would pack the whole other matrix on every call. `threads` is the most threads
    /// BLAS may use: the kernel context's count, or 1 inside a loop already running in parallel.
    @inline(__always)
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     alpha: Self, a: UnsafePointer<Self>, lda: Int,
                     b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int, threads: Int) {
        if m == 1 && k > 0 {
            // c[1, n] = op(B)ᵀ · the row of a
            if transB {
                blasGemv(trans: false, m: n, n: k, alpha: alpha, a: b, lda: ldb, x: a, incx: transA ? lda : 1, beta: beta, y: c, incy: 1, threads: threads)
            } else {
                blasGemv(trans: true, m: k, n: n, alpha: alpha, a: b, lda: ldb, x: a, incx: transA ? lda : 1, beta: beta, y: c, incy: 1, threads: threads)
            }
            return
        }
        if n == 1 && k > 0 {
            blasGemv(trans: transA, m: transA ? k : m, n: transA ? m : k, alpha: alpha, a: a, lda: lda,
                     x: b, incx: transB ? 1 : ldb, beta: beta, y: c, incy: ldc, threads: threads)
            return
        }
        blasGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                 b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, threads: threads)
    }
}

extension Float: BLASElement {
    @inline(__always)
    static func blasGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                         alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                         beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) {
        BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, threads: threads)
    }

    @inline(__always)
    static func blasGemv(trans: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                         x: UnsafePointer<Float>, incx: Int, beta: Float, y: UnsafeMutablePointer<Float>, incy: Int, threads: Int) {
        BLAS.sgemv(trans: trans, m: m, n: n, alpha: alpha, a: a, lda: lda, x: x, incx: incx, beta: beta, y: y, incy: incy, threads: threads)
    }
}

extension Double: BLASElement {
    @inline(__always)
    static func blasGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                         alpha: Double, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                         beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int, threads: Int) {
        BLAS.dgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, threads: threads)
    }

    @inline(__always)
    static func blasGemv(trans: Bool, m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
                         x: UnsafePointer<Double>, incx: Int, beta: Double, y: UnsafeMutablePointer<Double>, incy: Int, threads: Int) {
        BLAS.dgemv(trans: trans, m: m, n: n, alpha: alpha, a: a, lda: lda, x: x, incx: incx, beta: beta, y: y, incy: incy, threads: threads)
    }
}

/// Plain row-major integer GEMM (`C = op(A) * op(B)`, wrapping arithmetic) for the integer
/// element types that BLAS does not cover.
@inline(__always)
func integerGemm<T: FixedWidthInteger>(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                                       a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
                                       c: UnsafeMutablePointer<T>, ldc: Int) {
    for i in 0..<m {
        let row = c + i * ldc
        for j in 0..<n { row[j] = 0 }
        for p in 0..<k {
            let av = transA ? a[p * lda + i] : a[i * lda + p]
            if av == 0 { continue }
            if transB {
                for j in 0..<n { row[j] &+= av &* b[j * ldb + p] }
            } else {
                let brow = b + p * ldb
                for j in 0..<n { row[j] &+= av &* brow[j] }
            }
        }
    }
}

/// Rounds `a / b` up, for any sign of `a` (`b > 0`).
@inline(__always)
func ceilDiv(_ a: Int, _ b: Int) -> Int {
    a >= 0 ? (a + b - 1) / b : -((-a) / b)
}

/// A sliding window over up to three spatial dimensions (fewer are padded in front with size-1
/// dimensions), so that the loops of convolutions and pools are three plain nested loops.
///
/// The relation is `big[o * stride - padBegin + k * dilation] ~ small[o]`: for Conv and pools
/// `i*` is the input and `o*` the output; ConvTranspose uses it the other way round.
struct Window3D {
    var id = 1, ih = 1, iw = 1
    var od = 1, oh = 1, ow = 1
    var kd = 1, kh = 1, kw = 1
    var sd = 1, sh = 1, sw = 1
    var dd = 1, dh = 1, dw = 1
    var pd = 0, ph = 0, pw = 0

    init(input: [Int], output: [Int], kernel: [Int], strides: [Int], dilations: [Int], padsBegin: [Int]) throws {
        let r = input.count
        guard r >= 1, r <= 3 else { throw KernelError("\(r) spatial dimensions are not supported (1 to 3)") }
        func at(_ a: [Int], _ i: Int, _ def: Int) -> Int { i - (3 - r) >= 0 ? a[i - (3 - r)] : def }
        id = at(input, 0, 1); ih = at(input, 1, 1); iw = at(input, 2, 1)
        od = at(output, 0, 1); oh = at(output, 1, 1); ow = at(output, 2, 1)
        kd = at(kernel, 0, 1); kh = at(kernel, 1, 1); kw = at(kernel, 2, 1)
        sd = at(strides, 0, 1); sh = at(strides, 1, 1); sw = at(strides, 2, 1)
        dd = at(dilations, 0, 1); dh = at(dilations, 1, 1); dw = at(dilations, 2, 1)
        pd = at(padsBegin, 0, 0); ph = at(padsBegin, 1, 0); pw = at(padsBegin, 2, 0)
    }

    var inSize: Int { id * ih * iw }
    var outSize: Int { od * oh * ow }
    var kernelSize: Int { kd * kh * kw }

    /// The output columns `lo..<hi` whose input column `o * sw + off` lies inside `0..<iw`.
    @inline(__always)
    func columnRange(offset off: Int) -> (Int, Int) {
        let lo = min(max(0, ceilDiv(-off, sw)), ow)
        let hi = max(lo, min(ow, ceilDiv(iw - off, sw)))
        return (lo, hi)
    }
}
