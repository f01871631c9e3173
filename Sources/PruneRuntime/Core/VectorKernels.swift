import CKernels

/// The runtime's door to the hand-vectorized C kernels: the only file that imports `CKernels`.
///
/// Typed Swift calls over the `ck_*` functions (float32 transcendental functions, softmax rows,
/// the row-pointer convolution GEMM, float16/bfloat16 array conversions), with Swift integer types; C's `int` and `long` stay here.
/// Each C function picks its AVX2/AVX-512 or portable build from the CPU at run time.
/// Pointers are the caller's and are only read or written during the call.
enum VectorKernels {
    // MARK: Elementwise float32

    /// A vectorized float32 function of one argument.
    enum Function {
        /// exp(x), about 1 ulp; results under 2.5e-38 (x < -86.6) flush to 0.
        case exp
        /// 1 / (1 + exp(-x)).
        case sigmoid
        /// tanh(x) (rational approximation, a few ulp).
        case tanh
        /// erf(x) (rational approximation, within about 7 ulp).
        case erf
        /// 0.5 x (1 + erf(x / √2)).
        case gelu
        /// 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
        case geluTanh
        /// x / (1 + exp(-alpha x)).
        case swish(alpha: Float)
    }

    /// y[i] = f(x[i]) for `count` elements; `x` and `y` may be the same array.
    @inline(__always)
    static func apply(_ f: Function, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        switch f {
        case .exp: ck_exp_f32(x, y, count)
        case .sigmoid: ck_sigmoid_f32(x, y, count)
        case .tanh: ck_tanh_f32(x, y, count)
        case .erf: ck_erf_f32(x, y, count)
        case .gelu: ck_gelu_f32(x, y, count)
        case .geluTanh: ck_gelu_tanh_f32(x, y, count)
        case .swish(let alpha): ck_swish_f32(x, y, count, alpha)
        }
    }

    // MARK: Elementwise programs

    /// An elementwise region's instructions in CKernels' form, run one block at a time.
    struct ElementwiseProgram {
        private let code: [ck_ew_ins]

        /// Instructions the program runs; `run` needs `count - 1` register blocks.
        var count: Int { code.count }

        init(_ program: [ElementwiseInstruction]) {
            func operand(_ o: ElementwiseInstruction.Operand?) -> (kind: Int32, index: Int32, value: Float) {
                switch o {
                case .input(let i)?: return (Int32(CK_EW_INPUT), Int32(i), 0)
                case .register(let r)?: return (Int32(CK_EW_REGISTER), Int32(r), 0)
                case .constant(let c)?: return (Int32(CK_EW_CONSTANT), 0, c)
                case nil: return (Int32(CK_EW_CONSTANT), 0, 0)
                }
            }
            code = program.map { ins in
                let op: Int
                switch ins.op {
                case .add: op = Int(CK_EW_ADD)
                case .sub: op = Int(CK_EW_SUB)
                case .mul: op = Int(CK_EW_MUL)
                case .div: op = Int(CK_EW_DIV)
                case .square: op = Int(CK_EW_SQUARE)
                case .cube: op = Int(CK_EW_CUBE)
                case .relu: op = Int(CK_EW_RELU)
                case .neg: op = Int(CK_EW_NEG)
                case .abs: op = Int(CK_EW_ABS)
                case .sqrt: op = Int(CK_EW_SQRT)
                case .reciprocal: op = Int(CK_EW_RECIPROCAL)
                case .vector(.exp): op = Int(CK_EW_EXP)
                case .vector(.sigmoid): op = Int(CK_EW_SIGMOID)
                case .vector(.tanh): op = Int(CK_EW_TANH)
                case .vector(.erf): op = Int(CK_EW_ERF)
                case .vector(let f): preconditionFailure("no elementwise instruction for \(f)")
                }
                let a = operand(ins.a), b = operand(ins.b)
                return ck_ew_ins(op: Int32(op), a_kind: a.kind, a: a.index, b_kind: b.kind, b: b.index, ca: a.value, cb: b.value)
            }
        }

        /// Runs the program over `count` (at most `block`) elements: `inputs[i]` points at input
        /// i's elements, instruction k writes `registers + k * block`, the last one `output`.
        @inline(__always)
        func run(inputs: UnsafePointer<UnsafePointer<Float>?>, registers: UnsafeMutablePointer<Float>, block: Int,
                 output: UnsafeMutablePointer<Float>, count: Int) {
            code.withUnsafeBufferPointer { p in
                ck_ew_run(p.baseAddress, Int32(p.count), inputs, registers, block, output, count)
            }
        }
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

    // MARK: Pooling

    /// `row[x] = max(row[x], src[x * stride])` for `x` in `0..<count` (`src >= row ? src : row`:
    /// a NaN already in the row stays, a NaN read leaves the row as it was); AVX-512 for strides 1
    /// and 2.
    @inline(__always)
    static func maxInto(_ row: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int, stride: Int) {
        ck_max_into_f32(row, src, count, stride)
    }

    // MARK: Convolution GEMM

    /// Whether the CPU has AVX2 and FMA, so ``gemm(m:k:packed:outputRows:source:columns:y:ldy:bias:epilogue:)``
    /// can run with a row source (callers use their portable path otherwise).
    static let convGemmAvailable = ck_conv_gemm_available() != 0

    /// Floats ``packWeights(m:k:_:ldw:into:)`` writes for an `m`×`k` weight matrix.
    static func packedWeightsCount(m: Int, k: Int) -> Int {
        ck_packed_weights_count(Int32(m), Int32(k))
    }

    /// Packs the row-major `m`×`k` matrix `w` (row stride `ldw`) into the panel layout
    /// ``gemm(m:k:packed:outputRows:source:columns:y:ldy:bias:epilogue:)`` reads (``packedWeightsCount(m:k:)`` floats).
    static func packWeights(m: Int, k: Int, _ w: UnsafePointer<Float>, ldw: Int, into packed: UnsafeMutablePointer<Float>) {
        ck_pack_weights(Int32(m), Int32(k), w, Int32(ldw), packed)
    }

    /// The right-hand matrix of ``gemm(m:k:packed:outputRows:source:columns:y:ldy:bias:epilogue:)``: row
    /// pointers, or (`rows` nil) a 2-D convolution's input and window (CKernels.h).
    typealias GemmSource = ck_gemm_source

    /// What ``gemm(m:k:packed:outputRows:source:columns:y:ldy:bias:epilogue:)`` does to its
    /// product: add a residual laid out as `y`, then clamp at 0 (CKernels.h).
    typealias GemmEpilogue = ck_gemm_epilogue

    /// Whether ``gemm(m:k:packed:outputRows:source:columns:y:ldy:bias:epilogue:)`` takes a window source
    /// (a 2-D convolution's input read through its window) on this CPU (AVX-512).
    static let windowGemmAvailable = ck_gemm_window_available() != 0

    /// Whether ``gemm(m:k:packed:outputRows:source:columns:y:ldy:bias:epilogue:)`` reads the
    /// window `source` of an `m`-row product in place (CKernels.h: `ck_gemm_direct`); a strided
    /// window (`phased` set) must then have its input split by ``phaseSplit(_:_:channels:into:)``.
    static func gemmDirect(m: Int, _ source: GemmSource) -> Bool {
        withUnsafePointer(to: source) { ck_gemm_direct(Int32(m), $0) != 0 }
    }

    /// Floats per channel that ``phaseSplit(_:_:channels:into:)`` writes for the window `source`.
    static func phaseSplitCount(_ source: GemmSource) -> Int {
        withUnsafePointer(to: source) { Int(ck_phase_split_count($0)) }
    }

    /// Splits `channels` of `x` (the window's input) into the phases of the window's strides, at
    /// the same channels of `dst` (``phaseSplitCount(_:)`` floats per channel).
    static func phaseSplit(_ source: GemmSource, _ x: UnsafePointer<Float>, channels: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        withUnsafePointer(to: source) {
            ck_phase_split($0, x, Int32(channels.lowerBound), Int32(channels.upperBound), dst)
        }
    }

    /// `y[i][p] = bias[i] + Σₖ W[i][k] · B[k][p]` for `i` in `outputRows` and `p` in `columns`,
    /// where `W` (`m`×`k`) was packed by ``packWeights(m:k:_:ldw:into:)`` and `B` is `source`:
    /// row pointers (read only at `columns`) or a convolution window (see `ck_gemm_source`);
    /// then `epilogue`, if any. `outputRows` starts at a multiple of 8. `bias` (`m` floats) `nil`
    /// is zero; `y` has row stride `ldy`, and `y` and `bias` point at row 0.
    static func gemm(m: Int, k: Int, packed: UnsafePointer<Float>, outputRows: Range<Int>,
                     source: UnsafePointer<GemmSource>, columns: Range<Int>,
                     y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?,
                     epilogue: UnsafePointer<GemmEpilogue>? = nil) {
        ck_gemm(Int32(m), Int32(k), packed, Int32(outputRows.lowerBound), Int32(outputRows.upperBound), source,
                Int32(columns.lowerBound), Int32(columns.upperBound), y, Int32(ldy), bias, epilogue)
    }

    /// Whether ``gemm(m:k:packed:outputRows:source:columns:y:ldy:bias:epilogue:)`` copies the
    /// right-hand matrix into panels for an `m`-row matrix and this kind of source: AVX-512 only;
    /// a window always, row pointers from 64 rows (fewer are read in place).
    static func gemmPacks(m: Int, window: Bool) -> Bool { ck_gemm_packs(Int32(m), window ? 1 : 0) != 0 }

    /// Columns per block of the kernel ``gemm(m:k:packed:outputRows:source:columns:y:ldy:bias:epilogue:)``
    /// runs for an `m`-row matrix and this kind of source: a split of the columns among threads
    /// cuts at multiples of it.
    static func gemmColumnBlock(m: Int, window: Bool) -> Int { Int(ck_gemm_column_block(Int32(m), window ? 1 : 0)) }

    // MARK: float16 / bfloat16 arrays

    /// `y[i] = Float(x[i])` for `count` float16 (`bfloat16` false) or bfloat16 bit patterns.
    @inline(__always)
    static func widen(_ x: UnsafePointer<UInt16>, bfloat16: Bool, _ y: UnsafeMutablePointer<Float>, count: Int) {
        if bfloat16 { ck_bf16_to_f32(x, y, count) } else { ck_f16_to_f32(x, y, count) }
    }

    /// `y[i]` = the float16 (`bfloat16` false) or bfloat16 bits of `x[i]`, rounded to nearest even.
    @inline(__always)
    static func narrow(_ x: UnsafePointer<Float>, bfloat16: Bool, _ y: UnsafeMutablePointer<UInt16>, count: Int) {
        if bfloat16 { ck_f32_to_bf16(x, y, count) } else { ck_f32_to_f16(x, y, count) }
    }

    /// `y[i]` = `x[i]` rounded to float16 (`bfloat16` false) or bfloat16 and widened back;
    /// `x` and `y` may be the same array.
    @inline(__always)
    static func roundThrough(_ x: UnsafePointer<Float>, bfloat16: Bool, _ y: UnsafeMutablePointer<Float>, count: Int) {
        if bfloat16 { ck_f32_round_bf16(x, y, count) } else { ck_f32_round_f16(x, y, count) }
    }

    /// Runs `body` over `0..<count` in chunks of `chunk` iterations on the caller and up to
    /// `threads - 1` workers of the CKernels pool, which spin briefly between jobs instead of
    /// sleeping (waking a sleeping thread costs more than most kernels of a small model take).
    static func parallelFor(threads: Int, count: Int, chunk: Int, _ body: (Range<Int>) -> Void) {
        withoutActuallyEscaping(body) { body in
            var box = body
            withUnsafeMutablePointer(to: &box) { p in
                ck_parallel_for(Int32(clamping: threads), count, chunk, { ctx, lo, hi in
                    ctx!.assumingMemoryBound(to: ((Range<Int>) -> Void).self).pointee(Int(lo) ..< Int(hi))
                }, p)
            }
        }
    }
}
