/// Infers the element type and shape of every value of a model, with symbolic dimensions.
///
/// Inference walks each graph in topological order (subgraphs of `If`, `Loop` and `Scan` when
/// their node is reached) and applies a rule per operator. Rules understand numpy broadcasting,
/// the attribute and input forms of ops that changed across opsets (`Squeeze`, `Slice`, `Split`,
/// the reductions, `Resize`, ...) and symbolic dims: a graph input `[batch, 3, 224, 224]` gives
/// `[batch, 64, 112, 112]` after a strided `Conv`.
///
/// Exported models compute shapes at run time (`Shape → Gather → Unsqueeze → Concat → Reshape`,
/// `ConstantOfShape`, `Range`, `Expand`). Inference keeps a side table of small constant tensors
/// (up to 4096 elements) whose elements may be numbers, symbolic dims or unknown, and evaluates
/// those chains, so a `Reshape` whose target shape comes from `Shape` gets symbolic output dims.
///
/// Inference never throws and never traps on a malformed model: an op without a rule, or with
/// inputs whose types are unknown, leaves its outputs' types as they are, and inference goes on
/// with the next node. Types a value already has (from `value_info`) are kept unless the
/// inferred type is more specific; a known dimension that contradicts an inferred one is replaced.
///
/// ```swift
/// let model = try ModelImporter.load(contentsOf: url)
/// let report = ShapeInference(overrides: ["input_ids": [1, 16]]).run(on: model)
/// print(report.staticShapes, report.opsWithoutRule)
/// ```
///
/// ### See Also
/// - ``ShapeInferenceReport``
/// - ``CostModel``
public struct ShapeInference: Sendable {
    /// Concrete shapes for graph inputs, by input name (from `--shape name=1x3x224x224`).
    public var overrides: [String: Shape]

    /// Creates an inference run.
    ///
    /// - Parameter overrides: Graph input name → shape. A symbolic dim of that input that the
    ///   override sets to a number binds the symbol, and the number replaces the symbol wherever it
    ///   appears in the model (other inputs, `value_info`, graph outputs).
    public init(overrides: [String: Shape] = [:]) {
        self.overrides = overrides
    }

    /// Infers types for every value of the model (main graph and subgraphs).
    ///
    /// Values whose type is already set keep it unless the inferred one is more specific. Only
    /// ``Value/type`` changes; no node, value or initializer is added or removed.
    ///
    /// - Parameter model: The model; its values' types are updated in place.
    /// - Returns: Statistics: how many values got a type or a more specific one, how many ended
    ///   with a fully static shape, which ops had no rule.
    @discardableResult
    public func run(on model: Model) -> ShapeInferenceReport {
        runCollectingConstants(on: model).report
    }

    /// Infers types like ``run(on:)`` and also returns the small integer tensors inference could
    /// evaluate (shape arithmetic such as `Shape → Gather → Div → Mul`), for analyses that need
    /// the value of a `Slice` bound or a `Reshape` target that is computed rather than stored.
    public func runCollectingConstants(on model: Model) -> (report: ShapeInferenceReport, constants: KnownIntegers) {
        let state = InferenceState(model: model)
        state.applyOverrides(overrides, to: model.graph)
        if !state.bindings.isEmpty { state.substituteBoundSymbols(in: model.graph) }
        state.infer(model.graph)
        state.collectStatistics(model.graph)
        var table: [ObjectIdentifier: [Int]] = [:]
        for (id, k) in state.known where KnownTensor.isInteger(k.dtype) {
            if let v = k.ints { table[id] = v }
        }
        return (state.report, KnownIntegers(table: table))
    }
}

/// Integer tensors whose every element shape inference could compute, by value.
public struct KnownIntegers: Sendable {
    let table: [ObjectIdentifier: [Int]]

    /// The elements of `value` (row-major), when all are known numbers; constants always are.
    public func ints(of value: Value) -> [Int]? {
        if let v = table[ObjectIdentifier(value)] { return v }
        guard let t = value.constantValue, KnownTensor.isInteger(t.dtype), t.elementCount <= InferenceState.maxKnownElements,
            let v = try? t.int64s()
        else { return nil }
        return v.map { Int($0) }
    }
}

/// What a ``ShapeInference`` run did.
public struct ShapeInferenceReport: Sendable, Equatable {
    /// Values whose type this run set or made more specific.
    public var inferred: Int = 0
    /// Node outputs (all graphs) that have a fully static tensor shape after the run.
    public var staticShapes: Int = 0
    /// Node outputs (all graphs) that were considered; omitted optional outputs are not counted.
    public var values: Int = 0
    /// Ops (`Conv`, `com.example.Foo`) that have no inference rule, with how many nodes use them.
    public var opsWithoutRule: [String: Int] = [:]
    /// Ops that have a rule but left at least one output without any type, usually because an
    /// input's type was unknown, with how many nodes.
    public var unresolved: [String: Int] = [:]
    /// Override names that match no graph input.
    public var unknownOverrides: [String] = []

    /// Creates an empty report.
    public init() {}
}

// MARK: - Rule results

/// What a rule found out about one output: element type and shape, each possibly unknown, or a
/// whole non-tensor type (sequences, optionals) for ops that pass such values through.
struct Inferred {
    var dtype: DType?
    var shape: Shape?
    var full: ValueType?

    init(_ dtype: DType?, _ shape: Shape?) {
        self.dtype = dtype
        self.shape = shape
        self.full = nil
    }

    init(type: ValueType?) {
        if case .tensor(let d, let s)? = type {
            self.init(d, s)
        } else {
            self.init(nil, nil)
            self.full = type
        }
    }

    static let none = Inferred(nil, nil)

    var isEmpty: Bool { dtype == nil && shape == nil && full == nil }
}

// MARK: - The run's state

/// State of one inference run: opsets, symbol bindings, the table of known small constants, and
/// the report being filled.
final class InferenceState {
    /// Largest constant (in elements) kept in the side table.
    static let maxKnownElements = 4096

    let opsets: [String: Int]
    var bindings: [String: Int] = [:]
    var report = ShapeInferenceReport()
    private(set) var known: [ObjectIdentifier: KnownTensor] = [:]
    private var notKnown: Set<ObjectIdentifier> = []

    init(model: Model) {
        var o: [String: Int] = [:]
        for imp in model.opsetImports {
            let d = imp.domain == "ai.onnx" ? "" : imp.domain
            o[d] = Int(clamping: imp.version)
        }
        opsets = o
    }

    /// The opset imported for `domain` (the default domain falls back to 21 when not imported).
    func opset(_ domain: String) -> Int {
        opsets[domain] ?? (domain.isEmpty ? 21 : 1)
    }

    // MARK: Constants

    /// The known (possibly partially known) contents of `value`, when it is a small constant or
    /// was computed from constants and shapes.
    func knownValue(_ value: Value) -> KnownTensor? {
        let id = ObjectIdentifier(value)
        if let k = known[id] { return k }
        if notKnown.contains(id) { return nil }
        if let t = value.constantValue, let k = KnownTensor(tensor: t) {
            known[id] = k
            return k
        }
        if value.producer != nil || value.initializer != nil { notKnown.insert(id) }
        return nil
    }

    func setKnown(_ value: Value, _ k: KnownTensor) {
        known[ObjectIdentifier(value)] = k
        notKnown.remove(ObjectIdentifier(value))
    }

    // MARK: Overrides and symbols

    func applyOverrides(_ overrides: [String: Shape], to graph: Graph) {
        for name in overrides.keys.sorted() {
            guard let shape = overrides[name] else { continue }
            guard let input = graph.inputs.first(where: { $0.name == name }) else {
                report.unknownOverrides.append(name)
                continue
            }
            let dtype = input.type?.elementType ?? .float
            if let old = input.type?.shape, old.rank == shape.rank {
                for (o, n) in zip(old.dims, shape.dims) {
                    if case .symbol(let s) = o, case .known(let v) = n, bindings[s] == nil { bindings[s] = v }
                }
            }
            let newType = ValueType.tensor(dtype, shape)
            if input.type != newType {
                input.type = newType
                report.inferred += 1
            }
        }
    }

    /// Replaces bound symbols by their numbers in every typed value of `graph` and its subgraphs.
    func substituteBoundSymbols(in graph: Graph) {
        func fix(_ v: Value) {
            guard let t = v.type else { return }
            let n = substitute(t)
            if n != t { v.type = n }
        }
        graph.inputs.forEach(fix)
        graph.valueInfos.forEach(fix)
        for node in graph.nodes {
            node.outputs.forEach(fix)
            for g in node.subgraphs { substituteBoundSymbols(in: g) }
        }
        graph.outputs.forEach(fix)
    }

    func substitute(_ shape: Shape) -> Shape {
        guard !bindings.isEmpty else { return shape }
        return Shape(shape.dims.map { d in
            guard case .symbol(let s) = d else { return d }
            if let v = bindings[s] { return .known(v) }
            guard s.contains("*") else { return d }
            var p = SymbolicProduct()
            p.multiply(d, bindings: bindings)
            return p.dim
        })
    }

    func substitute(_ t: ValueType) -> ValueType {
        switch t {
        case .tensor(let d, let s): return .tensor(d, s.map(substitute))
        case .sparseTensor(let d, let s): return .sparseTensor(d, s.map(substitute))
        case .sequence(let e): return .sequence(e.map(substitute))
        case .optional(let e): return .optional(e.map(substitute))
        case .map(let k, let v): return .map(key: k, value: v.map(substitute))
        case .opaque: return t
        }
    }

    // MARK: Walking graphs

    /// Infers every node of `graph` in order (subgraphs when their node is reached).
    func infer(_ graph: Graph) {
        for node in graph.nodes { inferNode(node) }
    }

    private func inferNode(_ node: Node) {
        let ctx = NodeContext(node: node, state: self)
        guard let results = ShapeInference.inferTypes(ctx) else {
            report.opsWithoutRule[node.opType.description, default: 0] += 1
            for g in node.subgraphs { infer(g) }
            return
        }
        let constants = ShapeInference.evaluateConstants(ctx)
        var unresolved = false
        for (i, out) in node.outputs.enumerated() where !out.isOmitted {
            var guess = i < results.count ? results[i] : .none
            if i < constants.count, let k = constants[i] {
                setKnown(out, k)
                let fromConstant = Shape(k.shape)
                guess.dtype = guess.dtype ?? k.dtype
                guess.shape = guess.shape.map { TypeMerge.mergeShapes(existing: $0, inferred: fromConstant) } ?? fromConstant
            }
            assign(guess, to: out)
            if out.type == nil { unresolved = true }
        }
        if unresolved { report.unresolved[node.opType.description, default: 0] += 1 }
    }

    /// Sets `value`'s type to the merge of its current type and `guess`.
    func assign(_ guess: Inferred, to value: Value) {
        var g = guess
        g.shape = g.shape.map(substitute)
        g.full = g.full.map(substitute)
        let merged = TypeMerge.merge(existing: value.type, inferred: g)
        if merged != value.type {
            value.type = merged
            report.inferred += 1
        }
    }

    /// Fills the value counts of the report.
    func collectStatistics(_ graph: Graph) {
        for node in graph.nodes {
            for out in node.outputs where !out.isOmitted {
                report.values += 1
                if out.type?.shape?.staticDims != nil, case .tensor? = out.type { report.staticShapes += 1 }
            }
            for g in node.subgraphs { collectStatistics(g) }
        }
    }
}

// MARK: - Merging types

/// How an inferred type combines with the type a value already has.
enum TypeMerge {
    /// The more specific of `existing` and `inferred`, dimension by dimension; on a contradiction
    /// (two different numbers, two different ranks or element types) the inferred one wins.
    static func merge(existing: ValueType?, inferred g: Inferred) -> ValueType? {
        if let full = g.full {
            guard let existing else { return full }
            if case .tensor = full, case .tensor = existing {
                return merge(existing: existing, inferred: Inferred(type: full))
            }
            return existing
        }
        guard g.dtype != nil || g.shape != nil else { return existing }
        switch existing {
        case nil:
            guard let d = g.dtype else { return nil }
            return .tensor(d, g.shape)
        case .tensor(let d, let s)?:
            let dtype = g.dtype ?? d
            guard let new = g.shape else { return .tensor(dtype, s) }
            guard let old = s else { return .tensor(dtype, new) }
            return .tensor(dtype, mergeShapes(existing: old, inferred: new))
        default:
            return existing
        }
    }

    static func mergeShapes(existing old: Shape, inferred new: Shape) -> Shape {
        guard old.rank == new.rank else { return new }
        return Shape(zip(old.dims, new.dims).map { mergeDims(existing: $0, inferred: $1) })
    }

    static func mergeDims(existing old: Dim, inferred new: Dim) -> Dim {
        switch (old, new) {
        case (_, .known): return new
        case (.known, _): return old
        // An inferred symbol is an input's dim carried exactly; a declared one may be a placeholder
        // that a converter's shape inference made up (onnx writes `unk__N` for every dim it could
        // not relate, and fp16 converters keep them), which would hide that two dims are equal.
        case (.symbol, .symbol): return new
        case (.symbol, _): return old
        case (.unknown, _): return new
        }
    }
}

// MARK: - Dimension arithmetic

/// Arithmetic and broadcasting on ``Dim``s that keeps symbols where the result is exact.
enum DimMath {
    /// Numpy broadcasting of two dims: `1` gives the other, equal dims give themselves, a number
    /// other than 1 wins over a symbol or unknown (the other must be it or 1), and two different
    /// symbols give unknown.
    static func broadcast(_ a: Dim, _ b: Dim) -> Dim {
        switch (a, b) {
        case (.known(let x), .known(let y)):
            if x == y { return a }
            if x == 1 { return b }
            if y == 1 { return a }
            return .unknown
        case (.known(1), _): return b
        case (_, .known(1)): return a
        case (.known, _): return a
        case (_, .known): return b
        case (.symbol(let x), .symbol(let y)): return x == y ? a : .unknown
        default: return .unknown
        }
    }

    /// Numpy broadcasting of shapes (right-aligned); `nil` when any rank is unknown.
    static func broadcast(_ shapes: [Shape?]) -> Shape? {
        var out: [Dim] = []
        for s in shapes {
            guard let s else { return nil }
            if s.rank > out.count { out.insert(contentsOf: Array(repeating: Dim.known(1), count: s.rank - out.count), at: 0) }
            let offset = out.count - s.rank
            for (i, d) in s.dims.enumerated() { out[offset + i] = broadcast(out[offset + i], d) }
        }
        return Shape(out)
    }

    /// `a + k` for a number `k`.
    static func add(_ a: Dim, _ k: Int) -> Dim {
        if k == 0 { return a }
        guard case .known(let v) = a else { return .unknown }
        let (r, o) = v.addingReportingOverflow(k)
        return o ? .unknown : .known(r)
    }

    /// `a * b`, exact when both are numbers or one is 1.
    static func multiply(_ a: Dim, _ b: Dim) -> Dim {
        var p = SymbolicProduct()
        p.multiply(a)
        p.multiply(b)
        return p.dim
    }

    /// The product of `dims`, exact when it is a number or a single symbol.
    static func product<C: Collection>(_ dims: C) -> Dim where C.Element == Dim {
        var p = SymbolicProduct()
        for d in dims { p.multiply(d) }
        return p.dim
    }

    /// A normalized axis in `0..<rank` (negative axes count from the end), or `nil` when out of range.
    static func axis(_ axis: Int, rank: Int) -> Int? {
        let a = axis < 0 ? axis + rank : axis
        return (a >= 0 && a < rank) ? a : nil
    }

    /// Normalized, in-range, duplicate-free axes; `nil` when any is out of range or repeated.
    static func axes(_ axes: [Int], rank: Int) -> [Int]? {
        var out: [Int] = []
        var seen = Set<Int>()
        for a in axes {
            guard let n = axis(a, rank: rank), seen.insert(n).inserted else { return nil }
            out.append(n)
        }
        return out
    }

    /// `floor(a / b)` for numbers, guarding division by zero and overflow.
    static func floorDiv(_ a: Int, _ b: Int) -> Int? {
        guard b != 0, !(a == Int.min && b == -1) else { return nil }
        let q = a / b
        return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q
    }

    /// `ceil(a / b)` for numbers, guarding division by zero and overflow.
    static func ceilDiv(_ a: Int, _ b: Int) -> Int? {
        guard b != 0, !(a == Int.min && b == -1) else { return nil }
        let q = a / b
        return (a % b != 0 && ((a < 0) == (b < 0))) ? q + 1 : q
    }
}

/// A product of dims kept as a number times a multiset of symbols, so `[batch, seq, 64]`
/// reshaped to `[batch, -1, 4, 16]` resolves `-1` to `seq`.
///
/// A product of several symbols is itself written as a symbol, `batch*seq` (a number first, then
/// the names in order, joined by `*`), the way onnxruntime's symbolic shape inference names them;
/// such a symbol multiplies back in as its parts, so `Flatten` followed by a `Reshape` back to
/// `[batch, seq, 64]` keeps both symbols.
struct SymbolicProduct {
    var coefficient = 1
    var symbols: [String: Int] = [:]
    var isUnknown = false

    mutating func multiply(_ d: Dim, bindings: [String: Int] = [:]) {
        switch d {
        case .known(let v): multiply(number: v)
        case .symbol(let s):
            guard s.contains("*") else {
                if let v = bindings[s] { multiply(number: v) } else { symbols[s, default: 0] += 1 }
                return
            }
            for part in s.split(separator: "*") {
                let name = String(part)
                if let v = Int(name) ?? bindings[name] { multiply(number: v) } else { symbols[name, default: 0] += 1 }
            }
        case .unknown: isUnknown = true
        }
    }

    private mutating func multiply(number v: Int) {
        guard v >= 0 else {
            isUnknown = true
            return
        }
        let (r, o) = coefficient.multipliedReportingOverflow(by: v)
        if o { isUnknown = true } else { coefficient = r }
    }

    /// The product as a dim: a number, a symbol (`batch`, or `batch*seq` for a product), or unknown.
    var dim: Dim {
        if coefficient == 0 { return .known(0) }
        if isUnknown { return .unknown }
        if symbols.isEmpty { return .known(coefficient) }
        var parts: [String] = coefficient == 1 ? [] : [String(coefficient)]
        for name in symbols.keys.sorted() {
            parts += Array(repeating: name, count: symbols[name] ?? 0)
        }
        return .symbol(parts.joined(separator: "*"))
    }

    /// `self / other` as a dim when it divides exactly into a number or a single symbol.
    func divided(by other: SymbolicProduct) -> Dim {
        guard !isUnknown, !other.isUnknown, other.coefficient != 0, coefficient % other.coefficient == 0 else { return .unknown }
        var rest = SymbolicProduct()
        rest.coefficient = coefficient / other.coefficient
        rest.symbols = symbols
        for (s, p) in other.symbols {
            guard let have = rest.symbols[s], have >= p else { return .unknown }
            rest.symbols[s] = have == p ? nil : have - p
        }
        return rest.dim
    }
}

// MARK: - Node context

/// Read access to one node's inputs and attributes for the rules; never throws (an attribute of
/// the wrong kind reads as absent).
struct NodeContext {
    let node: Node
    let state: InferenceState

    /// The opset of the node's domain.
    var opset: Int { state.opset(node.opType.canonicalDomain) }

    func input(_ i: Int) -> Value? { node.inputs.indices.contains(i) ? node.inputs[i] : nil }
    func hasInput(_ i: Int) -> Bool { input(i) != nil }
    func type(_ i: Int) -> ValueType? { input(i)?.type }
    func dtype(_ i: Int) -> DType? { input(i)?.type?.elementType }
    func shape(_ i: Int) -> Shape? {
        guard let s = input(i)?.type?.shape else { return nil }
        // Negative dims from a malformed file read as unknown.
        return Shape(s.dims.map { if case .known(let v) = $0, v < 0 { return .unknown } else { return $0 } })
    }
    func rank(_ i: Int) -> Int? { shape(i)?.rank }
    func known(_ i: Int) -> KnownTensor? { input(i).flatMap { state.knownValue($0) } }

    /// A fully known integer input, flattened.
    func ints(_ i: Int) -> [Int]? { known(i)?.ints }

    /// A fully known float input, flattened.
    func floats(_ i: Int) -> [Double]? { known(i)?.doubles }

    /// The single integer of a scalar (or one-element) known input.
    func scalarInt(_ i: Int) -> Int? {
        guard let v = ints(i), v.count == 1 else { return nil }
        return v[0]
    }

    /// A 1-D integer input read as a "shape value": numbers (raw, `-1` and `0` included), symbols,
    /// or unknown elements. The count is known also when only the input's shape is.
    func shapeValue(_ i: Int) -> [Dim]? {
        if let k = known(i), k.shape.count <= 1 { return k.elements.map(\.asDim) }
        if let s = shape(i), s.rank == 1, case .known(let n) = s.dims[0], n <= InferenceState.maxKnownElements {
            return Array(repeating: .unknown, count: n)
        }
        return nil
    }

    func attrInt(_ name: String) -> Int? { (try? node.attribute(name, as: Int.self)) ?? nil }
    func attrInts(_ name: String) -> [Int]? { (try? node.attribute(name, as: [Int].self)) ?? nil }
    func attrFloat(_ name: String) -> Float? { (try? node.attribute(name, as: Float.self)) ?? nil }
    func attrFloats(_ name: String) -> [Float]? { (try? node.attribute(name, as: [Float].self)) ?? nil }
    func attrString(_ name: String) -> String? { (try? node.attribute(name, as: String.self)) ?? nil }
    func attrTensor(_ name: String) -> Tensor? { (try? node.attribute(name, as: Tensor.self)) ?? nil }
    func attrGraph(_ name: String) -> Graph? {
        if case .graph(let g)? = node[attribute: name] { return g }
        return nil
    }
    func hasAttr(_ name: String) -> Bool { node[attribute: name] != nil }

    /// The output count of the node (omitted outputs included).
    var outputCount: Int { node.outputs.count }

    /// One `Inferred` per output, all the same.
    func all(_ i: Inferred) -> [Inferred] { Array(repeating: i, count: max(outputCount, 1)) }
}

// MARK: - Dispatch

extension ShapeInference {
    /// The types of a node's outputs, or `nil` when no rule covers the node's op.
    static func inferTypes(_ c: NodeContext) -> [Inferred]? {
        let op = c.node.opType
        switch op.canonicalDomain {
        case "": break
        case "com.microsoft": return inferMicrosoft(c)
        default: return nil
        }
        if let r = inferElementwise(c) { return r }
        if let r = inferLayout(c) { return r }
        if let r = inferNN(c) { return r }
        if let r = inferControlFlow(c) { return r }
        return nil
    }

    /// Rules for the few `com.microsoft` ops that exporters emit in ordinary models.
    static func inferMicrosoft(_ c: NodeContext) -> [Inferred]? {
        switch c.node.opType.name {
        case "Gelu", "FastGelu", "BiasGelu", "QuickGelu", "BiasAdd", "GroupNorm":
            return [Inferred(c.dtype(0), c.shape(0))]
        case "SimplifiedLayerNormalization", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization":
            return inferLayerNorm(c)
        case "RotaryEmbedding":
            return [Inferred(c.dtype(0), c.shape(0))]
        case "EmbedLayerNormalization":
            // output and embedding_sum [B, S, hidden] in the embeddings' type; mask_index [B] int32.
            let ids = c.shape(0)?.dims, hidden = c.shape(2)?.dims.last
            let out = Inferred(c.dtype(2), ids.flatMap { $0.count == 2 ? Shape($0 + [hidden ?? .unknown]) : nil })
            return [out, Inferred(.int32, ids.map { Shape([$0.first ?? .unknown]) }), out]
        case "Attention":
            // output [B, S, v_hidden]: qkv_hidden_sizes[2], else a third of the weights' width.
            guard let x = c.shape(0)?.dims, x.count == 3 else { return [Inferred(c.dtype(0), nil)] }
            let width = c.attrInts("qkv_hidden_sizes").map { Dim.known($0[2]) }
                ?? c.shape(1)?.dims.last?.value.map { Dim.known($0 / 3) } ?? .unknown
            return [Inferred(c.dtype(0), Shape([x[0], x[1], width])), Inferred(c.dtype(0), nil)]
        case "MultiHeadAttention":
            return inferMultiHeadAttention(c)
        case "GroupQueryAttention":
            return inferGroupQueryAttention(c)
        default:
            return nil
        }
    }

    /// `com.microsoft::MultiHeadAttention` with 3-D query [B, S, hq], key [B, L, hq], value [B, L, hv]:
    /// output [B, S, hv]; present_key/present_value [B, N, P + L, head size].
    static func inferMultiHeadAttention(_ c: NodeContext) -> [Inferred] {
        let dt = c.dtype(0)
        guard let q = c.shape(0)?.dims, q.count == 3, let v = c.shape(2)?.dims, v.count == 3 else {
            return [Inferred(dt, nil), Inferred(dt, nil), Inferred(dt, nil)]
        }
        let n = c.attrInt("num_heads") ?? 0
        func perHead(_ d: Dim) -> Dim { n > 0 ? d.value.map { .known($0 / n) } ?? .unknown : .unknown }
        let past = c.shape(6)?.dims
        let total: Dim = past == nil ? v[1] : (past!.count == 4 ? past![2].value.flatMap { p in v[1].value.map { .known(p + $0) } } ?? .unknown : .unknown)
        let heads: Dim = n > 0 ? .known(n) : .unknown
        return [
            Inferred(dt, Shape([q[0], q[1], v[2]])),
            Inferred(dt, Shape([q[0], heads, total, perHead(q[2])])),
            Inferred(dt, Shape([q[0], heads, total, perHead(v[2])])),
        ]
    }

    /// `com.microsoft::GroupQueryAttention`: output [B, S, num_heads·D]; present_key/present_value
    /// [B, kv_num_heads, max(past capacity, total_sequence_length), D]. With key omitted, query is
    /// packed QKV of width (num_heads + 2·kv_num_heads)·D.
    static func inferGroupQueryAttention(_ c: NodeContext) -> [Inferred] {
        let dt = c.dtype(0)
        let n = c.attrInt("num_heads") ?? 0, kvN = c.attrInt("kv_num_heads") ?? 0
        guard let q = c.shape(0)?.dims, q.count == 3, n > 0, kvN > 0 else {
            return [Inferred(dt, nil), Inferred(dt, nil), Inferred(dt, nil)]
        }
        let packed = !c.hasInput(1)
        let headSize = q[2].value.map { $0 / (packed ? n + 2 * kvN : n) }
        let width: Dim = packed ? headSize.map { .known(n * $0) } ?? .unknown : q[2]
        var length = Dim.unknown
        if let total = c.scalarInt(6) {
            let past = c.shape(3)?.dims
            let pastCapacity = c.hasInput(3) ? (past?.count == 4 ? past![2].value : nil) : 0
            if let pastCapacity { length = .known(max(pastCapacity, total)) }
        }
        let present = Inferred(dt, Shape([q[0], .known(kvN), length, headSize.map { .known($0) } ?? .unknown]))
        return [Inferred(dt, Shape([q[0], q[1], width])), present, present]
    }
}
