import Foundation
import PruneIR

// Pad: modes constant, reflect, edge and wrap (19). Pads are an attribute before opset 11
// (`paddings` in opset 1), an input from 11; 18 added the `axes` input. Negative pads crop.
func registerPadKernels(_ r: inout KernelRegistry) {
    let attributePad: (String) -> KernelFactory = { padsName in
        { info in
            let mode = try PadMode(info.attribute("mode", default: "constant"))
            guard let pads: [Int] = try info.attribute(padsName) else { throw KernelError("Pad needs '\(padsName)'") }
            let value: Float = try info.attribute("value", default: 0)
            return ClosureKernel { inputs, ctx in
                let x = try inputs.required(0)
                var fill: UInt64 = 0
                try withUnsafeMutableBytes(of: &fill) { try ElementValue.store(Double(value), x.dtype, $0.baseAddress!, 0) }
                return [try pad(x, pads: pads, axes: nil, mode: mode, fill: fill, ctx)]
            }
        }
    }
    r.register("Pad", since: 1, attributePad("paddings"))
    r.register("Pad", since: 2, attributePad("pads"))

    let inputPad: KernelFactory = { info in
        let mode = try PadMode(info.attribute("mode", default: "constant"))
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let pads = try inputs.required(1).ints()
            var fill: UInt64 = 0
            if mode == .constant, let v = inputs.optional(2), v.count > 0 {
                guard v.dtype == x.dtype else { throw KernelError("Pad constant_value is \(v.dtype), data is \(x.dtype)") }
                withUnsafeMutableBytes(of: &fill) { $0.baseAddress!.copyMemory(from: v.rawPointer, byteCount: min(8, elementSize(v.dtype))) }
            }
            return [try pad(x, pads: pads, axes: inputs.optional(3)?.ints(), mode: mode, fill: fill, ctx)]
        }
    }
    r.register("Pad", since: 11, inputPad)
    r.register("Pad", since: 18, inputPad)
    r.register("Pad", since: 19, inputPad)
}

/// How Pad fills the border.
enum PadMode: String {
    case constant, reflect, edge, wrap

    init(_ name: String) throws {
        guard let m = PadMode(rawValue: name) else { throw KernelError.unsupported("Pad mode '\(name)'") }
        self = m
    }
}

/// `x` padded by `pads` (all begins, then all ends, for `axes` or every axis); `fill` holds the
/// constant's bytes.
func pad(_ x: NDArray, pads: [Int], axes: [Int]?, mode: PadMode, fill: UInt64, _ ctx: KernelContext) throws -> NDArray {
    let rank = x.rank
    let axes = try (axes ?? Array(0..<rank)).map { try normalizedAxis($0, rank: rank) }
    guard pads.count == 2 * axes.count else { throw KernelError("Pad: \(pads.count) pads for \(axes.count) axes") }
    var begin = [Int](repeating: 0, count: rank), end = begin
    for (k, a) in axes.enumerated() {
        begin[a] = pads[k]
        end[a] = pads[k + axes.count]
    }
    let outShape = (0..<rank).map { x.shape[$0] + begin[$0] + end[$0] }
    guard outShape.allSatisfy({ $0 >= 0 }) else { throw KernelError("Pad: pads \(pads) crop more than the input \(x.shape)") }
    if begin.allSatisfy({ $0 == 0 }) && end.allSatisfy({ $0 == 0 }) { return x }
    let strides = Broadcast.contiguousStrides(x.shape)
    // Per axis: output coordinate -> source element offset (-1: the constant).
    var tables: [[Int]] = []
    for d in 0..<rank {
        let dim = x.shape[d]
        if mode != .constant && dim == 0 && outShape[d] > 0 {
            throw KernelError("Pad: cannot \(mode.rawValue)-pad an empty axis")
        }
        tables.append((0..<outShape[d]).map { o in
            var i = o - begin[d]
            switch mode {
            case .constant: return i >= 0 && i < dim ? i * strides[d] : -1
            case .edge: i = min(max(i, 0), dim - 1)
            case .wrap: i = ((i % dim) + dim) % dim
            case .reflect:
                if dim == 1 { i = 0; break }
                let period = 2 * (dim - 1)
                i = ((i % period) + period) % period
                if i >= dim { i = period - i }
            }
            return i * strides[d]
        })
    }
    let out = ctx.allocate(x.dtype, outShape)
    var value = fill
    withUnsafeBytes(of: &value) { v in
        Layout.tableGather(src: x.rawPointer, tables: tables, dst: out.rawPointer, shape: outShape,
                           fill: v.baseAddress!, elementSize: elementSize(x.dtype), context: ctx)
    }
    return out
}
