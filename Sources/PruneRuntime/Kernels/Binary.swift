import Foundation
import PruneIR

// Broadcasting binary arithmetic: Add, Sub, Mul, Div, Pow, Mod, BitShift, BitwiseAnd/Or/Xor.
//
// This file also holds the machinery the other elementwise families (Compare, Variadic, Where)
// share: the numeric element protocol, the per-element op protocol, type dispatch, and the
// broadcasting driver with its fast paths.

// MARK: - Element types

/// A numeric element type the elementwise kernels compute on, with ONNX/NumPy semantics for
/// the operations whose integer and floating-point behaviour differ.
protocol NumericElement: TensorElement, Comparable {
    /// `a + b` (wrapping for integers).
    static func add(_ a: Self, _ b: Self) -> Self
    /// `a - b` (wrapping for integers).
    static func sub(_ a: Self, _ b: Self) -> Self
    /// `a * b` (wrapping for integers).
    static func mul(_ a: Self, _ b: Self) -> Self
    /// `a / b`; integers truncate toward zero, and division by zero gives 0 (as NumPy does).
    static func div(_ a: Self, _ b: Self) -> Self
    /// Remainder with the sign of the divisor (NumPy `mod`, ONNX `Mod` with `fmod = 0`).
    static func mod(_ a: Self, _ b: Self) -> Self
    /// Remainder with the sign of the dividend (C `fmod`, ONNX `Mod` with `fmod = 1`).
    static func fmod(_ a: Self, _ b: Self) -> Self
    /// `a` to the power `b`, both of this type.
    static func powSame(_ a: Self, _ b: Self) -> Self
    /// `a` to the power `e` of another element type, rounded back to this type.
    static func powMixed<E: NumericElement>(_ a: Self, _ e: E) -> Self
    /// The larger value; NaN wins (NumPy `maximum`).
    static func propagatingMax(_ a: Self, _ b: Self) -> Self
    /// The smaller value; NaN wins (NumPy `minimum`).
    static func propagatingMin(_ a: Self, _ b: Self) -> Self
    /// The value as a `Double`.
    var doubleValue: Double { get }
    /// `d` converted to this type (integers truncate and saturate; NaN becomes 0).
    init(fromDouble d: Double)
    /// Whether this is an integer type.
    static var isInteger: Bool { get }
}

extension NumericElement where Self: FixedWidthInteger {
    @inline(__always) static func add(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inline(__always) static func sub(_ a: Self, _ b: Self) -> Self { a &- b }
    @inline(__always) static func mul(_ a: Self, _ b: Self) -> Self { a &* b }
    @inline(__always) static func div(_ a: Self, _ b: Self) -> Self {
        // Swift traps on x / 0 and on min / -1; NumPy gives 0 and wraps.
        b == 0 ? 0 : a.dividedReportingOverflow(by: b).partialValue
    }
    @inline(__always) static func mod(_ a: Self, _ b: Self) -> Self {
        if b == 0 { return 0 }
        let r = a.remainderReportingOverflow(dividingBy: b).partialValue
        return r != 0 && (r < 0) != (b < 0) ? r &+ b : r
    }
    @inline(__always) static func fmod(_ a: Self, _ b: Self) -> Self {
        b == 0 ? 0 : a.remainderReportingOverflow(dividingBy: b).partialValue
    }
    @inline(__always) static func powSame(_ a: Self, _ b: Self) -> Self {
        b < 0 ? Self(fromDouble: Foundation.pow(Double(a), Double(b))) : integerPower(a, UInt64(b))
    }
    @inline(__always) static func powMixed<E: NumericElement>(_ a: Self, _ e: E) -> Self {
        let d = e.doubleValue
        if E.isInteger && d >= 0 { return integerPower(a, d >= 18446744073709551615.0 ? .max : UInt64(d)) }
        return Self(fromDouble: Foundation.pow(Double(a), d))
    }
    /// `base` to the power `n` by squaring, wrapping like NumPy's integer power.
    @inline(__always) static func integerPower(_ base: Self, _ n: UInt64) -> Self {
        var result: Self = 1, b = base, n = n
        while n > 0 {
            if n & 1 == 1 { result = result &* b }
            n >>= 1
            if n > 0 { b = b &* b }
        }
        return result
    }
    @inline(__always) static func propagatingMax(_ a: Self, _ b: Self) -> Self { a < b ? b : a }
    @inline(__always) static func propagatingMin(_ a: Self, _ b: Self) -> Self { b < a ? b : a }
    @inline(__always) var doubleValue: Double { Double(self) }
    @inline(__always) init(fromDouble d: Double) {
        if d.isNaN { self = 0 }
        else if d <= Double(Self.min) { self = .min }
        else if d >= Double(Self.max) { self = .max }
        else { self.init(d) }
    }
    static var isInteger: Bool { true }
}

extension NumericElement where Self: BinaryFloatingPoint {
    @inline(__always) static func add(_ a: Self, _ b: Self) -> Self { a + b }
    @inline(__always) static func sub(_ a: Self, _ b: Self) -> Self { a - b }
    @inline(__always) static func mul(_ a: Self, _ b: Self) -> Self { a * b }
    @inline(__always) static func div(_ a: Self, _ b: Self) -> Self { a / b }
    @inline(__always) static func mod(_ a: Self, _ b: Self) -> Self {
        // NumPy's npy_divmod: fmod, then move the remainder to the divisor's sign.
        let m = a.truncatingRemainder(dividingBy: b)
        if b == 0 { return m }
        if m != 0 { return (b < 0) != (m < 0) ? m + b : m }
        return Self(signOf: b, magnitudeOf: 0)
    }
    @inline(__always) static func fmod(_ a: Self, _ b: Self) -> Self { a.truncatingRemainder(dividingBy: b) }
    @inline(__always) static func powMixed<E: NumericElement>(_ a: Self, _ e: E) -> Self {
        Self(Foundation.pow(Double(a), e.doubleValue))
    }
    @inline(__always) static func propagatingMax(_ a: Self, _ b: Self) -> Self { a > b || a.isNaN ? a : b }
    @inline(__always) static func propagatingMin(_ a: Self, _ b: Self) -> Self { a < b || a.isNaN ? a : b }
    @inline(__always) var doubleValue: Double { Double(self) }
    @inline(__always) init(fromDouble d: Double) { self.init(d) }
    static var isInteger: Bool { false }
}

extension Float: NumericElement {
    @inline(__always) static func powSame(_ a: Float, _ b: Float) -> Float { Foundation.powf(a, b) }
}
extension Double: NumericElement {
    @inline(__always) static func powSame(_ a: Double, _ b: Double) -> Double { Foundation.pow(a, b) }
}
extension Float16: NumericElement {
    @inline(__always) static func powSame(_ a: Float16, _ b: Float16) -> Float16 { Float16(Foundation.powf(Float(a), Float(b))) }
}
extension Int8: NumericElement {}
extension Int16: NumericElement {}
extension Int32: NumericElement {}
extension Int64: NumericElement {}
extension UInt8: NumericElement {}
extension UInt16: NumericElement {}
extension UInt32: NumericElement {}
extension UInt64: NumericElement {}

// MARK: - Type dispatch

/// Code generic over a numeric element type, run for a runtime ``DType`` by ``visitNumeric(_:_:)``.
protocol NumericVisitor {
    associatedtype Result
    func visit<T: NumericElement>(_ type: T.Type) throws -> Result
}

/// Code generic over an integer element type, run by ``visitInteger(_:_:)`` or ``visitWidth(_:_:)``.
protocol IntegerVisitor {
    associatedtype Result
    func visit<T: NumericElement & FixedWidthInteger>(_ type: T.Type) throws -> Result
}

/// The element types ``visitNumeric(_:_:)`` handles.
let numericTypes: Set<DType> = [.float, .double, .float16, .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64]
/// The element types ``visitInteger(_:_:)`` handles.
let integerTypes: Set<DType> = [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64]

/// Runs `v` with the Swift type of `dtype`.
func visitNumeric<V: NumericVisitor>(_ dtype: DType, _ v: V) throws -> V.Result {
    switch dtype {
    case .float: return try v.visit(Float.self)
    case .double: return try v.visit(Double.self)
    case .float16: return try v.visit(Float16.self)
    case .int8: return try v.visit(Int8.self)
    case .int16: return try v.visit(Int16.self)
    case .int32: return try v.visit(Int32.self)
    case .int64: return try v.visit(Int64.self)
    case .uint8: return try v.visit(UInt8.self)
    case .uint16: return try v.visit(UInt16.self)
    case .uint32: return try v.visit(UInt32.self)
    case .uint64: return try v.visit(UInt64.self)
    default: throw KernelError("element type \(dtype) is not supported")
    }
}

/// Runs `v` with the Swift type of the integer `dtype`.
func visitInteger<V: IntegerVisitor>(_ dtype: DType, _ v: V) throws -> V.Result {
    switch dtype {
    case .int8: return try v.visit(Int8.self)
    case .int16: return try v.visit(Int16.self)
    case .int32: return try v.visit(Int32.self)
    case .int64: return try v.visit(Int64.self)
    case .uint8: return try v.visit(UInt8.self)
    case .uint16: return try v.visit(UInt16.self)
    case .uint32: return try v.visit(UInt32.self)
    case .uint64: return try v.visit(UInt64.self)
    default: throw KernelError("element type \(dtype) is not an integer type")
    }
}

/// Runs `v` with the unsigned integer type as wide as one element of `dtype`: for kernels that
/// only move or combine bits (Where, bitwise and logical ops).
func visitWidth<V: IntegerVisitor>(_ dtype: DType, _ v: V) throws -> V.Result {
    switch NDArray.byteCount(dtype, 1) {
    case 1 where dtype.bitWidth >= 8 || dtype == .bool: return try v.visit(UInt8.self)
    case 2: return try v.visit(UInt16.self)
    case 4: return try v.visit(UInt32.self)
    case 8 where dtype.bitWidth == 64: return try v.visit(UInt64.self)
    default: throw KernelError("element type \(dtype) is not supported")
    }
}

/// Throws ``KernelError/unsupported(_:)`` from a factory when the IR says input `i` has an
/// element type outside `allowed`.
func requireInputType(_ info: KernelBuildInfo, _ i: Int, in allowed: Set<DType>) throws {
    if let t = info.inputType(i), !allowed.contains(t) {
        throw KernelError.unsupported("\(info.node.opType.name) on element type \(t) is not implemented")
    }
}

// MARK: - Broadcasting driver

/// A per-element binary function, as a type so the driver is specialized (and the function
/// inlined into its loops) for every op and element type.
protocol BinaryElementOp {
    associatedtype A
    associatedtype B
    associatedtype Out
    static func apply(_ a: A, _ b: B) -> Out
}

/// The broadcast of several operands onto an output shape, simplified for iteration: size-1
/// dimensions dropped and adjacent dimensions merged wherever every operand steps through them
/// contiguously (or not at all), so e.g. `[N,C,H,W] + [1,C,1,1]` becomes `[N,C,H*W]`.
struct BroadcastPlan {
    /// Simplified output shape (rank ≥ 1).
    var shape: [Int]
    /// Element strides of each operand along ``shape`` (0 where broadcast).
    var strides: [[Int]]

    init(output: [Int], operands: [[Int]]) {
        let full = operands.map { Broadcast.strides(of: $0, to: output) }
        var shape: [Int] = []
        var strides = [[Int]](repeating: [], count: operands.count)
        for d in output.indices where output[d] != 1 {
            if let last = shape.indices.last,
               (0..<operands.count).allSatisfy({ strides[$0][last] == full[$0][d] * output[d] }) {
                shape[last] *= output[d]
                for k in 0..<operands.count { strides[k][last] = full[k][d] }
            } else {
                shape.append(output[d])
                for k in 0..<operands.count { strides[k].append(full[k][d]) }
            }
        }
        if shape.isEmpty {
            shape = [1]
            strides = strides.map { _ in [0] }
        }
        self.shape = shape
        self.strides = strides
    }

    /// Length of the innermost dimension: the run each row of the iteration covers.
    var inner: Int { shape[shape.count - 1] }
    /// Number of rows (product of the outer dimensions).
    var rows: Int { shape.dropLast().reduce(1, *) }
    /// Stride of operand `k` along the innermost dimension.
    func innerStride(_ k: Int) -> Int { strides[k][shape.count - 1] }
}

/// Walks the rows of a ``BroadcastPlan`` in order, keeping each operand's element offset.
struct RowWalker {
    private let shape: [Int]
    private let strides: [[Int]]
    private var index: [Int]
    /// Element offset of each operand at the start of the current row.
    private(set) var offsets: [Int]

    /// Starts at row `row`.
    init(_ plan: BroadcastPlan, row: Int) {
        shape = Array(plan.shape.dropLast())
        strides = plan.strides
        index = [Int](repeating: 0, count: shape.count)
        offsets = [Int](repeating: 0, count: plan.strides.count)
        var r = row
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            index[d] = r % shape[d]
            r /= shape[d]
            for k in 0..<offsets.count { offsets[k] += index[d] * strides[k][d] }
        }
    }

    /// Moves to the next row (odometer order).
    @inline(__always)
    mutating func next() {
        var d = shape.count - 1
        while d >= 0 {
            index[d] += 1
            for k in 0..<offsets.count { offsets[k] += strides[k][d] }
            if index[d] < shape[d] { return }
            for k in 0..<offsets.count { offsets[k] -= strides[k][d] * shape[d] }
            index[d] = 0
            d -= 1
        }
    }
}

/// Elements per parallel chunk: below this, threading costs more than it saves.
let elementwiseGrain = 32_768

/// One run of `n` outputs: tight loops for the contiguous and broadcast-scalar stride patterns.
@inline(__always)
func binaryRun<Op: BinaryElementOp>(
    _: Op.Type, _ o: UnsafeMutablePointer<Op.Out>,
    _ a: UnsafePointer<Op.A>, _ sa: Int, _ b: UnsafePointer<Op.B>, _ sb: Int, _ n: Int
) {
    if sa == 1 && sb == 1 {
        for i in 0..<n { o[i] = Op.apply(a[i], b[i]) }
    } else if sa == 1 && sb == 0 {
        let y = b[0]
        for i in 0..<n { o[i] = Op.apply(a[i], y) }
    } else if sa == 0 && sb == 1 {
        let x = a[0]
        for i in 0..<n { o[i] = Op.apply(x, b[i]) }
    } else {
        for i in 0..<n { o[i] = Op.apply(a[i &* sa], b[i &* sb]) }
    }
}

/// `Op` applied elementwise to `a` and `b` with NumPy broadcasting, into a new array of `outType`.
///
/// Same-shape and scalar operands run as one flat loop; everything else goes through a
/// simplified ``BroadcastPlan`` whose rows each run a tight inner loop. Large outputs are split
/// across threads.
/// Whether `small`, without its leading 1s, is the trailing part of `shape`: then an array of
/// `small` shape is one block that repeats over the rows of an array of `shape`.
@inline(__always)
func isTrailingBlock(_ small: [Int], of shape: [Int]) -> Bool {
    var lead = 0
    while lead < small.count && small[lead] == 1 { lead += 1 }
    let k = small.count - lead
    guard k <= shape.count else { return false }
    for i in 0..<k where small[lead + i] != shape[shape.count - k + i] { return false }
    return true
}

func broadcastBinary<Op: BinaryElementOp>(
    _ op: Op.Type, _ a: NDArray, _ b: NDArray, outType: DType, _ ctx: KernelContext
) throws -> NDArray {
    let shape = a.shape == b.shape ? a.shape : try Broadcast.shape(a.shape, b.shape)
    let out = ctx.allocate(outType, shape)
    let n = out.count
    if n == 0 { return out }
    let pa = UnsafePointer(a.pointer(as: Op.A.self))
    let pb = UnsafePointer(b.pointer(as: Op.B.self))
    let po = out.pointer(as: Op.Out.self)
    // An operand with as many elements as the output is laid out like it (no broadcast dims).
    if (a.count == n || a.count == 1) && (b.count == n || b.count == 1) {
        let sa = a.count == n ? 1 : 0, sb = b.count == n ? 1 : 0
        ctx.parallelFor(n, grain: elementwiseGrain) { r in
            binaryRun(Op.self, po + r.lowerBound, pa + r.lowerBound * sa, sa, pb + r.lowerBound * sb, sb, r.count)
        }
        return out
    }
    // One operand repeats over the other's rows (a bias, a scale): plain row loops, no walker.
    // This is the common broadcast in transformers, and the walker's setup costs more than
    // the arithmetic on their small tensors.
    if a.count == n, b.count > 0, isTrailingBlock(b.shape, of: shape) {
        let inner = b.count
        ctx.parallelFor(n / inner, grain: max(1, elementwiseGrain / inner)) { rows in
            for row in rows { binaryRun(Op.self, po + row * inner, pa + row * inner, 1, pb, 1, inner) }
        }
        return out
    }
    if b.count == n, a.count > 0, isTrailingBlock(a.shape, of: shape) {
        let inner = a.count
        ctx.parallelFor(n / inner, grain: max(1, elementwiseGrain / inner)) { rows in
            for row in rows { binaryRun(Op.self, po + row * inner, pa, 1, pb + row * inner, 1, inner) }
        }
        return out
    }
    let plan = BroadcastPlan(output: shape, operands: [a.shape, b.shape])
    let inner = plan.inner
    let sa = plan.innerStride(0), sb = plan.innerStride(1)
    ctx.parallelFor(plan.rows, grain: max(1, elementwiseGrain / inner)) { rows in
        var w = RowWalker(plan, row: rows.lowerBound)
        for row in rows {
            binaryRun(Op.self, po + row * inner, pa + w.offsets[0], sa, pb + w.offsets[1], sb, inner)
            w.next()
        }
    }
    return out
}

// MARK: - Arithmetic

/// An arithmetic function on two values of one numeric type.
protocol ArithKind {
    static func apply<T: NumericElement>(_ a: T, _ b: T) -> T
}

enum AddKind: ArithKind { @inline(__always) static func apply<T: NumericElement>(_ a: T, _ b: T) -> T { T.add(a, b) } }
enum SubKind: ArithKind { @inline(__always) static func apply<T: NumericElement>(_ a: T, _ b: T) -> T { T.sub(a, b) } }
enum MulKind: ArithKind { @inline(__always) static func apply<T: NumericElement>(_ a: T, _ b: T) -> T { T.mul(a, b) } }
enum DivKind: ArithKind { @inline(__always) static func apply<T: NumericElement>(_ a: T, _ b: T) -> T { T.div(a, b) } }
enum ModKind: ArithKind { @inline(__always) static func apply<T: NumericElement>(_ a: T, _ b: T) -> T { T.mod(a, b) } }
enum FModKind: ArithKind { @inline(__always) static func apply<T: NumericElement>(_ a: T, _ b: T) -> T { T.fmod(a, b) } }
enum PowKind: ArithKind { @inline(__always) static func apply<T: NumericElement>(_ a: T, _ b: T) -> T { T.powSame(a, b) } }
enum MaxKind: ArithKind { @inline(__always) static func apply<T: NumericElement>(_ a: T, _ b: T) -> T { T.propagatingMax(a, b) } }
enum MinKind: ArithKind { @inline(__always) static func apply<T: NumericElement>(_ a: T, _ b: T) -> T { T.propagatingMin(a, b) } }

/// ``ArithKind`` `K` on element type `T`, as a ``BinaryElementOp``.
enum ArithOp<K: ArithKind, T: NumericElement>: BinaryElementOp {
    @inline(__always) static func apply(_ a: T, _ b: T) -> T { K.apply(a, b) }
}

/// Runs ``ArithKind`` `K` on two arrays of one numeric type, broadcasting.
struct ArithVisitor<K: ArithKind>: NumericVisitor {
    let a: NDArray, b: NDArray, ctx: KernelContext
    func visit<T: NumericElement>(_: T.Type) throws -> NDArray {
        try broadcastBinary(ArithOp<K, T>.self, a, b, outType: T.dtype, ctx)
    }
}

/// `K` applied to two same-typed arrays with broadcasting.
func arith<K: ArithKind>(_: K.Type, _ a: NDArray, _ b: NDArray, _ ctx: KernelContext) throws -> NDArray {
    guard a.dtype == b.dtype else { throw KernelError("input types \(a.dtype) and \(b.dtype) differ") }
    if FloatBridge.isHalf(a.dtype) {
        // Computed in Float and rounded once, as onnx's reference does: for float16 the same
        // results as Float16 arithmetic (float32 holds every exact sum, product and quotient to
        // well past float16's rounding point), without Float16's per-element software conversions;
        // bfloat16 has no Swift type at all.
        let y = try visitNumeric(.float, ArithVisitor<K>(a: FloatBridge.toFloat(a, ctx), b: FloatBridge.toFloat(b, ctx), ctx: ctx))
        return FloatBridge.fromFloat(y, to: a.dtype, ctx)
    }
    return try visitNumeric(a.dtype, ArithVisitor<K>(a: a, b: b, ctx: ctx))
}

/// A kernel for a same-typed two-input arithmetic op.
func arithKernel<K: ArithKind>(_ kind: K.Type, _ info: KernelBuildInfo) throws -> any Kernel {
    try requireInputType(info, 0, in: numericTypes.union([.bfloat16]))
    return ClosureKernel { inputs, ctx in [try arith(K.self, inputs.required(0), inputs.required(1), ctx)] }
}

// MARK: - Pow

/// `base ** exponent` where the exponent has another element type; the result has the base's.
enum PowMixedOp<T: NumericElement, E: NumericElement>: BinaryElementOp {
    @inline(__always) static func apply(_ a: T, _ b: E) -> T { T.powMixed(a, b) }
}

/// Pow with base type `T`, dispatching on the exponent's type.
struct PowBaseVisitor: NumericVisitor {
    let a: NDArray, b: NDArray, ctx: KernelContext
    func visit<T: NumericElement>(_: T.Type) throws -> NDArray {
        try visitNumeric(b.dtype, PowExponentVisitor<T>(a: a, b: b, ctx: ctx))
    }
}

struct PowExponentVisitor<T: NumericElement>: NumericVisitor {
    let a: NDArray, b: NDArray, ctx: KernelContext
    func visit<E: NumericElement>(_: E.Type) throws -> NDArray {
        try broadcastBinary(PowMixedOp<T, E>.self, a, b, outType: T.dtype, ctx)
    }
}

/// ONNX Pow: `a ** b` with broadcasting; the result has `a`'s type, `b` may have another.
func powArrays(_ a: NDArray, _ b: NDArray, _ ctx: KernelContext) throws -> NDArray {
    if a.dtype == .bfloat16 || b.dtype == .bfloat16 {
        // bfloat16 has no Swift type: computed in Float, rounded once to the base's type.
        let fa = a.dtype == .bfloat16 ? FloatBridge.toFloat(a, ctx) : a
        let fb = b.dtype == .bfloat16 ? FloatBridge.toFloat(b, ctx) : b
        let y = try powArrays(fa, fb, ctx)
        return a.dtype == .bfloat16 ? FloatBridge.fromFloat(y, to: .bfloat16, ctx) : y
    }
    if a.dtype == b.dtype {
        // x ** 2 (common in decomposed norms) is a multiply, much cheaper than pow.
        if b.count == 1, !integerTypes.contains(a.dtype), b.element(at: 0) == 2,
           (try? Broadcast.shape(a.shape, b.shape)) == a.shape {
            return try arith(MulKind.self, a, a, ctx)
        }
        return try arith(PowKind.self, a, b, ctx)
    }
    return try visitNumeric(a.dtype, PowBaseVisitor(a: a, b: b, ctx: ctx))
}

// MARK: - Bit operations

/// A bit function on two values of one integer type.
protocol BitKind {
    static func apply<T: FixedWidthInteger>(_ a: T, _ b: T) -> T
}

enum BitAndKind: BitKind { @inline(__always) static func apply<T: FixedWidthInteger>(_ a: T, _ b: T) -> T { a & b } }
enum BitOrKind: BitKind { @inline(__always) static func apply<T: FixedWidthInteger>(_ a: T, _ b: T) -> T { a | b } }
enum BitXorKind: BitKind { @inline(__always) static func apply<T: FixedWidthInteger>(_ a: T, _ b: T) -> T { a ^ b } }

/// `a << b`; shifts outside `0..<bitWidth` give 0.
enum ShiftLeftKind: BitKind {
    @inline(__always) static func apply<T: FixedWidthInteger>(_ a: T, _ b: T) -> T {
        b < 0 || b >= T.bitWidth ? 0 : a &<< b
    }
}

/// `a >> b` (arithmetic for signed types); shifts outside `0..<bitWidth` give the sign fill.
enum ShiftRightKind: BitKind {
    @inline(__always) static func apply<T: FixedWidthInteger>(_ a: T, _ b: T) -> T {
        b < 0 || b >= T.bitWidth ? (a < 0 ? ~0 : 0) : a &>> b
    }
}

/// ``BitKind`` `K` on element type `T`, as a ``BinaryElementOp``.
enum BitOp<K: BitKind, T: FixedWidthInteger>: BinaryElementOp {
    @inline(__always) static func apply(_ a: T, _ b: T) -> T { K.apply(a, b) }
}

/// Runs ``BitKind`` `K` on two same-typed integer (or bool) arrays, with output type `outType`.
struct BitVisitor<K: BitKind>: IntegerVisitor {
    let a: NDArray, b: NDArray, outType: DType, ctx: KernelContext
    func visit<T: NumericElement & FixedWidthInteger>(_: T.Type) throws -> NDArray {
        try broadcastBinary(BitOp<K, T>.self, a, b, outType: outType, ctx)
    }
}

/// A kernel for BitwiseAnd/Or/Xor: bit operations only care about the element width.
func bitwiseKernel<K: BitKind>(_: K.Type, _ info: KernelBuildInfo) throws -> any Kernel {
    try requireInputType(info, 0, in: integerTypes)
    return ClosureKernel { inputs, ctx in
        let a = try inputs.required(0), b = try inputs.required(1)
        guard a.dtype == b.dtype, integerTypes.contains(a.dtype) else {
            throw KernelError("bitwise op on \(a.dtype) and \(b.dtype)")
        }
        return [try visitWidth(a.dtype, BitVisitor<K>(a: a, b: b, outType: a.dtype, ctx: ctx))]
    }
}

/// A kernel for BitShift: the shift's sign behaviour needs the real (signed or unsigned) type.
func shiftKernel<K: BitKind>(_: K.Type, _ info: KernelBuildInfo) throws -> any Kernel {
    try requireInputType(info, 0, in: integerTypes)
    return ClosureKernel { inputs, ctx in
        let a = try inputs.required(0), b = try inputs.required(1)
        guard a.dtype == b.dtype else { throw KernelError("input types \(a.dtype) and \(b.dtype) differ") }
        return [try visitInteger(a.dtype, BitVisitor<K>(a: a, b: b, outType: a.dtype, ctx: ctx))]
    }
}

// MARK: - Registration

func registerBinaryKernels(_ r: inout KernelRegistry) {
    // Opsets before 7 had `broadcast`/`axis` attributes; only the NumPy-broadcasting forms are here.
    r.register("Add", since: 7) { try arithKernel(AddKind.self, $0) }
    r.register("Sub", since: 7) { try arithKernel(SubKind.self, $0) }
    r.register("Mul", since: 7) { try arithKernel(MulKind.self, $0) }
    r.register("Div", since: 7) { try arithKernel(DivKind.self, $0) }
    // Pow-12 allows the exponent a different type than the base; the same kernel serves Pow-7.
    r.register("Pow", since: 7) { info in
        try requireInputType(info, 0, in: numericTypes.union([.bfloat16]))
        try requireInputType(info, 1, in: numericTypes.union([.bfloat16]))
        return ClosureKernel { inputs, ctx in [try powArrays(inputs.required(0), inputs.required(1), ctx)] }
    }
    r.register("Mod", since: 10) { info in
        let fmod: Int = try info.attribute("fmod", default: 0)
        // Floats with fmod = 0 follow NumPy's mod (the sign of the divisor), as the tests expect.
        return fmod == 0 ? try arithKernel(ModKind.self, info) : try arithKernel(FModKind.self, info)
    }
    r.register("BitShift", since: 11) { info in
        let direction: String = try info.attribute("direction", default: "")
        switch direction {
        case "LEFT": return try shiftKernel(ShiftLeftKind.self, info)
        case "RIGHT": return try shiftKernel(ShiftRightKind.self, info)
        default: throw KernelError("BitShift direction '\(direction)' must be LEFT or RIGHT")
        }
    }
    r.register("BitwiseAnd", since: 18) { try bitwiseKernel(BitAndKind.self, $0) }
    r.register("BitwiseOr", since: 18) { try bitwiseKernel(BitOrKind.self, $0) }
    r.register("BitwiseXor", since: 18) { try bitwiseKernel(BitXorKind.self, $0) }
}

// MARK: Gradients

/// VJPs of Add, Sub, Mul, Div, Pow: elementwise, then summed down to each operand's broadcast shape.
func registerBinaryGradients(_ r: inout GradientRegistry) {
    r.register(["Add", "Sub"]) { c, gs in
        let y = try c.output(0), g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let a = try c.input(0), b = try c.input(1)
        let ga = c.needs(0) ? GradientMath.reduce(g, to: a.shape, c.kernel) : nil
        var gb: NDArray?
        if c.needs(1) {
            let neg = c.node.opType.name == "Sub"
            gb = GradientMath.reduce(neg ? GradientMath.map(g.shape, [g], c.kernel) { -$0[0] } : g, to: b.shape, c.kernel)
        }
        return [ga, gb]
    }
    r.register(["Mul"]) { c, gs in
        let y = try c.output(0), g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let a = try c.input(0), b = try c.input(1)
        let ga = c.needs(0) ? GradientMath.reduce(GradientMath.map(g.shape, [g, b], c.kernel) { $0[0] * $0[1] }, to: a.shape, c.kernel) : nil
        let gb = c.needs(1) ? GradientMath.reduce(GradientMath.map(g.shape, [g, a], c.kernel) { $0[0] * $0[1] }, to: b.shape, c.kernel) : nil
        return [ga, gb]
    }
    r.register(["Div"]) { c, gs in
        let y = try c.output(0), g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let a = try c.input(0), b = try c.input(1)
        let ga = c.needs(0) ? GradientMath.reduce(GradientMath.map(g.shape, [g, b], c.kernel) { $0[0] / $0[1] }, to: a.shape, c.kernel) : nil
        // d(a/b)/db = -a/b² = -y/b.
        let gb = c.needs(1) ? GradientMath.reduce(GradientMath.map(g.shape, [g, y, b], c.kernel) { -$0[0] * $0[1] / $0[2] }, to: b.shape, c.kernel) : nil
        return [ga, gb]
    }
    r.register(["Pow"]) { c, gs in
        let y = try c.output(0), g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let a = try c.input(0), b = try c.input(1)
        guard a.dtype == b.dtype else { throw KernelError("gradient of Pow with mixed element types \(a.dtype), \(b.dtype)") }
        // d(a^b)/da = b·a^(b−1); d(a^b)/db = a^b·ln a (taken as 0 where a ≤ 0).
        let ga = c.needs(0)
            ? GradientMath.reduce(GradientMath.map(g.shape, [g, a, b], c.kernel) { $0[0] * $0[2] * Foundation.pow($0[1], $0[2] - 1) }, to: a.shape, c.kernel) : nil
        let gb = c.needs(1)
            ? GradientMath.reduce(GradientMath.map(g.shape, [g, y, a], c.kernel) { $0[2] > 0 ? $0[0] * $0[1] * Foundation.log($0[2]) : 0 }, to: b.shape, c.kernel) : nil
        return [ga, gb]
    }
}
