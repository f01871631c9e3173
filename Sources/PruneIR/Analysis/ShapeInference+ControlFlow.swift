/// Rules for control flow: `If` (output types from the branches where they agree, or from the
/// taken branch when the condition is known), `Loop` and `Scan` (best effort: loop-carried
/// values keep what stays the same across iterations, scan outputs get the iteration axis).
///
/// Subgraphs are inferred when their node is reached, so values of the enclosing graph they read
/// are already typed.
extension ShapeInference {
    static func inferControlFlow(_ c: NodeContext) -> [Inferred]? {
        switch c.node.opType.name {
        case "If": return inferIf(c)
        case "Loop": return inferLoop(c)
        case "Scan": return inferScan(c)
        default: return nil
        }
    }

    static func inferIf(_ c: NodeContext) -> [Inferred] {
        let thenBranch = c.attrGraph("then_branch")
        let elseBranch = c.attrGraph("else_branch")
        if let g = thenBranch { c.state.infer(g) }
        if let g = elseBranch { c.state.infer(g) }
        // A known condition picks its branch.
        if let cond = c.known(0)?.elements.first?.intValue, let taken = cond != 0 ? thenBranch : elseBranch {
            return (0 ..< c.outputCount).map { i in
                Inferred(type: i < taken.outputs.count ? taken.outputs[i].type : nil)
            }
        }
        return (0 ..< c.outputCount).map { i in
            let a = thenBranch.flatMap { i < $0.outputs.count ? $0.outputs[i].type : nil }
            let b = elseBranch.flatMap { i < $0.outputs.count ? $0.outputs[i].type : nil }
            return Inferred(type: join(a, b))
        }
    }

    /// The type both `a` and `b` fit: equal dims stay, differing dims become unknown, a rank
    /// mismatch gives an unknown rank; `nil` when either is unknown or the element types differ.
    static func join(_ a: ValueType?, _ b: ValueType?) -> ValueType? {
        guard let a, let b else { return nil }
        if a == b { return a }
        guard case .tensor(let da, let sa) = a, case .tensor(let db, let sb) = b, da == db else { return nil }
        guard let sa, let sb, sa.rank == sb.rank else { return .tensor(da, nil) }
        return .tensor(da, Shape(zip(sa.dims, sb.dims).map { $0 == $1 ? $0 : .unknown }))
    }

    /// Gives `value` the type `t` when it has none (subgraph inputs left untyped by the exporter).
    private static func seed(_ value: Value, _ t: ValueType?, _ state: InferenceState) {
        guard value.type == nil, let t else { return }
        state.assign(Inferred(type: t), to: value)
    }

    static func inferLoop(_ c: NodeContext) -> [Inferred] {
        guard let body = c.attrGraph("body") else { return [] }
        // Inputs: M, cond, v_initial...; body inputs: iteration, cond, carried...;
        // body outputs: cond, carried..., scan outputs...
        let carriedCount = max(c.node.inputs.count - 2, 0)
        if body.inputs.count > 0 { seed(body.inputs[0], .tensor(.int64, Shape([Int]())), c.state) }
        if body.inputs.count > 1 { seed(body.inputs[1], .tensor(.bool, Shape([Int]())), c.state) }
        for i in 0 ..< carriedCount where i + 2 < body.inputs.count {
            seed(body.inputs[i + 2], c.type(i + 2), c.state)
        }
        c.state.infer(body)
        var results: [Inferred] = []
        for i in 0 ..< carriedCount {
            let initial = c.type(i + 2)
            let next = i + 1 < body.outputs.count ? body.outputs[i + 1].type : nil
            results.append(Inferred(type: next == nil ? initial : join(initial, next)))
        }
        // Trip count when M is known and no condition can stop the loop early.
        let trips: Dim = (!c.hasInput(1) ? c.scalarInt(0).map { .known($0) } : nil) ?? .unknown
        for j in (1 + carriedCount) ..< max(body.outputs.count, 1 + carriedCount) {
            guard case .tensor(let d, let s)? = body.outputs[j].type else {
                results.append(.none)
                continue
            }
            results.append(Inferred(d, s.map { Shape([trips] + $0.dims) }))
        }
        return results
    }

    static func inferScan(_ c: NodeContext) -> [Inferred] {
        guard let body = c.attrGraph("body"), let m = c.attrInt("num_scan_inputs"), m >= 0 else { return [] }
        // Opset 8 has a leading sequence_lens input and a batch axis; only opset >= 9 is modelled.
        guard c.opset >= 9 else {
            c.state.infer(body)
            return []
        }
        let inputCount = c.node.inputs.count
        let stateCount = max(inputCount - m, 0)
        let inputAxes = c.attrInts("scan_input_axes") ?? Array(repeating: 0, count: m)
        var sequenceLength = Dim.unknown
        for i in 0 ..< stateCount where i < body.inputs.count {
            seed(body.inputs[i], c.type(i), c.state)
        }
        for j in 0 ..< m {
            let idx = stateCount + j
            guard let t = c.type(idx), case .tensor(let d, let s) = t else { continue }
            var slice: Shape?
            if let s, j < inputAxes.count, let a = DimMath.axis(inputAxes[j], rank: s.rank) {
                sequenceLength = TypeMerge.mergeDims(existing: sequenceLength, inferred: s.dims[a])
                var dims = s.dims
                dims.remove(at: a)
                slice = Shape(dims)
            }
            if idx < body.inputs.count { seed(body.inputs[idx], .tensor(d, slice), c.state) }
        }
        c.state.infer(body)
        var results: [Inferred] = []
        for i in 0 ..< stateCount {
            let next = i < body.outputs.count ? body.outputs[i].type : nil
            results.append(Inferred(type: join(c.type(i), next) ?? c.type(i)))
        }
        let outputAxes = c.attrInts("scan_output_axes")
        for k in stateCount ..< max(body.outputs.count, stateCount) {
            guard case .tensor(let d, let s)? = body.outputs[k].type else {
                results.append(.none)
                continue
            }
            guard let s else {
                results.append(Inferred(d, nil))
                continue
            }
            let j = k - stateCount
            let rawAxis = outputAxes.map { j < $0.count ? $0[j] : 0 } ?? 0
            guard let axis = DimMath.axis(rawAxis, rank: s.rank + 1) else {
                results.append(Inferred(d, nil))
                continue
            }
            var dims = s.dims
            dims.insert(sequenceLength, at: axis)
            results.append(Inferred(d, Shape(dims)))
        }
        return results
    }
}
