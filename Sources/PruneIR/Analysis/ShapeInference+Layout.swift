/// Rules for ops that move, select or describe data without arithmetic: `Reshape`, `Transpose`,
/// `Concat`, `Split`, `Slice`, the gathers, `Squeeze`/`Unsqueeze` (attribute form before opset 13,
/// input form after), `Flatten`, `Expand`, `Tile`, `Pad`, and the shape-producing ops `Shape`,
/// `Size`, `ConstantOfShape`, `Range`, `Constant`.
extension ShapeInference {
    static func inferLayout(_ c: NodeContext) -> [Inferred]? {
        switch c.node.opType.name {
        case "Reshape": return [inferReshape(c)]
        case "Transpose": return [inferTranspose(c)]
        case "Concat": return [inferConcat(c)]
        case "Split": return inferSplit(c)
        case "Slice": return [inferSlice(c)]
        case "Gather": return [inferGather(c)]
        case "GatherElements": return [Inferred(c.dtype(0), c.shape(1))]
        case "GatherND": return [inferGatherND(c)]
        case "Squeeze": return [inferSqueeze(c)]
        case "Unsqueeze": return [inferUnsqueeze(c)]
        case "Flatten": return [inferFlatten(c)]
        case "Expand": return [inferExpand(c)]
        case "Tile": return [inferTile(c)]
        case "Pad": return [inferPad(c)]
        case "Shape":
            guard let r = c.rank(0) else { return [Inferred(.int64, nil)] }
            let (lo, hi) = shapeRange(c, rank: r)
            return [Inferred(.int64, Shape([hi - lo]))]
        case "Size": return [Inferred(.int64, Shape([Int]()))]
        case "ConstantOfShape": return [inferConstantOfShape(c)]
        case "Range": return [inferRange(c)]
        case "Constant": return [inferConstant(c)]
        case "DepthToSpace", "SpaceToDepth": return [inferDepthSpace(c)]
        case "OneHot": return [inferOneHot(c)]
        case "NonZero":
            return [Inferred(.int64, Shape([c.rank(0).map(Dim.known) ?? .unknown, .unknown]))]
        case "Compress":
            guard let axis = c.attrInt("axis") else { return [Inferred(c.dtype(0), Shape([Dim.unknown]))] }
            guard var s = c.shape(0), let a = DimMath.axis(axis, rank: s.rank) else { return [Inferred(c.dtype(0), nil)] }
            s.dims[a] = .unknown
            return [Inferred(c.dtype(0), s)]
        default:
            return nil
        }
    }

    // MARK: Reshape family

    static func inferReshape(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        let target: [Dim]?
        if c.hasAttr("shape") && !c.hasInput(1) {
            target = c.attrInts("shape")?.map { Dim.known($0) }
        } else {
            target = c.shapeValue(1)
        }
        guard let t = target else { return Inferred(dtype, nil) }
        let allowZero = (c.attrInt("allowzero") ?? 0) != 0
        let input = c.shape(0)
        var out: [Dim] = []
        var inferAt: Int?
        for (i, d) in t.enumerated() {
            switch d {
            case .known(0) where !allowZero:
                if let input, i < input.rank { out.append(input.dims[i]) } else { out.append(.unknown) }
            case .known(-1) where inferAt == nil:
                inferAt = i
                out.append(.unknown)
            case .known(let v) where v < 0:
                out.append(.unknown)
            default:
                out.append(d)
            }
        }
        if let m = inferAt, let input {
            var total = SymbolicProduct()
            for d in input.dims { total.multiply(d) }
            var rest = SymbolicProduct()
            for (i, d) in out.enumerated() where i != m { rest.multiply(d) }
            out[m] = total.divided(by: rest)
        }
        return Inferred(dtype, Shape(out))
    }

    static func inferTranspose(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        let s = c.shape(0)
        guard let perm = c.attrInts("perm") ?? s.map({ Array((0 ..< $0.rank).reversed()) }) else { return Inferred(dtype, nil) }
        guard let s else { return Inferred(dtype, Shape(Array(repeating: Dim.unknown, count: perm.count))) }
        guard perm.count == s.rank, perm.allSatisfy({ $0 >= 0 && $0 < s.rank }) else { return Inferred(dtype, nil) }
        return Inferred(dtype, Shape(perm.map { s.dims[$0] }))
    }

    static func inferConcat(_ c: NodeContext) -> Inferred {
        let dtype = c.node.inputs.indices.lazy.compactMap { c.dtype($0) }.first
        let shapes = c.node.inputs.indices.map { c.shape($0) }
        guard let rank = shapes.lazy.compactMap({ $0?.rank }).first, rank > 0,
            let axis = DimMath.axis(c.attrInt("axis") ?? 0, rank: rank)
        else { return Inferred(dtype, nil) }
        var dims = Array(repeating: Dim.unknown, count: rank)
        var sum = 0
        var sumSymbol: Dim?
        var sumKnown = true
        for s in shapes {
            guard let s, s.rank == rank else {
                sumKnown = false
                continue
            }
            for i in 0 ..< rank where i != axis { dims[i] = TypeMerge.mergeDims(existing: dims[i], inferred: s.dims[i]) }
            switch s.dims[axis] {
            case .known(let v): sum = sum &+ v
            case .symbol where sumSymbol == nil: sumSymbol = s.dims[axis]
            default: sumKnown = false
            }
        }
        if sumKnown { dims[axis] = sumSymbol.map { sum == 0 ? $0 : .unknown } ?? .known(sum) }
        return Inferred(dtype, Shape(dims))
    }

    static func inferSplit(_ c: NodeContext) -> [Inferred] {
        let dtype = c.dtype(0)
        let n = c.outputCount
        guard let s = c.shape(0), let axis = DimMath.axis(c.attrInt("axis") ?? 0, rank: s.rank) else {
            return c.all(Inferred(dtype, nil))
        }
        var sizes: [Dim]
        if c.hasInput(1) {
            sizes = c.ints(1).map { $0.map(Dim.known) } ?? Array(repeating: .unknown, count: n)
        } else if let split = c.attrInts("split") {
            sizes = split.map(Dim.known)
        } else {
            let parts = c.attrInt("num_outputs") ?? n
            if case .known(let d) = s.dims[axis], parts > 0, let chunk = DimMath.ceilDiv(d, parts) {
                // Equal chunks of ceil(d / parts); the last one takes the remainder.
                sizes = (0 ..< n).map { i in
                    let (used, o) = chunk.multipliedReportingOverflow(by: i)
                    return o ? .known(0) : .known(max(0, min(chunk, d - used)))
                }
            } else {
                sizes = Array(repeating: .unknown, count: n)
            }
        }
        if sizes.count < n { sizes += Array(repeating: Dim.unknown, count: n - sizes.count) }
        return (0 ..< n).map { i in
            var o = s
            o.dims[axis] = sizes[i]
            return Inferred(dtype, o)
        }
    }

    // MARK: Slice

    /// The parts of a `Slice`: attributes before opset 10, inputs after. Starts and ends are
    /// elements (numbers or symbols); entries are `nil` where the value is not known.
    private static func sliceParts(_ c: NodeContext) -> (axes: [Int]?, starts: [KnownElement]?, ends: [KnownElement]?, steps: [Int]?) {
        if c.hasAttr("starts") || c.hasAttr("ends") || (c.opset < 10 && !c.hasInput(1)) {
            let starts = c.attrInts("starts")
            let axes = c.attrInts("axes") ?? starts.map { Array(0 ..< $0.count) }
            return (
                axes, starts.map { $0.map(KnownElement.int) }, c.attrInts("ends").map { $0.map(KnownElement.int) },
                starts.map { Array(repeating: 1, count: $0.count) }
            )
        }
        let starts = c.known(1).flatMap { $0.rank <= 1 ? $0.elements : nil }
        let ends = c.known(2).flatMap { $0.rank <= 1 ? $0.elements : nil }
        let count = starts?.count ?? ends?.count ?? c.shape(1)?.dims.first?.value
        let axes: [Int]? = c.hasInput(3) ? c.ints(3) : count.map { Array(0 ..< $0) }
        let steps: [Int]? = c.hasInput(4) ? c.ints(4) : count.map { Array(repeating: 1, count: $0) }
        return (axes, starts, ends, steps)
    }

    /// `(axis, start, end, step)` per sliced axis, when every part is a known number.
    static func slicePlan(_ c: NodeContext, rank: Int) -> [(Int, Int, Int, Int)]? {
        let p = sliceParts(c)
        guard let rawAxes = p.axes, let starts = p.starts?.compactMap(\.intValue), let ends = p.ends?.compactMap(\.intValue),
            let steps = p.steps, let axes = DimMath.axes(rawAxes, rank: rank),
            starts.count == p.starts?.count, ends.count == p.ends?.count,
            axes.count == starts.count, starts.count == ends.count, ends.count == steps.count,
            !steps.contains(0)
        else { return nil }
        return (0 ..< axes.count).map { (axes[$0], starts[$0], ends[$0], steps[$0]) }
    }

    static func inferSlice(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard var s = c.shape(0) else { return Inferred(dtype, nil) }
        let p = sliceParts(c)
        guard let raw = p.axes, let axes = DimMath.axes(raw, rank: s.rank) else {
            return Inferred(dtype, Shape(Array(repeating: Dim.unknown, count: s.rank)))
        }
        guard let starts = p.starts, let ends = p.ends, let steps = p.steps,
            starts.count == axes.count, ends.count == axes.count, steps.count == axes.count
        else {
            for a in axes { s.dims[a] = .unknown }
            return Inferred(dtype, s)
        }
        let big = Int(Int32.max)
        for (i, axis) in axes.enumerated() {
            let step = steps[i]
            guard step != 0, step != Int.min else {
                s.dims[axis] = .unknown
                continue
            }
            switch (s.dims[axis], starts[i], ends[i]) {
            case (.known(let d), .int(let start), .int(let end)):
                guard let (lo, hi) = clampSlice(dim: d, start: start, end: end, step: step),
                    let n = DimMath.ceilDiv(step > 0 ? hi - lo : lo - hi, abs(step))
                else {
                    s.dims[axis] = .unknown
                    continue
                }
                s.dims[axis] = .known(max(n, 0))
            case (_, .int(0), .symbol(let name)) where step == 1:
                // x[:n] for a symbolic n (a sequence length cut from a longer buffer) has n rows;
                // a model run with n larger than the buffer would fail anyway.
                s.dims[axis] = .symbol(name)
            case (.symbol, .int(let start), .int(let end)):
                // A symbolic dim survives only a full-range slice.
                let whole = (step == 1 && start == 0 && end >= big) || (step == -1 && start == -1 && end <= -big)
                if !whole { s.dims[axis] = .unknown }
            default:
                s.dims[axis] = .unknown
            }
        }
        return Inferred(dtype, s)
    }

    // MARK: Gathers

    static func inferGather(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let data = c.shape(0), let indices = c.shape(1),
            let axis = DimMath.axis(c.attrInt("axis") ?? 0, rank: data.rank)
        else { return Inferred(dtype, nil) }
        return Inferred(dtype, Shape(Array(data.dims[..<axis]) + indices.dims + Array(data.dims[(axis + 1)...])))
    }

    static func inferGatherND(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        let b = c.attrInt("batch_dims") ?? 0
        guard let data = c.shape(0), let indices = c.shape(1), indices.rank >= 1,
            case .known(let k) = indices.dims[indices.rank - 1], b >= 0, k >= 0, b <= data.rank, k <= data.rank - b
        else { return Inferred(dtype, nil) }
        return Inferred(dtype, Shape(Array(indices.dims.dropLast()) + Array(data.dims[(b + k)...])))
    }

    // MARK: Squeeze, Unsqueeze, Flatten

    /// Axes given as an attribute (before opset 13) or as input 1 (from opset 13). `.some(nil)`
    /// means they are given but not known; `nil` means none are given.
    private static func axesOperand(_ c: NodeContext, input: Int = 1) -> [Int]?? {
        if c.hasAttr("axes") { return .some(c.attrInts("axes")) }
        if c.hasInput(input) { return .some(c.ints(input)) }
        return .none
    }

    static func inferSqueeze(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let s = c.shape(0) else { return Inferred(dtype, nil) }
        switch axesOperand(c) {
        case .some(.some(let raw)) where !raw.isEmpty:
            guard let axes = DimMath.axes(raw, rank: s.rank) else { return Inferred(dtype, nil) }
            let drop = Set(axes)
            return Inferred(dtype, Shape(s.dims.enumerated().filter { !drop.contains($0.offset) }.map(\.element)))
        case .some(.none):
            return Inferred(dtype, nil)
        default:
            // No axes: every dim of size 1 goes; unknowable when a dim is not a number.
            guard let dims = s.staticDims else { return Inferred(dtype, nil) }
            return Inferred(dtype, Shape(dims.filter { $0 != 1 }))
        }
    }

    static func inferUnsqueeze(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let s = c.shape(0), case .some(.some(let raw)) = axesOperand(c) else { return Inferred(dtype, nil) }
        let rank = s.rank + raw.count
        guard let axes = DimMath.axes(raw, rank: rank).map(Set.init) else { return Inferred(dtype, nil) }
        var out: [Dim] = []
        var next = s.dims.makeIterator()
        for i in 0 ..< rank {
            if axes.contains(i) {
                out.append(.known(1))
            } else if let d = next.next() {
                out.append(d)
            }
        }
        return Inferred(dtype, Shape(out))
    }

    static func inferFlatten(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let s = c.shape(0) else { return Inferred(dtype, Shape([Dim.unknown, .unknown])) }
        var axis = c.attrInt("axis") ?? 1
        if axis < 0 { axis += s.rank }
        guard axis >= 0, axis <= s.rank else { return Inferred(dtype, nil) }
        return Inferred(dtype, Shape([DimMath.product(s.dims[..<axis]), DimMath.product(s.dims[axis...])]))
    }

    // MARK: Expand, Tile, Pad

    static func inferExpand(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let target = c.shapeValue(1) else { return Inferred(dtype, nil) }
        let t = Shape(target.map { if case .known(let v) = $0, v < 0 { return .unknown } else { return $0 } })
        guard let input = c.shape(0) else { return Inferred(dtype, Shape(t.dims.map { $0 == .known(1) ? .unknown : $0 })) }
        return Inferred(dtype, DimMath.broadcast([input, t]))
    }

    static func inferTile(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let s = c.shape(0) else { return Inferred(dtype, nil) }
        guard let reps = c.shapeValue(1), reps.count == s.rank else {
            return Inferred(dtype, Shape(Array(repeating: Dim.unknown, count: s.rank)))
        }
        return Inferred(dtype, Shape(zip(s.dims, reps).map { DimMath.multiply($0, $1) }))
    }

    static func inferPad(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard var s = c.shape(0) else { return Inferred(dtype, nil) }
        let pads: [Int]? = c.hasAttr("pads") ? c.attrInts("pads") : c.ints(1)
        var axes: [Int]? = Array(0 ..< s.rank)
        if c.hasInput(3) { axes = c.ints(3).flatMap { DimMath.axes($0, rank: s.rank) } }
        guard let pads, let axes, pads.count == 2 * axes.count else {
            return Inferred(dtype, Shape(Array(repeating: Dim.unknown, count: s.rank)))
        }
        for (i, a) in axes.enumerated() {
            s.dims[a] = DimMath.add(s.dims[a], pads[i] &+ pads[i + axes.count])
        }
        return Inferred(dtype, s)
    }

    // MARK: Shape-producing ops

    static func inferConstantOfShape(_ c: NodeContext) -> Inferred {
        let dtype = c.attrTensor("value")?.dtype ?? .float
        guard let dims = c.shapeValue(0) else { return Inferred(dtype, nil) }
        return Inferred(dtype, Shape(dims.map { if case .known(let v) = $0, v < 0 { return .unknown } else { return $0 } }))
    }

    static func inferRange(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0) ?? c.dtype(1) ?? c.dtype(2)
        if let s = c.known(0)?.elements.first?.doubleValue, let l = c.known(1)?.elements.first?.doubleValue,
            let d = c.known(2)?.elements.first?.doubleValue, let n = rangeCount(start: s, limit: l, delta: d)
        {
            return Inferred(dtype, Shape([n]))
        }
        // Range(0, n, 1) over a symbolic n has n elements.
        if c.known(0)?.elements.first == .int(0), c.known(2)?.elements.first == .int(1),
            case .symbol(let name)? = c.known(1)?.elements.first
        {
            return Inferred(dtype, Shape([Dim.symbol(name)]))
        }
        return Inferred(dtype, Shape([Dim.unknown]))
    }

    static func inferConstant(_ c: NodeContext) -> Inferred {
        if let v = c.node.outputs.first, let t = v.constantValue { return Inferred(t.dtype, Shape(t.shape)) }
        if c.hasAttr("value_string") { return Inferred(.string, Shape([Int]())) }
        if let s = (try? c.node.attribute("value_strings", as: [String].self)) ?? nil { return Inferred(.string, Shape([s.count])) }
        return .none
    }

    static func inferDepthSpace(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(0)
        guard let s = c.shape(0), s.rank == 4, let b = c.attrInt("blocksize"), b > 0, b <= 1 << 20 else { return Inferred(dtype, nil) }
        let bb = Dim.known(b * b)
        if c.node.opType.name == "DepthToSpace" {
            let ch = s.dims[1].value.map { $0 % (b * b) == 0 ? Dim.known($0 / (b * b)) : .unknown } ?? .unknown
            return Inferred(dtype, Shape([s.dims[0], ch, DimMath.multiply(s.dims[2], .known(b)), DimMath.multiply(s.dims[3], .known(b))]))
        }
        func down(_ d: Dim) -> Dim { d.value.map { $0 % b == 0 ? .known($0 / b) : .unknown } ?? .unknown }
        return Inferred(dtype, Shape([s.dims[0], DimMath.multiply(s.dims[1], bb), down(s.dims[2]), down(s.dims[3])]))
    }

    static func inferOneHot(_ c: NodeContext) -> Inferred {
        let dtype = c.dtype(2)
        guard let s = c.shape(0) else { return Inferred(dtype, nil) }
        let depth: Dim = c.known(1)?.elements.first?.intValue.flatMap { $0 >= 0 ? .known($0) : nil } ?? .unknown
        guard let axis = DimMath.axis(c.attrInt("axis") ?? -1, rank: s.rank + 1) else { return Inferred(dtype, nil) }
        var dims = s.dims
        dims.insert(depth, at: axis)
        return Inferred(dtype, Shape(dims))
    }
}
