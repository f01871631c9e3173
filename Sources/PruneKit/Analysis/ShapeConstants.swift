import PruneIR

/// The shape arithmetic that names channel counts: `Reshape` targets (stored, or assembled by a
/// `Concat` of `Shape → Gather` pieces and constants, as the torch exporters write them) and
/// `Slice` bounds. The analysis asks whether a count can be changed; mask folding changes it.
enum ShapeConstants {
    /// Where element `axis` of a Reshape's (or Expand's) target comes from.
    enum TargetElement {
        /// A Reshape's `-1` or an Expand's `1`: follows the input by itself.
        case inferred
        /// A number stored in a constant: `owner` reads it as input `input`; `index` is its position.
        case stored(owner: Node, input: Int, index: Int)
        /// Computed at run time as `dim(source, axis) * times / over` (see ``ShapeSource``), or a
        /// Reshape's `0`, which copies the input's dim: it follows that tensor, nothing to rewrite.
        case follows(Value, axis: Int, times: Int, over: Int)
        /// Computed at run time in a way the analysis does not follow.
        case computed
    }

    static func targetElement(_ node: Node, axis: Int, constants: KnownIntegers) -> TargetElement {
        guard node.inputs.count > 1, let target = node.inputs[1] else { return .computed }
        let isReshape = node.opType.name == "Reshape"
        let allowZero = ((try? node.attribute("allowzero", as: Int.self)) ?? nil) ?? 0
        func stored(_ e: Int, owner: Node, input: Int, index: Int) -> TargetElement {
            if isReshape ? e == -1 : e == 1 { return .inferred }
            if isReshape && e == 0 && allowZero == 0, let x = node.inputs[0] { return .follows(x, axis: axis, times: 1, over: 1) }
            return .stored(owner: owner, input: input, index: index)
        }
        func traced(_ v: Value, _ i: Int) -> TargetElement {
            switch ShapeSource.trace(v, element: i, constants: constants) {
            case .number(let e):
                if isReshape ? e == -1 : e == 1 { return .inferred }
                if isReshape && e == 0 && allowZero == 0, let x = node.inputs[0] { return .follows(x, axis: axis, times: 1, over: 1) }
                return .computed
            case .dim(let src, let a, let t, let o): return .follows(src, axis: a, times: t, over: o)
            case .unknown: return .computed
            }
        }
        if let t = target.constantValue, let v = try? t.int64s() {
            guard axis < v.count else { return .computed }
            return stored(Int(v[axis]), owner: node, input: 1, index: axis)
        }
        if let p = target.producer, p.opType == .concat {
            var offset = 0
            for (i, part) in p.inputs.enumerated() {
                guard let part, let n = part.type?.shape?.dims.first?.value ?? part.constantValue?.elementCount else { return .computed }
                if axis < offset + n {
                    if let c = part.constantValue, let v = try? c.int64s() {
                        return stored(Int(v[axis - offset]), owner: p, input: i, index: axis - offset)
                    }
                    return traced(part, axis - offset)
                }
                offset += n
            }
            return .computed
        }
        return traced(target, axis)
    }

    /// Whether the size of output axis `axis` of `reshape` can change (its target names it as `-1`,
    /// as a stored number, or as the size of a tensor that shrinks with it).
    static func reshapeTargetIsEditable(_ reshape: Node, axis: Int, constants: KnownIntegers) -> Bool {
        if case .computed = targetElement(reshape, axis: axis, constants: constants) { return false }
        return true
    }

    /// Makes output axis `axis` of `reshape` `size` long, editing a copy of the constant that
    /// names it (shared constants and `Concat`s are copied, so other reshapes keep theirs).
    static func setReshapeTarget(_ reshape: Node, axis: Int, to size: Int, constants: KnownIntegers, in graph: Graph, names: NameScope) throws {
        switch targetElement(reshape, axis: axis, constants: constants) {
        case .inferred, .follows: return
        case .computed:
            throw MaskFoldError.shapeNotEditable(reshape.displayName, axis: axis)
        case .stored(let owner, let input, let index):
            guard let old = owner.inputs[input], let t = old.constantValue else { return }
            var v = try t.int64s()
            v[index] = Int64(size)
            let fresh = graph.addInitializer(Tensor(int64s: v, shape: t.shape), name: names.fresh(old.name))
            if owner === reshape {
                owner.setInput(fresh, at: input)
            } else if owner.outputs[0].uses.count == 1 {
                owner.setInput(fresh, at: input)
            } else {
                // The Concat also feeds other reshapes: give this one its own copy.
                var inputs = owner.inputs
                inputs[input] = fresh
                let copy = Node(owner.opType, name: names.fresh(owner.name.isEmpty ? "concat" : owner.name), inputs: inputs,
                                outputs: [names.fresh(owner.outputs[0].name)], attributes: owner.attributes.map { ($0.name, $0.value) })
                copy.outputs[0].type = owner.outputs[0].type
                try graph.insert(copy, before: reshape)
                reshape.setInput(copy.outputs[0], at: 1)
            }
        }
    }
}

/// The starts, ends, axes and steps of a `Slice` (inputs from opset 10, attributes before).
struct SliceParameters {
    var starts: [Int]
    var ends: [Int]
    var axes: [Int]
    var steps: [Int]

    init?(_ node: Node, rank: Int, opset: Int, constants: KnownIntegers) {
        func input(_ i: Int) -> [Int]? {
            guard i < node.inputs.count, let v = node.inputs[i] else { return nil }
            return constants.ints(of: v)
        }
        if opset < 10 {
            guard let s = (try? node.attribute("starts", as: [Int].self)) ?? nil,
                let e = (try? node.attribute("ends", as: [Int].self)) ?? nil
            else { return nil }
            starts = s
            ends = e
            axes = ((try? node.attribute("axes", as: [Int].self)) ?? nil) ?? Array(0 ..< s.count)
            steps = Array(repeating: 1, count: s.count)
        } else {
            guard let s = input(1), let e = input(2) else { return nil }
            starts = s
            ends = e
            if node.inputs.count > 3, node.inputs[3] != nil {
                guard let a = input(3) else { return nil }
                axes = a
            } else {
                axes = Array(0 ..< s.count)
            }
            if node.inputs.count > 4, node.inputs[4] != nil {
                guard let st = input(4) else { return nil }
                steps = st
            } else {
                steps = Array(repeating: 1, count: s.count)
            }
        }
        guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else { return nil }
        axes = axes.map { $0 < 0 ? $0 + rank : $0 }
    }

    /// A forward slice's bounds clamped to `0...size`, as ONNX defines them.
    static func clamp(_ start: Int, _ end: Int, size: Int) -> (Int, Int) {
        func c(_ x: Int) -> Int { x < 0 ? max(0, x + size) : min(x, size) }
        return (c(start), c(end))
    }
}
