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
    guard let (outShape, tables) = try padTables(x.shape, pads: pads, axes: axes, mode: mode) else { return x }
    let out = try ctx.allocate(x.dtype, checking: outShape)
    var value = fill
    withUnsafeBytes(of: &value) { v in
        Layout.tableGather(src: x.rawPointer, tables: tables, dst: out.rawPointer, shape: outShape,
                           fill: v.baseAddress!, elementSize: elementSize(x.dtype), context: ctx)
    }
    return out
}

/// The output shape of padding an array shaped `shape`, and per output axis the table output
/// coordinate → source element offset (-1: the constant); `nil` when nothing is padded.
func padTables(_ shape: [Int], pads: [Int], axes: [Int]?, mode: PadMode) throws -> (outShape: [Int], tables: [[Int]])? {
    let rank = shape.count
    let axes = try (axes ?? Array(0..<rank)).map { try normalizedAxis($0, rank: rank) }
    guard pads.count == 2 * axes.count else { throw KernelError("Pad: \(pads.count) pads for \(axes.count) axes") }
    var begin = [Int](repeating: 0, count: rank), end = begin
    for (k, a) in axes.enumerated() {
        begin[a] = pads[k]
        end[a] = pads[k + axes.count]
    }
    guard pads.allSatisfy({ abs($0) < 1 << 48 }) else { throw KernelError("Pad: pads \(pads) are too large") }
    let outShape = (0..<rank).map { shape[$0] + begin[$0] + end[$0] }
    guard outShape.allSatisfy({ $0 >= 0 }) else { throw KernelError("Pad: pads \(pads) crop more than the input \(shape)") }
    // The tables below hold one entry per output coordinate: the output must fit before they are built.
    _ = try NDArray.checkedByteCount(.uint8, outShape)
    if begin.allSatisfy({ $0 == 0 }) && end.allSatisfy({ $0 == 0 }) { return nil }
    let strides = Broadcast.contiguousStrides(shape)
    var tables: [[Int]] = []
    for d in 0..<rank {
        let dim = shape[d]
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
    return (outShape, tables)
}

// MARK: Gradients

/// VJP of Pad, every mode: the transpose of the table gather, dX[source(o)] += dY[o] (edge,
/// reflect and wrap add several outputs into one element; cropped elements get zero). The
/// constant (input 2, constant mode) gets the sum of dY over the padding.
func registerPadGradients(_ r: inout GradientRegistry) {
    r.register(["Pad"]) { c, gs in
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let mode = try PadMode(c.attribute("mode", default: "constant"))
        let pads: [Int], axes: [Int]?
        if c.opset < 11 {
            guard let p: [Int] = try c.attribute(c.opset < 2 ? "paddings" : "pads") else { throw KernelError("Pad needs its pads") }
            pads = p
            axes = nil
        } else {
            pads = try c.input(1).ints()
            axes = c.inputs.optional(3)?.ints()
        }
        guard x.dtype == .float || x.dtype == .double else { throw KernelError("Pad gradient on \(x.dtype) (float32 and float64 only)") }
        var grads = [NDArray?](repeating: nil, count: c.inputs.count)
        guard let (outShape, tables) = try padTables(x.shape, pads: pads, axes: axes, mode: mode) else {
            grads[0] = c.needs(0) ? g : nil
            if c.needs(2), let v = c.inputs.optional(2) { grads[2] = c.kernel.zeros(v.dtype, v.shape) }
            return grads
        }
        let dx = c.kernel.zeros(x.dtype, x.shape)
        if x.dtype == .double {
            padScatter(g.pointer(as: Double.self), dx.pointer(as: Double.self), outShape, tables)
        } else {
            padScatter(g.pointer(as: Float.self), dx.pointer(as: Float.self), outShape, tables)
        }
        if c.needs(0) { grads[0] = dx }
        if c.needs(2), mode == .constant, let v = c.inputs.optional(2), v.count == 1 {
            // Σ dY over the padding = Σ dY − Σ dY over the copied elements (= Σ dX).
            var total = 0.0
            for i in 0..<g.count { total += g.element(at: i) }
            for i in 0..<dx.count { total -= dx.element(at: i) }
            grads[2] = x.dtype == .double ? NDArray([total], shape: v.shape) : NDArray([Float(total)], shape: v.shape)
        }
        return grads
    }
}

/// `dx[Σ tables[k][ik]] += g[i0, ..., in]` over the output shape, skipping padding.
private func padScatter<T: BinaryFloatingPoint>(_ g: UnsafeMutablePointer<T>, _ dx: UnsafeMutablePointer<T>, _ shape: [Int], _ tables: [[Int]]) {
    if shape.isEmpty { dx[0] += g[0]; return }
    let total = shape.reduce(1, *)
    guard total > 0 else { return }
    let rank = shape.count
    let inner = shape[rank - 1]
    tables[rank - 1].withUnsafeBufferPointer { innerTable in
        for row in 0..<(total / inner) {
            guard let off = Layout.tableRowOffset(row, tables: tables, shape: shape) else { continue }
            let src = g + row * inner, dst = dx + off
            for i in 0..<inner where innerTable[i] >= 0 { dst[innerTable[i]] += src[i] }
        }
    }
}
