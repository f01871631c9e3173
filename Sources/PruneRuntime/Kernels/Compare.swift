import PruneIR

// Comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual) and logical And/Or/Xor:
// broadcasting binary ops with a bool output, built on the driver in Binary.swift.

/// A comparison of two values of one type.
protocol CompareKind {
    static func apply<T: Comparable>(_ a: T, _ b: T) -> Bool
}

enum EqualKind: CompareKind { @inline(__always) static func apply<T: Comparable>(_ a: T, _ b: T) -> Bool { a == b } }
enum LessKind: CompareKind { @inline(__always) static func apply<T: Comparable>(_ a: T, _ b: T) -> Bool { a < b } }
enum GreaterKind: CompareKind { @inline(__always) static func apply<T: Comparable>(_ a: T, _ b: T) -> Bool { a > b } }
enum LessOrEqualKind: CompareKind { @inline(__always) static func apply<T: Comparable>(_ a: T, _ b: T) -> Bool { a <= b } }
enum GreaterOrEqualKind: CompareKind { @inline(__always) static func apply<T: Comparable>(_ a: T, _ b: T) -> Bool { a >= b } }

/// ``CompareKind`` `K` on element type `T`, as a ``BinaryElementOp``.
enum CompareOp<K: CompareKind, T: Comparable>: BinaryElementOp {
    @inline(__always) static func apply(_ a: T, _ b: T) -> Bool { K.apply(a, b) }
}

/// Runs ``CompareKind`` `K` on two same-typed arrays, broadcasting, into a bool array.
struct CompareVisitor<K: CompareKind>: NumericVisitor {
    let a: NDArray, b: NDArray, ctx: KernelContext
    func visit<T: NumericElement>(_: T.Type) throws -> NDArray {
        try broadcastBinary(CompareOp<K, T>.self, a, b, outType: .bool, ctx)
    }
}

/// A kernel for comparison `K`; `bools` says whether bool inputs are allowed (Equal only).
func compareKernel<K: CompareKind>(_: K.Type, _ info: KernelBuildInfo, bools: Bool) throws -> any Kernel {
    try requireInputType(info, 0, in: (bools ? numericTypes.union([.bool]) : numericTypes).union([.bfloat16]))
    return ClosureKernel { inputs, ctx in
        var a = try inputs.required(0), b = try inputs.required(1)
        guard a.dtype == b.dtype else { throw KernelError("input types \(a.dtype) and \(b.dtype) differ") }
        if a.dtype == .bfloat16 {
            // Widening to Float is exact, so comparisons are unchanged.
            a = try castArray(a, to: .float, ctx)
            b = try castArray(b, to: .float, ctx)
        }
        // Bools are bytes holding 0 or 1, so they compare as UInt8.
        let t: DType = a.dtype == .bool && bools ? .uint8 : a.dtype
        return [try visitNumeric(t, CompareVisitor<K>(a: a, b: b, ctx: ctx))]
    }
}

/// A kernel for logical And/Or/Xor: bools are bytes holding 0 or 1, so bit ops on the bytes
/// compute them.
func logicalKernel<K: BitKind>(_: K.Type, _ info: KernelBuildInfo) throws -> any Kernel {
    try requireInputType(info, 0, in: [.bool])
    return ClosureKernel { inputs, ctx in
        let a = try inputs.required(0), b = try inputs.required(1)
        guard a.dtype == .bool, b.dtype == .bool else { throw KernelError("logical op on \(a.dtype) and \(b.dtype)") }
        return [try broadcastBinary(BitOp<K, UInt8>.self, a, b, outType: .bool, ctx)]
    }
}

func registerCompareKernels(_ r: inout KernelRegistry) {
    // Later versions only add element types (and strings for Equal-19, which the runtime lacks).
    r.register("Equal", since: 7) { try compareKernel(EqualKind.self, $0, bools: true) }
    r.register("Less", since: 7) { try compareKernel(LessKind.self, $0, bools: false) }
    r.register("Greater", since: 7) { try compareKernel(GreaterKind.self, $0, bools: false) }
    r.register("LessOrEqual", since: 12) { try compareKernel(LessOrEqualKind.self, $0, bools: false) }
    r.register("GreaterOrEqual", since: 12) { try compareKernel(GreaterOrEqualKind.self, $0, bools: false) }
    r.register("And", since: 7) { try logicalKernel(BitAndKind.self, $0) }
    r.register("Or", since: 7) { try logicalKernel(BitOrKind.self, $0) }
    r.register("Xor", since: 7) { try logicalKernel(BitXorKind.self, $0) }
}
