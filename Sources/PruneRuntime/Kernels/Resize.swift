import Foundation
import PruneIR

// Resize (opsets 10, 11, 13, 18, 19) and Upsample (7, 9): nearest (all nearest_mode values),
// linear and cubic interpolation, every coordinate_transformation_mode, scales or sizes, axes,
// keep_aspect_ratio_policy, antialias, exclude_outside, cubic_coeff_a, extrapolation_value.
//
// Interpolation is separable, so the output is computed one axis at a time (as the ONNX
// reference does): per axis a table gives every output position its input taps and weights.
// Nearest is a gather (any element type, exact); linear and cubic compute in float64 for
// float64 and in float32 otherwise. The VJP (end of file) scatters through the same tables.
func registerResizeKernels(_ r: inout KernelRegistry) {
    r.register("Upsample", since: 7) { info in try ResizeKernel(info, legacy: true, attributeScales: true) }
    r.register("Upsample", since: 9) { info in try ResizeKernel(info, legacy: true, attributeScales: false) }
    r.register("Resize", since: 10) { info in try ResizeKernel(info, legacy: true, attributeScales: false) }
    for since in [11, 13, 18, 19] {
        r.register("Resize", since: since) { info in try ResizeKernel(info, legacy: false, attributeScales: false) }
    }
}

/// A Resize or Upsample node with its attributes parsed.
final class ResizeKernel: Kernel {
    enum Mode { case nearest, linear, cubic }

    let mode: Mode
    let coordinateMode: String
    let nearestMode: String
    let cubicA: Double
    let excludeOutside: Bool
    let extrapolationValue: Double
    let antialias: Bool
    let axesAttribute: [Int]?
    let aspectPolicy: String
    /// Upsample and Resize-10: inputs (X, scales), asymmetric coordinates, "simple" nearest.
    let legacy: Bool
    /// Upsample-7's `scales` attribute.
    let scalesAttribute: [Float]?

    init(_ info: KernelBuildInfo, legacy: Bool, attributeScales: Bool) throws {
        self.legacy = legacy
        let modeName = try info.attribute("mode", default: "nearest")
        switch modeName {
        case "nearest": mode = .nearest
        case "linear", "bilinear": mode = .linear
        case "cubic", "bicubic": mode = .cubic
        default: throw KernelError.unsupported("mode \(modeName)")
        }
        coordinateMode = legacy ? "asymmetric" : try info.attribute("coordinate_transformation_mode", default: "half_pixel")
        nearestMode = legacy ? "simple" : try info.attribute("nearest_mode", default: "round_prefer_floor")
        cubicA = Double(try info.attribute("cubic_coeff_a", default: Float(-0.75)))
        excludeOutside = try info.attribute("exclude_outside", default: 0) != 0
        extrapolationValue = Double(try info.attribute("extrapolation_value", default: Float(0)))
        antialias = try info.attribute("antialias", default: 0) != 0
        axesAttribute = try info.attribute("axes", as: [Int].self)
        aspectPolicy = try info.attribute("keep_aspect_ratio_policy", default: "stretch")
        scalesAttribute = attributeScales ? try info.attribute("scales", as: [Float].self) : nil
        let coordinateModes = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                               "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"]
        guard coordinateModes.contains(coordinateMode) else { throw KernelError.unsupported("coordinate_transformation_mode \(coordinateMode)") }
        guard ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple"].contains(nearestMode) else {
            throw KernelError.unsupported("nearest_mode \(nearestMode)")
        }
        guard ["stretch", "not_larger", "not_smaller"].contains(aspectPolicy) else {
            throw KernelError.unsupported("keep_aspect_ratio_policy \(aspectPolicy)")
        }
        if mode == .nearest && antialias { throw KernelError("antialias is not defined for nearest mode") }
        if let t = info.inputType(0), mode != .nearest, !FloatBridge.supports(t) {
            throw KernelError.unsupported("\(modeName) Resize on \(t)")
        }
        if let t = info.inputType(0), !NDArray.supports(t) { throw KernelError.unsupported("Resize on \(t)") }
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let (outShape, plans) = try plan(x.shape, inputs)
        if plans.isEmpty { return [x] }
        if outShape.contains(0) { return [ctx.zeros(x.dtype, outShape)] }
        if x.count == 0 { throw KernelError("cannot resize an empty input to \(outShape)") }
        if mode == .nearest { return [try gatherAll(x, plans, ctx)] }
        if x.dtype == .double { return [interpolateAll(Double.self, x, plans, ctx)] }
        let y = interpolateAll(Float.self, FloatBridge.toFloat(x, ctx), plans, ctx)
        return [FloatBridge.fromFloat(y, to: x.dtype, ctx)]
    }

    /// Linear or cubic interpolation of `x` along each planned axis in turn.
    private func interpolateAll<T: BinaryFloatingPoint & TensorElement>(_: T.Type, _ x: NDArray, _ plans: [(axis: Int, table: AxisTable)],
                                                                      _ ctx: KernelContext) -> NDArray {
        var cur = x
        let fill = T(extrapolationValue)
        for (a, t) in plans {
            var shape = cur.shape
            shape[a] = t.output
            let next = ctx.allocate(T.dtype, shape)
            let outer = cur.shape.prefix(a).reduce(1, *)
            let inner = cur.shape.suffix(from: a + 1).reduce(1, *)
            ResizeKernel.interpolate(cur.pointer(as: T.self), next.pointer(as: T.self), outer: outer,
                                     input: cur.shape[a], inner: inner, table: t, fill: fill, ctx)
            cur = next
        }
        return cur
    }

    /// The output shape of resizing an array shaped `shape` with the node's inputs (scales or
    /// sizes, roi), and one table per axis that changes.
    func plan(_ shape: [Int], _ inputs: [NDArray?]) throws -> (outShape: [Int], plans: [(axis: Int, table: AxisTable)]) {
        let r = shape.count
        var scalesIn: [Double]? = nil
        var sizesIn: [Int]? = nil
        var roiIn: [Double]? = nil
        if legacy {
            if let s = scalesAttribute { scalesIn = s.map(Double.init) } else { scalesIn = try inputs.required(1).doubles() }
        } else {
            if let a = inputs.optional(1), a.count > 0 { roiIn = a.doubles() }
            if let a = inputs.optional(2), a.count > 0 { scalesIn = a.doubles() }
            if let a = inputs.optional(3), a.count > 0 { sizesIn = a.ints() }
        }
        let axes = try (axesAttribute ?? Array(0..<r)).map { a -> Int in
            let n = a < 0 ? a + r : a
            guard n >= 0, n < r else { throw KernelError("axis \(a) out of range for rank \(r)") }
            return n
        }
        guard Set(axes).count == axes.count else { throw KernelError("axes \(axes) repeat an axis") }
        var scale = [Double](repeating: 1, count: r)
        var outShape = shape
        if let sizes = sizesIn {
            guard scalesIn == nil else { throw KernelError("Resize takes scales or sizes, not both") }
            guard sizes.count == axes.count else { throw KernelError("sizes \(sizes) do not fit axes \(axes)") }
            for (i, a) in axes.enumerated() {
                outShape[a] = sizes[i]
                scale[a] = Double(sizes[i]) / Double(shape[a])
            }
            if aspectPolicy != "stretch" {
                let chosen = axes.map { scale[$0] }
                let s = aspectPolicy == "not_larger" ? chosen.min()! : chosen.max()!
                for a in axes {
                    scale[a] = s
                    outShape[a] = Int(s * Double(shape[a]) + 0.5)
                }
            }
        } else if let scales = scalesIn {
            guard scales.count == axes.count else { throw KernelError("scales \(scales) do not fit axes \(axes)") }
            for (i, a) in axes.enumerated() {
                guard scales[i] > 0, scales[i] * Double(shape[a]) < 1e15 else {
                    throw KernelError("scales must be positive and finite, got \(scales)")
                }
                scale[a] = scales[i]
                outShape[a] = Int((scales[i] * Double(shape[a])).rounded(.down))
            }
        } else {
            throw KernelError("Resize needs scales or sizes")
        }
        var roi = [Double](repeating: 0, count: r) + [Double](repeating: 1, count: r)
        if let given = roiIn, coordinateMode == "tf_crop_and_resize" {
            if given.count == 2 * axes.count {
                for (i, a) in axes.enumerated() {
                    roi[a] = given[i]
                    roi[r + a] = given[axes.count + i]
                }
            } else if given.count == 2 * r {
                roi = given
            } else {
                throw KernelError("roi has \(given.count) values, expected \(2 * axes.count)")
            }
        }
        // Sizes and scales come from the model: the output must be a shape that fits in memory.
        _ = try NDArray.checkedByteCount(.float, outShape)
        // One table per axis that changes.
        var plans: [(axis: Int, table: AxisTable)] = []
        for a in axes {
            let identity = abs(scale[a] - 1) < 1e-9 && outShape[a] == shape[a]
                && abs(roi[a]) < 1e-9 && abs(roi[r + a] - 1) < 1e-9
            if identity { continue }
            plans.append((a, try table(input: shape[a], output: outShape[a], scale: scale[a], roi: (roi[a], roi[r + a]))))
        }
        return (outShape, plans)
    }

    /// Taps of one axis: output position `o` reads input `index[o*taps + t]` with `weight[...]`,
    /// or is `extrapolationValue` when `outside[o]`.
    struct AxisTable {
        var output: Int
        var taps: Int
        var index: [Int]
        var weight: [Float]
        var outside: [Bool]
    }

    private func table(input: Int, output: Int, scale: Double, roi: (Double, Double)) throws -> AxisTable {
        let inW = Double(input)
        let outW = scale * inW
        var taps = 0
        var index: [Int] = []
        var weight: [Float] = []
        var outside = [Bool](repeating: false, count: output)
        index.reserveCapacity(output * 4)
        weight.reserveCapacity(output * 4)
        for o in 0..<output {
            let y = Double(o)
            var xo: Double
            switch coordinateMode {
            case "align_corners": xo = outW == 1 ? 0 : y * (inW - 1) / (outW - 1)
            case "asymmetric": xo = y / scale
            case "tf_half_pixel_for_nn": xo = (y + 0.5) / scale
            case "pytorch_half_pixel": xo = outW == 1 ? -0.5 : (y + 0.5) / scale - 0.5
            case "half_pixel_symmetric":
                let adjustment = Double(output) / outW
                let offset = inW / 2 * (1 - adjustment)
                xo = offset + (y + 0.5) / scale - 0.5
            case "tf_crop_and_resize":
                xo = outW == 1 ? (roi.1 - roi.0) * (inW - 1) / 2 : y * (roi.1 - roi.0) * (inW - 1) / (outW - 1)
                xo += roi.0 * (inW - 1)
                if xo < 0 || xo > inW - 1 { outside[o] = true }
            default: xo = (y + 0.5) / scale - 0.5
            }
            // The taps start left of xo; an exact integer xo counts as ratio 1 of the pixel before.
            var base = xo.rounded(.down)
            var ratio = xo - base
            if ratio == 0 {
                ratio = 1
                base -= 1
            }
            var coeffs = coefficients(ratio: ratio, scale: scale)
            let n = coeffs.count
            if taps == 0 { taps = n } else if taps != n { throw KernelError("internal: resize tap count changed") }
            let first = Int(base) - n / 2 + 1
            if excludeOutside {
                for t in 0..<n where first + t < 0 || first + t >= input { coeffs[t] = 0 }
                var sum = coeffs.reduce(0, +)
                if sum == 0 { sum = 1 }
                for t in 0..<n { coeffs[t] /= sum }
            }
            for t in 0..<n {
                index.append(min(max(first + t, 0), input - 1))
                weight.append(Float(coeffs[t]))
            }
        }
        return AxisTable(output: output, taps: max(taps, 1), index: index, weight: weight, outside: outside)
    }

    private func coefficients(ratio: Double, scale: Double) -> [Double] {
        switch mode {
        case .nearest:
            if ratio == 1 { return [0, 1] }
            let up: Bool
            switch nearestMode {
            case "round_prefer_ceil": up = ratio >= 0.5
            case "floor": up = false
            case "ceil": up = true
            case "simple": up = scale < 1  // ONNX Runtime's legacy mode: ceil when downsampling
            default: up = ratio > 0.5
            }
            return up ? [0, 1] : [1, 0]
        case .linear:
            if !antialias { return [1 - ratio, ratio] }
            let s = min(scale, 1)
            let start = Int((-1 / s).rounded(.down)) + 1
            let footprint = 2 - 2 * start
            var c = (0..<footprint).map { j in min(1, max(0, 1 - abs((Double(start + j) - ratio) * s))) }
            let sum = c.reduce(0, +)
            if sum != 0 { c = c.map { $0 / sum } }
            return c
        case .cubic:
            let a = cubicA
            if !antialias {
                let r1 = ratio + 1, q = 1 - ratio, q1 = q + 1
                return [
                    ((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a,
                    ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1,
                    ((a + 2) * q - (a + 3)) * q * q + 1,
                    ((a * q1 - 5 * a) * q1 + 8 * a) * q1 - 4 * a,
                ]
            }
            let s = min(scale, 1)
            let iStart = Int((-2 / s).rounded(.down)) + 1
            let iEnd = 2 - iStart
            var c = (iStart..<iEnd).map { i -> Double in
                let x = abs(s * (Double(i) - ratio))
                if x <= 1 { return (a + 2) * x * x * x - (a + 3) * x * x + 1 }
                if x < 2 { return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a }
                return 0
            }
            let sum = c.reduce(0, +)
            if sum != 0 { c = c.map { $0 / sum } }
            return c
        }
    }

    /// One axis of linear/cubic interpolation: [outer, input, inner] → [outer, output, inner].
    static func interpolate<T: BinaryFloatingPoint>(_ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>, outer: Int, input: Int,
                                                    inner: Int, table t: AxisTable, fill: T, _ ctx: KernelContext) {
        let n = t.taps, out = t.output
        t.index.withUnsafeBufferPointer { idx in
        t.weight.withUnsafeBufferPointer { wt in
        t.outside.withUnsafeBufferPointer { ext in
            ctx.parallelFor(outer * out, grain: max(1, 16384 / max(1, inner * n))) { range in
                for j in range {
                    let oi = j / out, o = j % out
                    let s = src + oi * input * inner
                    let d = dst + j * inner
                    if ext[o] {
                        d.update(repeating: fill, count: inner)
                        continue
                    }
                    let ti = o * n
                    if inner == 1 {
                        var acc: T = 0
                        for k in 0..<n { acc += T(wt[ti + k]) * s[idx[ti + k]] }
                        d.pointee = acc
                    } else {
                        let w0 = T(wt[ti])
                        let r0 = s + idx[ti] * inner
                        for e in 0..<inner { d[e] = w0 * r0[e] }
                        for k in 1..<max(n, 1) {
                            let wk = T(wt[ti + k])
                            if wk == 0 { continue }
                            let rk = s + idx[ti + k] * inner
                            for e in 0..<inner { d[e] += wk * rk[e] }
                        }
                    }
                }
            }
        }}}
    }

    /// Nearest resizing: a gather along each axis, on the elements' bit patterns.
    private func gatherAll(_ x: NDArray, _ plans: [(axis: Int, table: AxisTable)], _ ctx: KernelContext) throws -> NDArray {
        let fill = try ResizeKernel.bits(of: extrapolationValue, as: x.dtype)
        var cur = x
        for (a, t) in plans {
            // The chosen tap is the one with weight 1.
            var pick = [Int](repeating: 0, count: t.output)
            for o in 0..<t.output {
                var best = 0
                for k in 0..<t.taps where t.weight[o * t.taps + k] > t.weight[o * t.taps + best] { best = k }
                pick[o] = t.outside[o] ? -1 : t.index[o * t.taps + best]
            }
            var shape = cur.shape
            shape[a] = t.output
            let next = ctx.allocate(cur.dtype, shape)
            let outer = cur.shape.prefix(a).reduce(1, *)
            let inner = cur.shape.suffix(from: a + 1).reduce(1, *)
            let input = cur.shape[a]
            switch x.dtype == .bool ? 1 : x.dtype.bitWidth / 8 {
            case 1: ResizeKernel.gather(cur.pointer(as: UInt8.self), next.pointer(as: UInt8.self), outer, input, inner, pick, UInt8(truncatingIfNeeded: fill), ctx)
            case 2: ResizeKernel.gather(cur.pointer(as: UInt16.self), next.pointer(as: UInt16.self), outer, input, inner, pick, UInt16(truncatingIfNeeded: fill), ctx)
            case 4: ResizeKernel.gather(cur.pointer(as: UInt32.self), next.pointer(as: UInt32.self), outer, input, inner, pick, UInt32(truncatingIfNeeded: fill), ctx)
            case 8: ResizeKernel.gather(cur.pointer(as: UInt64.self), next.pointer(as: UInt64.self), outer, input, inner, pick, fill, ctx)
            default: throw KernelError("Resize does not support \(x.dtype)")
            }
            cur = next
        }
        return cur
    }

    private static func gather<T>(_ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>, _ outer: Int, _ input: Int, _ inner: Int,
                                  _ pick: [Int], _ fill: T, _ ctx: KernelContext) {
        let out = pick.count
        pick.withUnsafeBufferPointer { p in
            ctx.parallelFor(outer, grain: max(1, 16384 / max(1, out * inner))) { range in
                for oi in range {
                    let s = src + oi * input * inner
                    var d = dst + oi * out * inner
                    if inner == 1 {
                        for o in 0..<out { d[o] = p[o] < 0 ? fill : s[p[o]] }
                        continue
                    }
                    for o in 0..<out {
                        if p[o] < 0 { d.update(repeating: fill, count: inner) } else { d.update(from: s + p[o] * inner, count: inner) }
                        d += inner
                    }
                }
            }
        }
    }

    /// `value` encoded as an element of `dtype`, as raw bits.
    private static func bits(of value: Double, as dtype: DType) throws -> UInt64 {
        switch dtype {
        case .float: return UInt64(Float(value).bitPattern)
        case .double: return value.bitPattern
        case .float16: return UInt64(Float16(value).bitPattern)
        case .bfloat16: return UInt64(FloatBridge.bfloat16Bits(Float(value)))
        case .bool: return value != 0 ? 1 : 0
        case .int8, .int16, .int32, .int64: return UInt64(bitPattern: Int64(value))
        default: return UInt64(max(0, value))
        }
    }
}

// MARK: Gradients

/// VJP of Resize and Upsample with respect to X, every mode (nearest, linear, cubic, antialias)
/// and coordinate transformation: the transpose of each axis's table, applied in reverse axis
/// order (dX[index] += weight · dY; nearest takes its one chosen tap; extrapolated outputs of
/// tf_crop_and_resize give nothing). roi, scales and sizes get no gradient.
func registerResizeGradients(_ r: inout GradientRegistry) {
    for (op, legacy) in [("Upsample", true), ("Resize", false)] {
        r.register([op]) { c, gs in
            let info = KernelBuildInfo(node: c.node, opset: c.opset)
            let kernel = try ResizeKernel(info, legacy: legacy || c.opset < 11, attributeScales: legacy && c.opset < 9)
            let x = try c.input(0), y = try c.output(0)
            let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
            var grads = [NDArray?](repeating: nil, count: c.inputs.count)
            guard c.needs(0) else { return grads }
            switch x.dtype {
            case .float: grads[0] = try kernel.backward(Float.self, x, g, c.inputs, c.kernel)
            case .double: grads[0] = try kernel.backward(Double.self, x, g, c.inputs, c.kernel)
            default: throw KernelError("\(op) gradient on \(x.dtype) (float32 and float64 only)")
            }
            return grads
        }
    }
}

extension ResizeKernel {
    /// The cotangent of X given the output's cotangent `gy`.
    fileprivate func backward<T: BinaryFloatingPoint & TensorElement>(_: T.Type, _ x: NDArray, _ gy: NDArray, _ inputs: [NDArray?],
                                                                      _ ctx: KernelContext) throws -> NDArray {
        let (outShape, plans) = try plan(x.shape, inputs)
        if plans.isEmpty { return gy }
        if x.count == 0 || outShape.contains(0) { return ctx.zeros(T.dtype, x.shape) }
        // The shape before each step of the forward pass.
        var shapes = [x.shape]
        for (a, t) in plans {
            var s = shapes.last!
            s[a] = t.output
            shapes.append(s)
        }
        var cur = gy
        for (k, (a, t)) in plans.enumerated().reversed() {
            let shape = shapes[k]
            let next = ctx.zeros(T.dtype, shape)
            var table = t
            if mode == .nearest {
                // The one tap the gather reads, weight 1.
                var index = [Int](repeating: 0, count: t.output)
                for o in 0..<t.output {
                    var best = 0
                    for j in 0..<t.taps where t.weight[o * t.taps + j] > t.weight[o * t.taps + best] { best = j }
                    index[o] = t.index[o * t.taps + best]
                }
                table = AxisTable(output: t.output, taps: 1, index: index, weight: [Float](repeating: 1, count: t.output), outside: t.outside)
            }
            ResizeKernel.scatter(cur.pointer(as: T.self), next.pointer(as: T.self), outer: shape.prefix(a).reduce(1, *),
                                 input: shape[a], inner: shape.suffix(from: a + 1).reduce(1, *), table: table, ctx)
            cur = next
        }
        return cur
    }

    /// The transpose of ``interpolate(_:_:outer:input:inner:table:fill:_:)``: [outer, output,
    /// inner] → [outer, input, inner] added into `dst` (zeros).
    fileprivate static func scatter<T: BinaryFloatingPoint>(_ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>, outer: Int,
                                                            input: Int, inner: Int, table t: AxisTable, _ ctx: KernelContext) {
        let n = t.taps, out = t.output
        t.index.withUnsafeBufferPointer { idx in
        t.weight.withUnsafeBufferPointer { wt in
        t.outside.withUnsafeBufferPointer { ext in
            ctx.parallelFor(outer, grain: max(1, 16384 / max(1, out * inner * n))) { range in
                for oi in range {
                    let d = dst + oi * input * inner
                    for o in 0..<out where !ext[o] {
                        let s = src + (oi * out + o) * inner
                        for k in 0..<n {
                            let wk = T(wt[o * n + k])
                            if wk == 0 { continue }
                            let r = d + idx[o * n + k] * inner
                            if inner == 1 {
                                r.pointee += wk * s.pointee
                            } else {
                                for e in 0..<inner { r[e] += wk * s[e] }
                            }
                        }
                    }
                }
            }
        }}}
    }
}
