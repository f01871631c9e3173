import Foundation
import PruneIR

/// Converting other floating types to float32 and back, so that the float32 kernels also serve float16, bfloat16 and float64 inputs.
enum FloatBridge {
    /// Elements per parallel chunk of a conversion (a conversion is a few cycles an element).
    static let grain = 1 << 16

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
        case .float16, .bfloat16:
            let s = UnsafePointer(a.pointer(as: UInt16.self))
            let bf = a.dtype == .bfloat16
            ctx.parallelFor(n, grain: FloatBridge.grain) { r in
                VectorKernels.widen(s + r.lowerBound, bfloat16: bf, d + r.lowerBound, count: r.count)
            }
        default:
            for i in 0..<n { d[i] = Float(a.element(at: i)) }
        }
        return out
    }

    /// `a` as float32 in storage of its own (not the arena), for copies that outlive a run.
    static func ownedFloat(_ a: NDArray) -> NDArray {
        let out = NDArray(uninitialized: .float, shape: a.shape)
        let d = out.pointer(as: Float.self)
        switch a.dtype {
        case .float16, .bfloat16:
            VectorKernels.widen(a.pointer(as: UInt16.self), bfloat16: a.dtype == .bfloat16, d, count: a.count)
        default:
            for i in 0..<a.count { d[i] = Float(a.element(at: i)) }
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
        case .float16, .bfloat16:
            let d = out.pointer(as: UInt16.self)
            let bf = dtype == .bfloat16
            ctx.parallelFor(n, grain: FloatBridge.grain) { r in
                VectorKernels.narrow(UnsafePointer(s) + r.lowerBound, bfloat16: bf, d + r.lowerBound, count: r.count)
            }
        default:
            preconditionFailure("FloatBridge.fromFloat to \(dtype)")
        }
        return out
    }

    /// Whether `dtype` is float16 or bfloat16: the types whose kernels compute in float32.
    static func isHalf(_ dtype: DType) -> Bool { dtype == .float16 || dtype == .bfloat16 }

    /// float32 → bfloat16 bits, rounding to nearest even (NaN stays NaN).
    @inline(__always)
    static func bfloat16Bits(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7FC0 }
        let b = f.bitPattern
        let rounded = b &+ 0x7FFF &+ ((b >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}

/// Bytes of the copies of constants that plans keep beside the model's own weights (float32
/// copies of float16/bfloat16 weights, packed convolution weights), for the whole process.
///
/// A copy made once per plan saves its work on every later run, but a model whose weights are
/// stored in 16 bits would then hold them twice, in 32 bits: 5 GB beside a 2.5 GB 1B-parameter
/// decoder. Copies are kept until the budget is spent; past it, kernels widen per call into the
/// arena, so memory stays within the weights plus the budget whatever the model's size. The
/// budget is `PRUNEC_CONSTANT_CACHE_MB` (default 512 MB); a plan's copies return to it when the
/// plan is released.
public enum ConstantCopyBudget {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var held = 0
    nonisolated(unsafe) private static var limitOverride: Int?

    /// The budget in bytes.
    public static var limit: Int {
        get {
            lock.lock()
            defer { lock.unlock() }
            if let limitOverride { return limitOverride }
            let mb = ProcessInfo.processInfo.environment["PRUNEC_CONSTANT_CACHE_MB"].flatMap { Int($0) } ?? 512
            return max(0, mb) << 20
        }
        set {
            lock.lock()
            limitOverride = newValue
            lock.unlock()
        }
    }

    /// Bytes held now.
    public static var heldBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return held
    }

    /// Takes `bytes` from the budget; false (nothing taken) when they do not fit.
    static func reserve(_ bytes: Int) -> Bool {
        let cap = limit
        lock.lock()
        defer { lock.unlock() }
        guard held + bytes <= cap else { return false }
        held += bytes
        return true
    }

    /// Gives `bytes` back.
    static func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        lock.lock()
        held -= bytes
        lock.unlock()
    }
}

/// The float32 copy of a kernel's constant float16/bfloat16 input (a weight), made on the first
/// run and reused while later runs pass the same array, so weights are widened once per plan
/// instead of on every call, as long as ``ConstantCopyBudget`` allows; past it the weight is
/// widened per call into the arena. Only inputs the IR marks constant use it: those arrays live
/// as long as the plan, so holding them keeps no arena block from reuse. Another array (an
/// initializer the caller overrides) is widened afresh and replaces the copy; a fed array is
/// recognised by its storage, so a caller that rewrites one in place between runs must feed a
/// new array.
final class WidenedConstant {
    private var source: Storage?
    private var sourceOffset = 0
    private var widened: NDArray?
    private let lock = NSLock()

    deinit { ConstantCopyBudget.release(widened?.byteCount ?? 0) }

    /// `a` as float32: the cached copy when `a` is the array seen before.
    func float(_ a: NDArray, _ ctx: KernelContext) -> NDArray {
        kept(a) ?? FloatBridge.toFloat(a, ctx)
    }

    /// `a` as float32 when a copy is kept (made now if the budget allows); nil when it is not.
    func kept(_ a: NDArray) -> NDArray? {
        if a.dtype == .float { return a }
        lock.lock()
        defer { lock.unlock() }
        if let w = widened, source === a.storage, sourceOffset == a.byteOffset, w.shape == a.shape { return w }
        ConstantCopyBudget.release(widened?.byteCount ?? 0)
        widened = nil
        source = nil
        guard ConstantCopyBudget.reserve(NDArray.byteCount(.float, a.count)) else { return nil }
        let out = FloatBridge.ownedFloat(a)
        source = a.storage
        sourceOffset = a.byteOffset
        widened = out
        return out
    }
}
