import PruneIR

/// Where one element of a shape vector (a `Reshape` or `Expand` target) comes from, traced
/// through the arithmetic that exporters write around `Shape`: `Shape → Gather → Unsqueeze →
/// Concat`, products with constants (`num_key_value_groups`), `Cast`s (fp16 converters add them),
/// and the `Where(Equal(x, -1), 1, x)` that torch writes for `expand(-1, ...)`.
///
/// An element that is the size of some tensor's axis follows that tensor: when the analysis prunes
/// the axis, the element shrinks with it at run time and nothing has to be rewritten. That is what
/// lets heads pass the repeat_kv `Expand` + `Reshape` of a grouped-query decoder.
enum ShapeSource: Equatable {
    /// A known number.
    case number(Int)
    /// `dim(value, axis) * times / over`.
    case dim(Value, axis: Int, times: Int, over: Int)
    /// Anything else.
    case unknown

    static func == (a: ShapeSource, b: ShapeSource) -> Bool {
        switch (a, b) {
        case (.number(let x), .number(let y)): return x == y
        case (.dim(let v, let ax, let t, let o), .dim(let w, let bx, let u, let p)): return v === w && ax == bx && t == u && o == p
        case (.unknown, .unknown): return true
        default: return false
        }
    }

    /// Traces element `index` of the integer vector (or scalar) `value`.
    static func trace(_ value: Value, element index: Int, constants: KnownIntegers, depth: Int = 0) -> ShapeSource {
        func known() -> ShapeSource {
            guard let v = constants.ints(of: value) else { return .unknown }
            if v.count == 1 { return .number(v[0]) }
            return index < v.count ? .number(v[index]) : .unknown
        }
        // A computed element that shape inference could evaluate is still traced to its source
        // first: a count that follows a tensor needs no rewriting, a number would.
        if value.constantValue != nil { return known() }
        let traced = structural(value, element: index, constants: constants, depth: depth)
        if case .unknown = traced { return known() }
        return traced
    }

    private static func structural(_ value: Value, element index: Int, constants: KnownIntegers, depth: Int) -> ShapeSource {
        guard depth < 40, let p = value.producer, p.opType.canonicalDomain.isEmpty else { return .unknown }
        func input(_ i: Int) -> Value? { i < p.inputs.count ? p.inputs[i] : nil }
        func next(_ v: Value?, _ i: Int) -> ShapeSource {
            guard let v else { return .unknown }
            return trace(v, element: i, constants: constants, depth: depth + 1)
        }
        let count = vectorLength
        switch p.opType.name {
        case "Shape":
            guard let x = input(0), let rank = x.type?.shape?.rank ?? x.constantValue?.shape.count else { return .unknown }
            var start = ((try? p.attribute("start", as: Int.self)) ?? nil) ?? 0
            if start < 0 { start += rank }
            let axis = start + index
            guard axis >= 0, axis < rank else { return .unknown }
            return .dim(x, axis: axis, times: 1, over: 1)
        case "Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten":
            // Vectors of shape arithmetic keep their element order through these.
            return next(input(0), index)
        case "Concat":
            var offset = 0
            for part in p.inputs {
                guard let part, let n = count(part) else { return .unknown }
                if index < offset + n { return next(part, index - offset) }
                offset += n
            }
            return .unknown
        case "Gather":
            guard let idx = input(1), let i = constants.ints(of: idx), !i.isEmpty else { return .unknown }
            let j = i.count == 1 ? i[0] : (index < i.count ? i[index] : -1)
            guard j >= 0 else { return .unknown }
            return next(input(0), j)
        case "Slice":
            guard let data = input(0), let starts = input(1).flatMap(constants.ints(of:)), starts.count == 1 else { return .unknown }
            let step = input(4).flatMap(constants.ints(of:))?.first ?? 1
            var start = starts[0]
            if start < 0, let n = count(data) { start = max(0, start + n) }
            guard step > 0, start >= 0 else { return .unknown }
            return next(data, start + index * step)
        case "Mul", "Div":
            guard let a = input(0), let b = input(1) else { return .unknown }
            var x = next(a, count(a) == 1 ? 0 : index), y = next(b, count(b) == 1 ? 0 : index)
            // dim * dim (GPT-2's merge_heads: heads * head size): a statically known dim is a
            // number; the other is the one that can change.
            func staticSize(_ t: ShapeSource) -> Int? {
                if case .dim(let v, let ax, let t, let o) = t, t == 1, o == 1 { return v.type?.shape?.dims[ax].value }
                return nil
            }
            if case .dim = x, case .dim = y {
                if let n = staticSize(y), staticSize(x) == nil {
                    y = .number(n)
                } else if let n = staticSize(x), staticSize(y) == nil {
                    x = .number(n)
                }
            }
            switch (p.opType.name, x, y) {
            case ("Mul", .number(let m), .dim(let v, let ax, let t, let o)), ("Mul", .dim(let v, let ax, let t, let o), .number(let m)):
                return .dim(v, axis: ax, times: t * m, over: o)
            case ("Div", .dim(let v, let ax, let t, let o), .number(let m)) where m > 0:
                return .dim(v, axis: ax, times: t, over: o * m)
            default:
                return .unknown
            }
        case "Where":
            // torch's expand(-1): Where(Equal(x, -1s), ones, x) is x, or the ones where x is -1.
            guard let cond = input(0)?.producer, cond.opType.name == "Equal", let x = input(2), cond.inputs.contains(where: { $0 === x })
            else { return .unknown }
            let other = cond.inputs.first { $0 !== x } ?? nil
            guard let other, let minus = constants.ints(of: other), minus.allSatisfy({ $0 == -1 }) else { return .unknown }
            let xs = next(x, index)
            if case .number(-1) = xs { return next(input(1), index) }
            return xs
        default:
            return .unknown
        }
    }

    /// Follows element `index` of `value` back through the ops that only carry shape vectors
    /// (`Cast`, `Unsqueeze`, `Concat`, ...) to the value that computes it, and its index there.
    static func carried(_ value: Value, element index: Int) -> (value: Value, index: Int) {
        var (v, i) = (value, index)
        for _ in 0 ..< 40 {
            guard let p = v.producer, p.opType.canonicalDomain.isEmpty else { break }
            switch p.opType.name {
            case "Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten":
                guard let x = p.inputs.first ?? nil else { return (v, i) }
                v = x
            case "Concat":
                var offset = 0
                var part: (Value, Int)?
                for x in p.inputs {
                    guard let x, let n = vectorLength(x) else { return (v, i) }
                    if i < offset + n {
                        part = (x, i - offset)
                        break
                    }
                    offset += n
                }
                guard let part else { return (v, i) }
                (v, i) = part
            default:
                return (v, i)
            }
        }
        return (v, i)
    }

    /// Elements of a shape vector (a scalar counts 1), when known.
    static func vectorLength(_ v: Value) -> Int? {
        if let t = v.constantValue { return t.elementCount }
        guard let dims = v.type?.shape?.dims else { return nil }
        if dims.isEmpty { return 1 }
        return dims.count == 1 ? dims[0].value : nil
    }

    /// The `Div` by a constant that element `index` of `value` ends in, through the pieces that
    /// carry shape vectors: DeBERTa's `size(0) // num_heads`. Returns the Div node (its input 1 is
    /// the divisor) and what its numerator traces to.
    static func divisor(_ value: Value, element index: Int, constants: KnownIntegers) -> (node: Node, divisor: Int, numerator: ShapeSource)? {
        guard let p = carried(value, element: index).value.producer, p.opType.canonicalDomain.isEmpty, p.opType.name == "Div",
            p.inputs.count == 2, let a = p.inputs[0], let b = p.inputs[1], b.constantValue != nil, let d = constants.ints(of: b), d.count == 1
        else { return nil }
        return (p, d[0], trace(a, element: 0, constants: constants))
    }

    /// The `Mul` by a constant that element `index` of `value` ends in (dynamo's `batch × num_heads`
    /// for a merged batch-and-heads axis): the node, which input is the constant, and its value.
    static func multiplier(_ value: Value, element index: Int, constants: KnownIntegers) -> (node: Node, input: Int, factor: Int)? {
        guard let p = carried(value, element: index).value.producer, p.opType.canonicalDomain.isEmpty, p.opType.name == "Mul" else { return nil }
        for (i, v) in p.inputs.enumerated() {
            guard let v, v.constantValue != nil, let c = constants.ints(of: v), c.count == 1 else { continue }
            return (p, i, c[0])
        }
        return nil
    }
}
