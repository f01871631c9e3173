/// Rules for neural-network ops: convolutions and pooling (strides, pads, dilations, `auto_pad`,
/// `ceil_mode`), `MatMul`/`Gemm`/`Einsum`, normalizations, `Resize`/`Upsample`, and reductions.
extension ShapeInference {
    static func inferNN(_ c: NodeContext) -> [Inferred]? {
        switch c.node.opType.name {
        case "Conv", "ConvInteger", "QLinearConv": return [inferConv(c)]
        case "ConvTranspose": return [inferConvTranspose(c)]
        case "MaxPool", "AveragePool", "LpPool":
            let y = inferPool(c)
            return [y, Inferred(.int64, y.shape)]
        case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
            guard let s = c.shape(0), s.rank >= 2 else { return [Inferred(c.dtype(0), nil)] }
            return [Inferred(c.dtype(0), Shape(Array(s.dims.prefix(2)) + Array(repeating: Dim.known(1), count: s.rank - 2)))]
        case "MaxRoiPool", "RoiAlign": return nil
        case "MatMul", "MatMulInteger", "QLinearMatMul": return [inferMatMul(c)]
        case "Gemm": return [inferGemm(c)]
        case "Einsum": return [inferEinsum(c)]
        case "BatchNormalization": return inferBatchNorm(c)
        case "LayerNormalization", "SimplifiedLayerNormalization": return inferLayerNorm(c)
        case "Resize", "Upsample": return [inferResize(c)]
        case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
            "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare":
            return [inferReduce(c)]
        case "ArgMax", "ArgMin": return [inferArgReduce(c)]
        case "TopK": return inferTopK(c)
        default: return nil
        }
    }

    // MARK: Convolution and pooling

    /// Spatial output size of a sliding window: `floor((in + pads - dk) / s) + 1` (ceil in ceil
    /// mode, where a last window that starts in the right padding is dropped), or `ceil(in / s)`
    /// for `SAME_*`. Symbols survive a 1x1 window with stride 1 and no padding.
    static func windowOutput(
        _ input: Dim, kernel: Int, stride s: Int, dilation d: Int, padBegin: Int, padEnd: Int,
        autoPad: String, ceilMode: Bool
    ) -> Dim {
        let limit = Int(Int32.max)
        guard s > 0, d > 0, kernel > 0, s <= limit, d <= limit, kernel <= limit, abs(padBegin) <= limit, abs(padEnd) <= limit
        else { return .unknown }
        let dk = (kernel - 1) * d + 1
        switch autoPad {
        case "SAME_UPPER", "SAME_LOWER":
            if s == 1 { return input }
            guard case .known(let n) = input, let o = DimMath.ceilDiv(n, s) else { return .unknown }
            return .known(o)
        case "VALID":
            if dk == 1 && s == 1 { return input }
            guard case .known(let n) = input, let o = DimMath.ceilDiv(n - dk + 1, s) else { return .unknown }
            return .known(max(o, 0))
        default:
            if dk == 1 && s == 1 && padBegin + padEnd == 0 { return input }
            guard case .known(let n) = input, n <= 1 << 40 else { return .unknown }
            let span = n + padBegin + padEnd - dk
            guard span >= 0 else { return .known(0) }
            guard var o = (ceilMode ? DimMath.ceilDiv(span, s) : DimMath.floorDiv(span, s)) else { return .unknown }
            o += 1
            if ceilMode && (o - 1) * s >= n + padBegin { o -= 1 }
            return .known(o)
        }
    }

    /// Kernel, strides, dilations and pads of a conv/pool node over `spatial` axes.
    /// The spatial output dims of a sliding window (Conv, pooling) over `x`'s axes 2...
    private static func windowOutputs(
        _ c: NodeContext, _ x: Shape, _ a: (kernel: [Int], strides: [Int], dilations: [Int], pads: [Int]), ceilMode: Bool
    ) -> [Dim] {
        let autoPad = c.attrString("auto_pad") ?? "NOTSET"
        let spatial = x.rank - 2
        return (0 ..< spatial).map { i in
            windowOutput(
                x.dims[2 + i], kernel: a.kernel[i], stride: a.strides[i], dilation: a.dilations[i],
                padBegin: a.pads[i], padEnd: a.pads[i + spatial], autoPad: autoPad, ceilMode: ceilMode)
        }
    }

    private static func windowAttributes(_ c: NodeContext, spatial: Int, kernel: [Int]?) -> (kernel: [Int], strides: [Int], dilations: [Int], pads: [Int])? {
        guard let k = c.attrInts("kernel_shape") ?? kernel, k.count == spatial else { return nil }
        let strides = c.attrInts("strides") ?? Array(repeating: 1, count: spatial)
        let dilations = c.attrInts("dilations") ?? Array(repeating: 1, count: spatial)
        let pads = c.attrInts("pads") ?? Array(repeating: 0, count: 2 * spatial)
        guard strides.count == spatial, dilations.count == spatial, pads.count == 2 * spatial else { return nil }
        // Out-of-range numbers are a malformed model; refusing them keeps the arithmetic exact.
        let limit = Int(Int32.max)
        for v in k + strides + dilations + pads where v > limit || v < -limit { return nil }
        return (k, strides, dilations, pads)
    }

    static func inferConv(_ c: NodeContext) -> Inferred {
        let isQLinear = c.node.opType.name == "QLinearConv"
        let isInteger = c.node.opType.name == "ConvInteger"
        let wIndex = isQLinear ? 3 : 1
        let dtype: DType? = isInteger ? .int32 : (isQLinear ? c.dtype(7) : c.dtype(0))
        guard let x = c.shape(0), x.rank >= 3 else { return Inferred(dtype, nil) }
        let spatial = x.rank - 2
        let w = c.shape(wIndex)
        let wKernel = w.flatMap { $0.rank == x.rank ? Array($0.dims.dropFirst(2)).compactMap(\.value) : nil }
        let outChannels: Dim = w.map { $0.rank == x.rank ? $0.dims[0] : .unknown } ?? .unknown
        guard let a = windowAttributes(c, spatial: spatial, kernel: wKernel?.count == spatial ? wKernel : nil) else {
            return Inferred(dtype, Shape([x.dims[0], outChannels] + Array(repeating: Dim.unknown, count: spatial)))
        }
        return Inferred(dtype, Shape([x.dims[0], outChannels] + windowOutputs(c, x, a, ceilMode: false)))
    }

    static func inferConvTranspose(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let x = c.shape(0), x.rank >= 3 else { return Inferred(dtype, nil) }
        let spatial = x.rank - 2
        let group = c.attrInt("group") ?? 1
        let w = c.shape(1)
        var outChannels = Dim.unknown
        if let w, w.rank == x.rank { outChannels = DimMath.multiply(w.dims[1], .known(group)) }
        let wKernel = w.flatMap { $0.rank == x.rank ? Array($0.dims.dropFirst(2)).compactMap(\.value) : nil }
        var dims = [x.dims[0], outChannels]
        if let outputShape = c.attrInts("output_shape"), outputShape.count >= spatial {
            dims += outputShape.suffix(spatial).map { Dim.known($0) }
            return Inferred(dtype, Shape(dims))
        }
        guard let a = windowAttributes(c, spatial: spatial, kernel: wKernel?.count == spatial ? wKernel : nil) else {
            return Inferred(dtype, Shape(dims + Array(repeating: Dim.unknown, count: spatial)))
        }
        let outputPadding = c.attrInts("output_padding") ?? Array(repeating: 0, count: spatial)
        let autoPad = c.attrString("auto_pad") ?? "NOTSET"
        for i in 0 ..< spatial {
            guard case .known(let n) = x.dims[2 + i] else {
                dims.append(.unknown)
                continue
            }
            let s = a.strides[i]
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                dims.append(.known(n &* s))
            default:
                let pads = autoPad == "VALID" ? 0 : a.pads[i] + a.pads[i + spatial]
                let op = i < outputPadding.count ? max(-Int(Int32.max), min(outputPadding[i], Int(Int32.max))) : 0
                let o = s &* (n - 1) &+ op &+ ((a.kernel[i] - 1) &* a.dilations[i] &+ 1) &- pads
                dims.append(o >= 0 ? .known(o) : .unknown)
            }
        }
        return Inferred(dtype, Shape(dims))
    }

    static func inferPool(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let x = c.shape(0), x.rank >= 3 else { return Inferred(dtype, nil) }
        let spatial = x.rank - 2
        guard let a = windowAttributes(c, spatial: spatial, kernel: nil) else {
            return Inferred(dtype, Shape(Array(x.dims.prefix(2)) + Array(repeating: Dim.unknown, count: spatial)))
        }
        let ceilMode = (c.attrInt("ceil_mode") ?? 0) != 0
        return Inferred(dtype, Shape(Array(x.dims.prefix(2)) + windowOutputs(c, x, a, ceilMode: ceilMode)))
    }

    // MARK: Matrix products

    static func inferMatMul(_ c: NodeContext) -> Inferred {
        let name = c.node.opType.name
        let bIndex = name == "QLinearMatMul" ? 3 : 1
        let dtype: DType? = name == "MatMulInteger" ? .int32 : (name == "QLinearMatMul" ? c.dtype(7) : c.dtype(0))
        guard let a = c.shape(0), let b = c.shape(bIndex), a.rank >= 1, b.rank >= 1 else { return Inferred(dtype, nil) }
        let ad = a.rank == 1 ? [Dim.known(1)] + a.dims : a.dims
        let bd = b.rank == 1 ? b.dims + [Dim.known(1)] : b.dims
        guard let batch = DimMath.broadcast([Shape(Array(ad.dropLast(2))), Shape(Array(bd.dropLast(2)))]) else {
            return Inferred(dtype, nil)
        }
        var out = batch.dims
        if a.rank > 1 { out.append(ad[ad.count - 2]) }
        if b.rank > 1 { out.append(bd[bd.count - 1]) }
        return Inferred(dtype, Shape(out))
    }

    static func inferGemm(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        let transA = (c.attrInt("transA") ?? 0) != 0
        let transB = (c.attrInt("transB") ?? 0) != 0
        let m: Dim = c.shape(0).map { $0.rank == 2 ? $0.dims[transA ? 1 : 0] : .unknown } ?? .unknown
        let n: Dim = c.shape(1).map { $0.rank == 2 ? $0.dims[transB ? 0 : 1] : .unknown } ?? .unknown
        return Inferred(dtype, Shape([m, n]))
    }

    static func inferEinsum(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let eq = c.attrString("equation"), let parsed = EinsumEquation(eq) else { return Inferred(dtype, nil) }
        let shapes = c.node.inputs.indices.map { c.shape($0) }
        return Inferred(dtype, parsed.outputShape(shapes))
    }

    // MARK: Normalizations

    static func inferBatchNorm(_ c: NodeContext) -> [Inferred] {
        let y = Inferred(c.dtype(0), c.shape(0))
        let channels: Shape? = c.shape(1) ?? c.shape(0).flatMap { $0.rank >= 2 ? Shape([$0.dims[1]]) : nil }
        let stat = Inferred(c.dtype(3) ?? c.dtype(0), channels)
        return [y, stat, stat, stat, stat]
    }

    /// `LayerNormalization` and its relatives: `Y` like `X`; `Mean`/`InvStdDev` keep the dims
    /// before `axis` and have 1s after, in the `stash_type` element type (float by default).
    static func inferLayerNorm(_ c: NodeContext) -> [Inferred] {
        let y = Inferred(c.dtype(0), c.shape(0))
        let stashType = c.attrInt("stash_type").flatMap { DType(onnx: Int32(clamping: $0)) } ?? .float
        var stat = Inferred(stashType, nil)
        if let s = c.shape(0), let axis = DimMath.axis(c.attrInt("axis") ?? -1, rank: s.rank) {
            stat.shape = Shape(Array(s.dims[..<axis]) + Array(repeating: Dim.known(1), count: s.rank - axis))
        }
        switch c.node.opType.name {
        case "SimplifiedLayerNormalization": return [y, stat]
        case "SkipSimplifiedLayerNormalization": return [y, stat, stat, y]
        case "SkipLayerNormalization": return [y, stat, stat, y]
        default: return [y, stat, stat]
        }
    }

    // MARK: Resize

    static func inferResize(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let x = c.shape(0) else { return Inferred(dtype, nil) }
        let r = x.rank
        let unknown = Inferred(dtype, Shape(Array(repeating: Dim.unknown, count: r)))
        let isUpsample = c.node.opType.name == "Upsample"
        // Scales: Upsample's attribute (opset 7) or input 1; Resize's input 1 (opset 10) or 2.
        var scales: [Double]?
        var sizes: [Dim]?
        if isUpsample {
            scales = c.attrFloats("scales").map { $0.map(Double.init) } ?? c.floats(1)
        } else if c.opset < 11 && c.node.inputs.count == 2 {
            scales = c.floats(1)
        } else {
            if let s = c.floats(2), !s.isEmpty { scales = s }
            if c.hasInput(3) {
                if let k = c.known(3), k.rank == 1 { sizes = k.elements.map(\.asDim) } else if scales == nil { return unknown }
            }
        }
        let axes = c.attrInts("axes").flatMap { DimMath.axes($0, rank: r) } ?? Array(0 ..< r)
        var dims = x.dims
        if let sizes, sizes.count == axes.count {
            let policy = c.attrString("keep_aspect_ratio_policy") ?? "stretch"
            if policy == "stretch" {
                for (i, a) in axes.enumerated() { dims[a] = sizes[i] }
            } else {
                // One scale for all the axes: the smallest (not_larger) or largest (not_smaller).
                var scale: Double?
                for (i, a) in axes.enumerated() {
                    guard let s = sizes[i].value, let n = x.dims[a].value, n > 0 else { return unknown }
                    let f = Double(s) / Double(n)
                    scale = scale.map { policy == "not_larger" ? min($0, f) : max($0, f) } ?? f
                }
                for a in axes {
                    guard let scale, let n = x.dims[a].value else { return unknown }
                    let v = (scale * Double(n)).rounded()
                    guard v.isFinite, v >= 0, v < 1e15 else { return unknown }
                    dims[a] = .known(Int(v))
                }
            }
            return Inferred(dtype, Shape(dims))
        }
        guard let scales, scales.count == axes.count else { return unknown }
        for (i, a) in axes.enumerated() {
            let s = scales[i]
            if s == 1 { continue }
            guard case .known(let n) = dims[a] else {
                dims[a] = .unknown
                continue
            }
            // onnxruntime multiplies in float and truncates.
            let v = Double(Float(s) * Float(n))
            guard v.isFinite, v >= 0, v < 1e15 else { return unknown }
            dims[a] = .known(Int(v.rounded(.down)))
        }
        return Inferred(dtype, Shape(dims))
    }

    // MARK: Reductions

    static func inferReduce(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        let keepDims = (c.attrInt("keepdims") ?? 1) != 0
        guard let s = c.shape(0) else { return Inferred(dtype, nil) }
        var axes: [Int]?
        if c.hasAttr("axes") {
            axes = c.attrInts("axes")
        } else if c.hasInput(1) {
            axes = c.ints(1)
            if axes == nil {
                return Inferred(dtype, keepDims ? Shape(Array(repeating: Dim.unknown, count: s.rank)) : nil)
            }
        } else {
            axes = []
        }
        guard let raw = axes else { return Inferred(dtype, nil) }
        var reduced: [Int]
        if raw.isEmpty {
            if (c.attrInt("noop_with_empty_axes") ?? 0) != 0 { return Inferred(dtype, s) }
            reduced = Array(0 ..< s.rank)
        } else {
            guard let a = DimMath.axes(raw, rank: s.rank) else { return Inferred(dtype, nil) }
            reduced = a
        }
        let reducedSet = Set(reduced)
        var dims: [Dim] = []
        for (i, d) in s.dims.enumerated() {
            if reducedSet.contains(i) {
                if keepDims { dims.append(.known(1)) }
            } else {
                dims.append(d)
            }
        }
        return Inferred(dtype, Shape(dims))
    }

    static func inferArgReduce(_ c: NodeContext) -> Inferred {
        guard let s = c.shape(0), let axis = DimMath.axis(c.attrInt("axis") ?? 0, rank: s.rank) else { return Inferred(.int64, nil) }
        var dims = s.dims
        if (c.attrInt("keepdims") ?? 1) != 0 { dims[axis] = .known(1) } else { dims.remove(at: axis) }
        return Inferred(.int64, Shape(dims))
    }

    static func inferTopK(_ c: NodeContext) -> [Inferred] {
        guard var s = c.shape(0), let axis = DimMath.axis(c.attrInt("axis") ?? -1, rank: s.rank) else {
            return [Inferred(c.dtype(0), nil), Inferred(.int64, nil)]
        }
        let k = c.attrInt("k") ?? c.scalarInt(1)
        s.dims[axis] = k.flatMap { $0 >= 0 ? .known($0) : nil } ?? .unknown
        return [Inferred(c.dtype(0), s), Inferred(.int64, s)]
    }
}

// MARK: - Einsum

/// A parsed `Einsum` equation (`bhqd,bhkd->bhqk`, with `...` for broadcast dims).
struct EinsumEquation {
    /// One term: its letters, and where `...` stands among them (index into `letters`), if present.
    struct Term {
        var letters: [Character]
        var ellipsisAt: Int?
    }

    var inputs: [Term]
    /// The output term; implicit equations get the alphabetical list of letters used once.
    var output: Term

    init?(_ equation: String) {
        let eq = equation.filter { !$0.isWhitespace }
        let sides = eq.components(separatedBy: "->")
        guard sides.count == 1 || sides.count == 2 else { return nil }
        var terms: [Term] = []
        for t in sides[0].components(separatedBy: ",") {
            guard let term = EinsumEquation.parseTerm(t) else { return nil }
            terms.append(term)
        }
        inputs = terms
        if sides.count == 2 {
            guard let out = EinsumEquation.parseTerm(sides[1]) else { return nil }
            output = out
        } else {
            var counts: [Character: Int] = [:]
            for t in terms { for l in t.letters { counts[l, default: 0] += 1 } }
            let once = counts.filter { $0.value == 1 }.map(\.key).sorted()
            let hasEllipsis = terms.contains { $0.ellipsisAt != nil }
            output = Term(letters: once, ellipsisAt: hasEllipsis ? 0 : nil)
        }
    }

    private static func parseTerm(_ s: String) -> Term? {
        var letters: [Character] = []
        var ellipsis: Int?
        var rest = Substring(s)
        while let ch = rest.first {
            if rest.hasPrefix("...") {
                guard ellipsis == nil else { return nil }
                ellipsis = letters.count
                rest = rest.dropFirst(3)
            } else {
                guard ch.isLetter else { return nil }
                letters.append(ch)
                rest = rest.dropFirst()
            }
        }
        return Term(letters: letters, ellipsisAt: ellipsis)
    }

    /// The size of every letter, and the broadcast dims `...` stands for, from the input shapes.
    func bindings(_ shapes: [Shape?]) -> (letters: [Character: Dim], ellipsis: [Dim]?)? {
        guard shapes.count == inputs.count else { return nil }
        var sizes: [Character: Dim] = [:]
        var ellipsis: Shape? = Shape([Dim]())
        for (term, shape) in zip(inputs, shapes) {
            guard let shape else {
                if term.ellipsisAt != nil { ellipsis = nil }
                continue
            }
            let ellipsisRank = shape.rank - term.letters.count
            guard ellipsisRank >= 0, term.ellipsisAt != nil || ellipsisRank == 0 else { return nil }
            var dims = shape.dims
            if let at = term.ellipsisAt {
                let e = Array(dims[at ..< at + ellipsisRank])
                dims.removeSubrange(at ..< at + ellipsisRank)
                ellipsis = ellipsis.flatMap { DimMath.broadcast([$0, Shape(e)]) }
            }
            for (l, d) in zip(term.letters, dims) {
                sizes[l] = sizes[l].map { DimMath.broadcast($0, d) } ?? d
            }
        }
        return (sizes, ellipsis?.dims)
    }

    /// The output shape, or `nil` when a rank is unknown or the shapes do not fit the equation.
    func outputShape(_ shapes: [Shape?]) -> Shape? {
        guard let b = bindings(shapes) else { return nil }
        var dims: [Dim] = output.letters.map { b.letters[$0] ?? .unknown }
        if let at = output.ellipsisAt {
            guard let e = b.ellipsis, at <= dims.count else { return nil }
            dims.insert(contentsOf: e, at: at)
        }
        return Shape(dims)
    }
}
