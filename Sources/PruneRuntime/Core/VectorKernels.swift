import CKernels

/// The runtime's door to the hand-vectorized C kernels: the only file that imports `CKernels`.
///
/// Typed Swift calls over the `ck_*` functions (float32 transcendental functions, softmax rows,
/// the row-pointer convolution GEMM), with Swift integer types; C's `int` and `long` stay here.
/// Each C function picks its AVX2/AVX-512 or portable build from the CPU at run time.
/// Pointers are the caller's and are only read or written during the call.
enum VectorKernels {
    // MARK: Elementwise float32 (x and y may be the same array)

    /// y[i] = exp(x[i]), about 1 ulp; results under 2.5e-38 (x < -86.6) flush to 0.
    @inline(__always)
    static func exp(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        ck_exp_f32(x, y, count)
    }

    /// y[i] = 1 / (1 + exp(-x[i])).
    @inline(__always)
    static func sigmoid(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        ck_sigmoid_f32(x, y, count)
    }

    /// y[i] = tanh(x[i]) (rational approximation, a few ulp).
    @inline(__always)
    static func tanh(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        ck_tanh_f32(x, y, count)
    }

    /// y[i] = erf(x[i]) (rational approximation, within about 7 ulp).
    @inline(__always)
    static func erf(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        ck_erf_f32(x, y, count)
    }

    /// y[i] = 0.5 x (1 + erf(x / √2)).
    @inline(__always)
    static func gelu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        ck_gelu_f32(x, y, count)
    }

    /// y[i] = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
    @inline(__always)
    static func geluTanh(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        ck_gelu_tanh_f32(x, y, count)
    }

    /// y[i] = x[i] / (1 + exp(-alpha x[i])).
    @inline(__always)
    static func swish(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, alpha: Float) {
        ck_swish_f32(x, y, count, alpha)
    }

    // MARK: Softmax

    /// Softmax (log-softmax when `log`) of `rows` contiguous rows of `length` floats.
    ///
    /// - Returns: How many rows were done: a row whose maximum is not finite stops the call
    ///   unwritten (the caller's exact path handles it), so the result is less than `rows` then.
    @inline(__always)
    static func softmaxRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, length: Int, log: Bool) -> Int {
        ck_softmax_rows_f32(x, y, rows, length, log ? 1 : 0)
    }

    // MARK: Row-pointer convolution GEMM

    /// Whether the CPU has AVX2 and FMA, so ``gemmRows(m:k:packed:rows:columns:y:ldy:bias:)`` can
    /// run (callers use their portable path otherwise).
    static let convGemmAvailable = ck_conv_gemm_available() != 0

    /// Floats ``packWeights(m:k:_:ldw:into:)`` writes for an `m`×`k` weight matrix.
    static func packedWeightsCount(m: Int, k: Int) -> Int {
        ck_packed_weights_count(Int32(m), Int32(k))
    }

    /// Packs the row-major `m`×`k` matrix `w` (row stride `ldw`) into the panel layout
    /// ``gemmRows(m:k:packed:rows:columns:y:ldy:bias:)`` reads (``packedWeightsCount(m:k:)`` floats).
    static func packWeights(m: Int, k: Int, _ w: UnsafePointer<Float>, ldw: Int, into packed: UnsafeMutablePointer<Float>) {
        ck_pack_weights(Int32(m), Int32(k), w, Int32(ldw), packed)
    }

    /// `y[i][p] = bias[i] + Σₖ W[i][k] · rows[k][p]` for `i` in `0..<m` and `p` in `columns`, where
    /// `W` was packed by ``packWeights(m:k:_:ldw:into:)`` and `rows` holds `k` row pointers of the
    /// right-hand matrix (read only at `columns`). `bias` `nil` is zero; `y` has row stride `ldy`.
    static func gemmRows(m: Int, k: Int, packed: UnsafePointer<Float>, rows: UnsafePointer<UnsafePointer<Float>?>,
                         columns: Range<Int>, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?) {
        ck_gemm_rows(Int32(m), Int32(k), packed, rows, Int32(columns.lowerBound), Int32(columns.upperBound), y, Int32(ldy), bias)
    }
}
