import PruneIR

/// Converting other floating types to float32 and back, so that the float32 kernels also serve float16, bfloat16 and float64 inputs.
enum FloatBridge {
    /// Element types the bridge converts.
    static func supports(_ dtype: DType) -> Bool {
        dtype == .float || dtype == .double || dtype == .float16 || dtype == .bfloat16
    }

    /// `a` as float32: `a` itself when it already is, else a converted copy from the arena.
    static func toFloat(_ a: NDArray, _ ctx: KernelContext) -> NDArray {
        if a.dtype == .float { return a }
        let out = ctx.allocate(.float, a.shape)
        let d = out.pointer(as: Float.self)
        let n = a.count
        switch a.dtype {
        case .double:
            let s = a.pointer(as: Double.self)
            for i in 0..<n { d[i] = Float(s[i]) }
        case .float16:
            let s = a.pointer(as: Float16.self)
            for i in 0..<n { d[i] = Float(s[i]) }
        case .bfloat16:
            let s = a.pointer(as: UInt16.self)
            for i in 0..<n { d[i] = Float(bitPattern: UInt32(s[i]) << 16) }
        default:
            for i in 0..<n { d[i] = Float(a.element(at: i)) }
        }
        return out
    }

    /// A float32 array converted to `dtype` (a floating type); `a` itself when `dtype` is float.
    static func fromFloat(_ a: NDArray, to dtype: DType, _ ctx: KernelContext) -> NDArray {
        if dtype == .float { return a }
        let out = ctx.allocate(dtype, a.shape)
        let s = a.pointer(as: Float.self)
        let n = a.count
        switch dtype {
        case .double:
            let d = out.pointer(as: Double.self)
            for i in 0..<n { d[i] = Double(s[i]) }
        case .float16:
            let d = out.pointer(as: Float16.self)
            for i in 0..<n { d[i] = Float16(s[i]) }
        case .bfloat16:
            let d = out.pointer(as: UInt16.self)
            for i in 0..<n { d[i] = bfloat16Bits(s[i]) }
        default:
            preconditionFailure("FloatBridge.fromFloat to \(dtype)")
        }
        return out
    }

    /// float32 → bfloat16 bits, rounding to nearest even (NaN stays NaN).
    @inline(__always)
    static func bfloat16Bits(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7FC0 }
        let b = f.bitPattern
        let rounded = b &+ 0x7FFF &+ ((b >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}
