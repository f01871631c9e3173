import Foundation

/// One element of a partially known small tensor.
///
/// Integer elements may stand for a symbolic dimension (the result of `Shape` on a value with
/// symbolic dims, moved around by `Gather`, `Concat`, ...).
enum KnownElement: Hashable {
    case int(Int)
    case float(Double)
    case symbol(String)
    case unknown

    /// The element as a shape-value dim: numbers as they are (also `0` and `-1`), symbols by name.
    var asDim: Dim {
        switch self {
        case .int(let v): return .known(v)
        case .symbol(let s): return .symbol(s)
        case .float(let f):
            if let v = Int(exactly: f) { return .known(v) }
            return .unknown
        case .unknown: return .unknown
        }
    }

    /// The element for a dimension of a shape.
    init(_ d: Dim) {
        switch d {
        case .known(let v): self = .int(v)
        case .symbol(let s): self = .symbol(s)
        case .unknown: self = .unknown
        }
    }

    var intValue: Int? {
        switch self {
        case .int(let v): return v
        case .float(let f): return f.isFinite ? Int(exactly: f.rounded(.towardZero)) : nil
        default: return nil
        }
    }

    var doubleValue: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .float(let f): return f
        default: return nil
        }
    }
}

/// A small tensor whose elements are (partially) known during inference.
struct KnownTensor {
    var dtype: DType
    var shape: [Int]
    var elements: [KnownElement]

    init?(dtype: DType, shape: [Int], elements: [KnownElement]) {
        guard let n = Shape.product(shape), n == elements.count, n <= InferenceState.maxKnownElements else { return nil }
        self.dtype = dtype
        self.shape = shape
        self.elements = elements
    }

    /// Reads a constant tensor (numbers and booleans only, up to the size limit).
    init?(tensor t: Tensor) {
        guard let n = Shape.product(t.shape), n <= InferenceState.maxKnownElements else { return nil }
        let elements: [KnownElement]
        if KnownTensor.isInteger(t.dtype) {
            guard let v = try? t.int64s(), v.count == n else { return nil }
            elements = v.map { .int(Int($0)) }
        } else if [.float, .double, .float16, .bfloat16].contains(t.dtype) {
            guard let v = try? t.floats(), v.count == n else { return nil }
            elements = v.map { .float(Double($0)) }
        } else {
            return nil
        }
        self.init(dtype: t.dtype, shape: t.shape, elements: elements)
    }

    static func isInteger(_ d: DType) -> Bool {
        [.int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64, .bool].contains(d)
    }

    /// A 1-D int64 tensor of shape-value elements.
    static func vector(_ dims: [Dim], dtype: DType = .int64) -> KnownTensor? {
        KnownTensor(dtype: dtype, shape: [dims.count], elements: dims.map(KnownElement.init))
    }

    /// All elements as integers, when every one is a known number.
    var ints: [Int]? {
        var out: [Int] = []
        out.reserveCapacity(elements.count)
        for e in elements {
            guard let v = e.intValue else { return nil }
            out.append(v)
        }
        return out
    }

    /// All elements as doubles, when every one is a known number.
    var doubles: [Double]? {
        var out: [Double] = []
        out.reserveCapacity(elements.count)
        for e in elements {
            guard let v = e.doubleValue else { return nil }
            out.append(v)
        }
        return out
    }

    var rank: Int { shape.count }

    /// Row-major strides of `shape`.
    static func strides(_ shape: [Int]) -> [Int] {
        var s = Array(repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc = acc &* max(shape[i], 1)
        }
        return s
    }

    /// The elements of `self` broadcast to `target` (which must be a valid broadcast of `shape`).
    func broadcast(to target: [Int]) -> [KnownElement]? {
        guard target.count >= shape.count, let n = Shape.product(target), n <= InferenceState.maxKnownElements else { return nil }
        let offset = target.count - shape.count
        for (i, d) in shape.enumerated() where d != 1 && d != target[offset + i] { return nil }
        if shape == target { return elements }
        let srcStrides = KnownTensor.strides(shape)
        var out: [KnownElement] = []
        out.reserveCapacity(n)
        var index = Array(repeating: 0, count: target.count)
        for _ in 0 ..< n {
            var src = 0
            for (i, d) in shape.enumerated() where d != 1 { src += index[offset + i] * srcStrides[i] }
            out.append(elements[src])
            var ax = target.count - 1
            while ax >= 0 {
                index[ax] += 1
                if index[ax] < target[ax] { break }
                index[ax] = 0
                ax -= 1
            }
        }
        return out
    }

    /// The numpy broadcast of two static shapes, or `nil` when they do not broadcast.
    static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let r = max(a.count, b.count)
        var out = Array(repeating: 1, count: r)
        for i in 0 ..< r {
            let x = i < r - a.count ? 1 : a[i - (r - a.count)]
            let y = i < r - b.count ? 1 : b[i - (r - b.count)]
            if x == y || y == 1 { out[i] = x } else if x == 1 { out[i] = y } else { return nil }
        }
        return out
    }
}

// MARK: - Evaluation

extension ShapeInference {
    /// Values of the node's outputs that can be computed from known inputs (`nil` entries for the
    /// others). Only shape-sized work: every result is capped at 4096 elements.
    static func evaluateConstants(_ c: NodeContext) -> [KnownTensor?] {
        guard c.node.opType.canonicalDomain.isEmpty else { return [] }
        switch c.node.opType.name {
        case "Constant":
            guard let v = c.node.outputs.first, let t = v.constantValue else { return [] }
            return [KnownTensor(tensor: t)]
        case "Identity":
            return [c.known(0)]
        case "Shape": return [evalShape(c)]
        case "Size":
            guard let s = c.shape(0) else { return [] }
            let p = DimMath.product(s.dims)
            return [KnownTensor(dtype: .int64, shape: [], elements: [KnownElement(p)])]
        case "Gather": return [evalGather(c)]
        case "Unsqueeze", "Squeeze", "Reshape", "Flatten":
            // The output shape comes from the shape rule; the elements keep their order.
            guard let k = c.known(0), let s = outputShape(c)?.staticDims else { return [] }
            return [KnownTensor(dtype: k.dtype, shape: s, elements: k.elements)]
        case "Concat": return [evalConcat(c)]
        case "Slice": return [evalSlice(c)]
        case "Cast":
            guard let k = c.known(0), let to = c.attrInt("to"), let d = DType(onnx: Int32(clamping: to)) else { return [] }
            return [cast(k, to: d)]
        case "CastLike":
            guard let k = c.known(0), let d = c.dtype(1) else { return [] }
            return [cast(k, to: d)]
        case "Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Pow",
            "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
            return [evalBinary(c)]
        case "Neg", "Abs", "Not", "Floor", "Ceil", "Round", "Sqrt", "Reciprocal", "Sign":
            return [evalUnary(c)]
        case "Where": return [evalWhere(c)]
        case "ConstantOfShape": return [evalConstantOfShape(c)]
        case "Range": return [evalRange(c)]
        case "Expand":
            guard let k = c.known(0), let s = outputShape(c)?.staticDims, let e = k.broadcast(to: s) else { return [] }
            return [KnownTensor(dtype: k.dtype, shape: s, elements: e)]
        case "ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin": return [evalReduce(c)]
        case "Transpose": return [evalTranspose(c)]
        default: return []
        }
    }

    /// The output shape the type rule gives output 0.
    private static func outputShape(_ c: NodeContext) -> Shape? {
        inferTypes(c)?.first?.shape
    }

    private static func evalShape(_ c: NodeContext) -> KnownTensor? {
        guard let s = c.shape(0) else { return nil }
        let (lo, hi) = shapeRange(c, rank: s.rank)
        return KnownTensor.vector(Array(s.dims[lo ..< hi]))
    }

    /// The `start`/`end` window of `Shape` (opset 15), clamped.
    static func shapeRange(_ c: NodeContext, rank: Int) -> (Int, Int) {
        func clampAxis(_ a: Int) -> Int {
            let v = a < 0 ? a + rank : a
            return min(max(v, 0), rank)
        }
        let lo = clampAxis(c.attrInt("start") ?? 0)
        let hi = clampAxis(c.attrInt("end") ?? rank)
        return (lo, max(lo, hi))
    }

    private static func evalGather(_ c: NodeContext) -> KnownTensor? {
        guard let data = c.known(0), let idx = c.known(1), let indices = idx.ints, data.rank >= 1 else { return nil }
        guard let axis = DimMath.axis(c.attrInt("axis") ?? 0, rank: data.rank) else { return nil }
        let n = data.shape[axis]
        let outer = Shape.product(Array(data.shape[..<axis])) ?? 0
        let inner = Shape.product(Array(data.shape[(axis + 1)...])) ?? 0
        guard let total = Shape.product([outer, indices.count, inner]), total <= InferenceState.maxKnownElements else { return nil }
        var out: [KnownElement] = []
        for o in 0 ..< outer {
            for i in indices {
                let j = i < 0 ? i + n : i
                guard j >= 0 && j < n else { return nil }
                for k in 0 ..< inner { out.append(data.elements[(o * n + j) * inner + k]) }
            }
        }
        let shape = Array(data.shape[..<axis]) + idx.shape + Array(data.shape[(axis + 1)...])
        return KnownTensor(dtype: data.dtype, shape: shape, elements: out)
    }

    private static func evalConcat(_ c: NodeContext) -> KnownTensor? {
        var parts: [KnownTensor] = []
        for i in c.node.inputs.indices {
            guard let k = c.known(i) else { return nil }
            parts.append(k)
        }
        guard let first = parts.first, first.rank >= 1, let axis = DimMath.axis(c.attrInt("axis") ?? 0, rank: first.rank) else { return nil }
        for p in parts where p.rank != first.rank { return nil }
        guard parts.reduce(0, { $0 + $1.elements.count }) <= InferenceState.maxKnownElements else { return nil }
        let outer = Shape.product(Array(first.shape[..<axis])) ?? 0
        var shape = first.shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        var out: [KnownElement] = []
        for o in 0 ..< outer {
            for p in parts {
                let chunk = Shape.product(Array(p.shape[axis...])) ?? 0
                out.append(contentsOf: p.elements[(o * chunk) ..< ((o + 1) * chunk)])
            }
        }
        let dtype = parts.first(where: { !$0.elements.isEmpty })?.dtype ?? first.dtype
        return KnownTensor(dtype: dtype, shape: shape, elements: out)
    }

    private static func evalSlice(_ c: NodeContext) -> KnownTensor? {
        guard let data = c.known(0), let plan = slicePlan(c, rank: data.rank) else { return nil }
        var ranges: [[Int]] = data.shape.map { Array(0 ..< $0) }
        for (axis, start, end, step) in plan {
            guard let idx = sliceIndices(dim: data.shape[axis], start: start, end: end, step: step) else { return nil }
            ranges[axis] = idx
        }
        let strides = KnownTensor.strides(data.shape)
        var out: [KnownElement] = []
        var index = Array(repeating: 0, count: ranges.count)
        let total = ranges.reduce(1) { $0 * $1.count }
        guard total <= InferenceState.maxKnownElements else { return nil }
        for _ in 0 ..< total {
            var src = 0
            for (a, r) in ranges.enumerated() { src += r[index[a]] * strides[a] }
            out.append(data.elements[src])
            var ax = ranges.count - 1
            while ax >= 0 {
                index[ax] += 1
                if index[ax] < ranges[ax].count { break }
                index[ax] = 0
                ax -= 1
            }
        }
        return KnownTensor(dtype: data.dtype, shape: ranges.map(\.count), elements: out)
    }

    /// The indices a slice selects along an axis of length `dim`.
    static func sliceIndices(dim: Int, start: Int, end: Int, step: Int) -> [Int]? {
        guard step != 0, step != Int.min, let (s, e) = clampSlice(dim: dim, start: start, end: end, step: step) else { return nil }
        return Array(stride(from: s, to: e, by: step))
    }

    /// Clamps `start` and `end` as ONNX `Slice` does (negative values count from the end).
    static func clampSlice(dim: Int, start: Int, end: Int, step: Int) -> (Int, Int)? {
        guard step != 0, dim >= 0 else { return nil }
        func adjust(_ v: Int) -> Int {
            var x = min(max(v, -dim - 1), dim)
            if x < 0 { x += dim }
            return x
        }
        var s = adjust(start)
        var e = adjust(end)
        if step > 0 {
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
        } else {
            s = min(max(s, -1), dim - 1)
            e = min(max(e, -1), dim - 1)
        }
        return (s, e)
    }

    static func cast(_ k: KnownTensor, to d: DType) -> KnownTensor? {
        var out = k
        out.dtype = d
        if d == .bool {
            out.elements = k.elements.map { e in
                switch e {
                case .int(let v): return .int(v != 0 ? 1 : 0)
                case .float(let f): return .int(f != 0 ? 1 : 0)
                default: return .unknown
                }
            }
        } else if KnownTensor.isInteger(d) {
            out.elements = k.elements.map { e in
                if case .float(let f) = e {
                    guard f.isFinite, abs(f) < 9.2e18 else { return .unknown }
                    return .int(Int(f.rounded(.towardZero)))
                }
                return e
            }
        } else if d.isFloatingPoint {
            out.elements = k.elements.map { e in
                if case .int(let v) = e { return .float(Double(v)) }
                if case .symbol = e { return .unknown }
                return e
            }
        } else {
            return nil
        }
        return out
    }

    private static func evalBinary(_ c: NodeContext) -> KnownTensor? {
        guard let a = c.known(0), let b = c.known(1), let shape = KnownTensor.broadcastShape(a.shape, b.shape),
            let ea = a.broadcast(to: shape), let eb = b.broadcast(to: shape)
        else { return nil }
        let op = c.node.opType.name
        let comparison = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"].contains(op)
        let isFloat = a.dtype.isFloatingPoint
        let fmod = (c.attrInt("fmod") ?? 0) != 0
        let out = zip(ea, eb).map { binary(op, $0, $1, isFloat: isFloat, fmod: fmod) }
        return KnownTensor(dtype: comparison ? .bool : a.dtype, shape: shape, elements: out)
    }

    /// One element of a binary op. Symbols survive identities (`s+0`, `s*1`, `s/1`) and give exact
    /// answers where they can (`s-s = 0`, `s == s`, `s == -1` is false since dims are not negative).
    static func binary(_ op: String, _ x: KnownElement, _ y: KnownElement, isFloat: Bool, fmod: Bool) -> KnownElement {
        func bool(_ b: Bool) -> KnownElement { .int(b ? 1 : 0) }
        if case .symbol(let s) = x {
            switch (op, y) {
            case ("Add", .int(0)), ("Sub", .int(0)), ("Mul", .int(1)), ("Div", .int(1)), ("Max", .int(0)): return x
            case ("Mul", .int(let k)) where k > 1 && !isFloat:
                // Exact products of dims stay symbolic: heads × batch is `4*batch`.
                return KnownElement(DimMath.multiply(.symbol(s), .known(k)))
            case ("Div", .int(let k)) where k > 1 && !isFloat:
                var p = SymbolicProduct()
                p.multiply(.symbol(s))
                var q = SymbolicProduct()
                q.multiply(.known(k))
                return KnownElement(p.divided(by: q))
            case ("Mul", .int(0)): return .int(0)
            case ("Sub", .symbol(s)): return .int(0)
            case ("Div", .symbol(s)): return .unknown
            case ("Max", .symbol(s)), ("Min", .symbol(s)): return x
            case ("Equal", .symbol(s)), ("LessOrEqual", .symbol(s)), ("GreaterOrEqual", .symbol(s)): return bool(true)
            case ("Less", .symbol(s)), ("Greater", .symbol(s)): return bool(false)
            case ("Equal", .int(let v)) where v < 0: return bool(false)
            case ("Less", .int(let v)) where v <= 0: return bool(false)
            case ("GreaterOrEqual", .int(let v)) where v <= 0: return bool(true)
            case ("Greater", .int(let v)) where v < 0: return bool(true)
            case ("LessOrEqual", .int(let v)) where v < 0: return bool(false)
            default: return .unknown
            }
        }
        if case .symbol(let s) = y {
            switch (op, x) {
            case ("Add", .int(0)), ("Mul", .int(1)), ("Max", .int(0)): return y
            case ("Mul", .int(let k)) where k > 1 && !isFloat: return KnownElement(DimMath.multiply(.symbol(s), .known(k)))
            case ("Mul", .int(0)): return .int(0)
            case ("Equal", .int(let v)) where v < 0: return bool(false)
            default: return .unknown
            }
        }
        if isFloat {
            guard let a = x.doubleValue, let b = y.doubleValue else { return .unknown }
            switch op {
            case "Add": return .float(a + b)
            case "Sub": return .float(a - b)
            case "Mul": return .float(a * b)
            case "Div": return .float(a / b)
            case "Pow": return .float(Foundation.pow(a, b))
            case "Max": return .float(max(a, b))
            case "Min": return .float(min(a, b))
            case "Mod": return b == 0 ? .unknown : .float(fmod ? Foundation.fmod(a, b) : a - (a / b).rounded(.down) * b)
            case "Equal": return bool(a == b)
            case "Less": return bool(a < b)
            case "Greater": return bool(a > b)
            case "LessOrEqual": return bool(a <= b)
            case "GreaterOrEqual": return bool(a >= b)
            default: return .unknown
            }
        }
        guard let a = x.intValue, let b = y.intValue else { return .unknown }
        switch op {
        case "Add":
            let (r, o) = a.addingReportingOverflow(b)
            return o ? .unknown : .int(r)
        case "Sub":
            let (r, o) = a.subtractingReportingOverflow(b)
            return o ? .unknown : .int(r)
        case "Mul":
            let (r, o) = a.multipliedReportingOverflow(by: b)
            return o ? .unknown : .int(r)
        case "Div":
            // Integer division truncates toward zero, as onnxruntime does.
            guard b != 0, !(a == Int.min && b == -1) else { return .unknown }
            return .int(a / b)
        case "Mod":
            guard b != 0, !(a == Int.min && b == -1) else { return .unknown }
            let r = a % b
            if fmod { return .int(r) }
            return .int((r != 0 && ((r < 0) != (b < 0))) ? r + b : r)
        case "Pow":
            guard b >= 0, b < 64 else { return .unknown }
            var r = 1
            for _ in 0 ..< b {
                let (m, o) = r.multipliedReportingOverflow(by: a)
                if o { return .unknown }
                r = m
            }
            return .int(r)
        case "Max": return .int(max(a, b))
        case "Min": return .int(min(a, b))
        case "Equal": return bool(a == b)
        case "Less": return bool(a < b)
        case "Greater": return bool(a > b)
        case "LessOrEqual": return bool(a <= b)
        case "GreaterOrEqual": return bool(a >= b)
        case "And": return bool(a != 0 && b != 0)
        case "Or": return bool(a != 0 || b != 0)
        case "Xor": return bool((a != 0) != (b != 0))
        default: return .unknown
        }
    }

    private static func evalUnary(_ c: NodeContext) -> KnownTensor? {
        guard var k = c.known(0) else { return nil }
        let op = c.node.opType.name
        k.elements = k.elements.map { e in
            switch (op, e) {
            case ("Neg", .int(let v)): return v == Int.min ? .unknown : .int(-v)
            case ("Neg", .float(let f)): return .float(-f)
            case ("Abs", .int(let v)): return v == Int.min ? .unknown : .int(abs(v))
            case ("Abs", .float(let f)): return .float(abs(f))
            case ("Abs", .symbol): return e
            case ("Sign", .int(let v)): return .int(v.signum())
            case ("Sign", .float(let f)): return .float(f > 0 ? 1 : (f < 0 ? -1 : 0))
            case ("Not", .int(let v)): return .int(v == 0 ? 1 : 0)
            case ("Floor", .float(let f)): return .float(f.rounded(.down))
            case ("Ceil", .float(let f)): return .float(f.rounded(.up))
            case ("Round", .float(let f)): return .float(f.rounded(.toNearestOrEven))
            case ("Sqrt", .float(let f)): return .float(f.squareRoot())
            case ("Reciprocal", .float(let f)): return .float(1 / f)
            case ("Floor", .int), ("Ceil", .int), ("Round", .int): return e
            case (_, .symbol) where ["Floor", "Ceil", "Round"].contains(op): return e
            default: return .unknown
            }
        }
        return k
    }

    private static func evalWhere(_ c: NodeContext) -> KnownTensor? {
        guard let cond = c.known(0), let x = c.known(1), let y = c.known(2),
            let s1 = KnownTensor.broadcastShape(cond.shape, x.shape), let shape = KnownTensor.broadcastShape(s1, y.shape),
            let ec = cond.broadcast(to: shape), let ex = x.broadcast(to: shape), let ey = y.broadcast(to: shape)
        else { return nil }
        var out: [KnownElement] = []
        out.reserveCapacity(ec.count)
        for i in ec.indices {
            switch ec[i].intValue {
            case .some(let v): out.append(v != 0 ? ex[i] : ey[i])
            case .none: out.append(ex[i] == ey[i] ? ex[i] : .unknown)
            }
        }
        return KnownTensor(dtype: x.dtype, shape: shape, elements: out)
    }

    private static func evalConstantOfShape(_ c: NodeContext) -> KnownTensor? {
        guard let dims = c.ints(0), let n = Shape.product(dims), n <= InferenceState.maxKnownElements else { return nil }
        var fill = KnownElement.float(0)
        var dtype = DType.float
        if let t = c.attrTensor("value") {
            guard let k = KnownTensor(tensor: t), let e = k.elements.first else { return nil }
            fill = e
            dtype = t.dtype
        }
        return KnownTensor(dtype: dtype, shape: dims, elements: Array(repeating: fill, count: n))
    }

    /// The element count of `Range(start, limit, delta)`: `max(ceil((limit - start) / delta), 0)`.
    static func rangeCount(start: Double, limit: Double, delta: Double) -> Int? {
        guard delta != 0 else { return nil }
        let n = ((limit - start) / delta).rounded(.up)
        guard n.isFinite, n < 1e15 else { return nil }
        return n <= 0 ? 0 : Int(n)
    }

    private static func evalRange(_ c: NodeContext) -> KnownTensor? {
        guard let s = c.known(0), let l = c.known(1), let d = c.known(2) else { return nil }
        guard s.elements.count == 1, l.elements.count == 1, d.elements.count == 1 else { return nil }
        guard let s0 = s.elements.first?.doubleValue, let l0 = l.elements.first?.doubleValue,
            let d0 = d.elements.first?.doubleValue,
            let n = rangeCount(start: s0, limit: l0, delta: d0), n <= InferenceState.maxKnownElements
        else { return nil }
        let out: [KnownElement]
        if s.dtype.isFloatingPoint {
            out = (0 ..< n).map { .float(s0 + Double($0) * d0) }
        } else {
            guard let si = s.elements.first?.intValue, let di = d.elements.first?.intValue else { return nil }
            out = (0 ..< n).map { .int(si &+ $0 &* di) }
        }
        return KnownTensor(dtype: s.dtype, shape: [n], elements: out)
    }

    private static func evalReduce(_ c: NodeContext) -> KnownTensor? {
        guard let k = c.known(0), let outShape = outputShape(c)?.staticDims else { return nil }
        // Only whole-tensor reductions of 1-D (shape-value) tensors; that is what shape code uses.
        guard k.rank <= 1, Shape.product(outShape) == 1 else { return nil }
        let op = c.node.opType.name
        if op == "ReduceProd" || op == "ReduceSum" {
            var p = SymbolicProduct()
            var sum = 0
            var sumKnown = true
            var sumSymbol: KnownElement? = nil
            for e in k.elements {
                if op == "ReduceProd" {
                    p.multiply(e.asDim)
                } else if let v = e.intValue, !k.dtype.isFloatingPoint {
                    sum = sum &+ v
                } else if case .symbol = e, sumSymbol == nil {
                    sumSymbol = e
                } else {
                    sumKnown = false
                }
            }
            if k.dtype.isFloatingPoint {
                guard let v = k.doubles else { return nil }
                let r = op == "ReduceProd" ? v.reduce(1, *) : v.reduce(0, +)
                return KnownTensor(dtype: k.dtype, shape: outShape, elements: [.float(r)])
            }
            let e: KnownElement
            if op == "ReduceProd" {
                e = KnownElement(p.dim)
            } else if !sumKnown {
                e = .unknown
            } else if let s = sumSymbol {
                e = sum == 0 ? s : .unknown
            } else {
                e = .int(sum)
            }
            return KnownTensor(dtype: k.dtype, shape: outShape, elements: [e])
        }
        if let v = k.ints, let first = v.first {
            return KnownTensor(dtype: k.dtype, shape: outShape, elements: [.int(op == "ReduceMax" ? v.max() ?? first : v.min() ?? first)])
        }
        if k.dtype.isFloatingPoint, let v = k.doubles, let first = v.first {
            return KnownTensor(dtype: k.dtype, shape: outShape, elements: [.float(op == "ReduceMax" ? v.max() ?? first : v.min() ?? first)])
        }
        return nil
    }

    private static func evalTranspose(_ c: NodeContext) -> KnownTensor? {
        guard let k = c.known(0) else { return nil }
        let r = k.rank
        let perm = c.attrInts("perm") ?? Array((0 ..< r).reversed())
        guard perm.count == r, Set(perm) == Set(0 ..< r) else { return nil }
        if r <= 1 { return k }
        let outShape = perm.map { k.shape[$0] }
        let srcStrides = KnownTensor.strides(k.shape)
        var out: [KnownElement] = []
        out.reserveCapacity(k.elements.count)
        var index = Array(repeating: 0, count: r)
        for _ in 0 ..< k.elements.count {
            var src = 0
            for a in 0 ..< r { src += index[a] * srcStrides[perm[a]] }
            out.append(k.elements[src])
            var ax = r - 1
            while ax >= 0 {
                index[ax] += 1
                if index[ax] < outShape[ax] { break }
                index[ax] = 0
                ax -= 1
            }
        }
        return KnownTensor(dtype: k.dtype, shape: outShape, elements: out)
    }
}
