import PruneIR

/// A layer that reads a group's units: a `MatMul`, `Gemm` or `Conv` with a constant weight whose
/// input axis (the contracted one) a group slices, with the bias that follows it when there is one.
///
/// Passes that look at what a layer receives (activation-aware scores, weight reconstruction)
/// start here: ``input`` is the activation to probe, ``weight`` the constant, and ``units`` says
/// which unit of ``group`` each input feature belongs to.
public struct ConsumerLayer {
    /// How the weight is laid out.
    public enum Layout: Sendable {
        /// `MatMul(x, W)` with `W` of shape [K, N], or `Gemm` with `W` [K, N] (`transB` = 0).
        case rows
        /// `Gemm` with `transB` = 1: `W` is [N, K].
        case transposed
        /// `Conv`: `W` is [N, C / group, kernel...], input channels on axis 1.
        case conv
    }

    /// The contraction.
    public let node: Node
    /// The weight's layout.
    public let layout: Layout
    /// The node and input that hold the bias (a `Gemm`/`Conv` input 2, or the constant of the
    /// `Add` that follows a `MatMul`); `nil` when there is none.
    public let bias: (node: Node, input: Int)?
    /// The layer's output: the bias `Add`'s output when the bias is a separate node, else the
    /// contraction's output.
    public let target: Value
    /// For each input feature (channel), the unit of ``group`` it belongs to.
    public let units: [Int]
    /// The group whose units this layer reads.
    public let group: PruningGroup

    /// The activation the layer reads (features last; channels on axis 1 for `Conv`).
    public var input: Value { node.inputs[0]! }
    /// The weight constant.
    public var weight: Tensor { node.inputs[1]!.constantValue! }

    /// The layers that read units of `groups`, one per node (the first group that slices it), in
    /// graph order. A group's producer-side slices (output rows of the layer before) are not
    /// consumers; contractions of other kinds (`Einsum`, a weight computed at run time) are skipped.
    public static func find(in model: Model, groups: [PruningGroup]) -> [ConsumerLayer] {
        var seen = Set<ObjectIdentifier>()
        var found: [ConsumerLayer] = []
        for g in groups {
            for s in g.parameters {
                guard case .parameter(let node, let input) = s.target, input == 1, !seen.contains(ObjectIdentifier(node)),
                      let c = make(node, slicedAxis: s.axis, units: s.units, group: g) else { continue }
                seen.insert(ObjectIdentifier(node))
                found.append(c)
            }
        }
        let order = Dictionary(uniqueKeysWithValues: model.graph.nodes.enumerated().map { (ObjectIdentifier($1), $0) })
        return found.sorted { order[ObjectIdentifier($0.node)] ?? 0 < order[ObjectIdentifier($1.node)] ?? 0 }
    }

    /// The bias of the exporters' `Add(MatMul(x, W), b)`: the `Add` and the input that holds `b`,
    /// when that `Add` is the `MatMul`'s only use and `b` is a float constant of W's width.
    public static func biasAdd(after matMul: Node) -> (node: Node, input: Int)? {
        guard let y = matMul.outputs.first, y.uses.count == 1, let use = y.uses.first, use.node.opType == .add,
              use.node.inputs.count == 2, let n = matMul.inputs[1]?.constantValue?.shape.last else { return nil }
        let other = 1 - use.inputIndex
        guard let b = use.node.inputs[other]?.constantValue, b.dtype.isFloatingPoint, b.elementCount == n, b.shape.last == n else { return nil }
        return (use.node, other)
    }

    private static func make(_ node: Node, slicedAxis axis: Int, units: [Int], group: PruningGroup) -> ConsumerLayer? {
        guard node.outputs.count >= 1, let w = node.inputs[1]?.constantValue, w.dtype.isFloatingPoint,
              node.inputs[0] != nil else { return nil }
        let y = node.outputs[0]
        switch node.opType {
        case .matMul:
            guard w.shape.count == 2, axis == 0 else { return nil }
            let bias = biasAdd(after: node)
            return ConsumerLayer(node: node, layout: .rows, bias: bias, target: bias?.node.outputs[0] ?? y, units: units, group: group)
        case .gemm:
            let transA = ((try? node.attribute("transA", as: Int.self)) ?? nil) ?? 0
            let transB = ((try? node.attribute("transB", as: Int.self)) ?? nil) ?? 0
            let alpha = ((try? node.attribute("alpha", as: Float.self)) ?? nil) ?? 1
            let beta = ((try? node.attribute("beta", as: Float.self)) ?? nil) ?? 1
            guard transA == 0, alpha == 1, beta == 1, w.shape.count == 2, axis == (transB != 0 ? 1 : 0) else { return nil }
            let n = w.shape[transB != 0 ? 0 : 1]
            var bias: (Node, Int)? = nil
            if node.inputs.count > 2, let b = node.inputs[2]?.constantValue, b.dtype.isFloatingPoint, b.elementCount == n {
                bias = (node, 2)
            }
            return ConsumerLayer(node: node, layout: transB != 0 ? .transposed : .rows, bias: bias, target: y, units: units, group: group)
        case .conv:
            guard axis == 1, w.shape.count >= 3 else { return nil }
            var bias: (Node, Int)? = nil
            if node.inputs.count > 2, let b = node.inputs[2]?.constantValue, b.dtype.isFloatingPoint, b.elementCount == w.shape[0] {
                bias = (node, 2)
            }
            return ConsumerLayer(node: node, layout: .conv, bias: bias, target: y, units: units, group: group)
        default:
            return nil
        }
    }

    /// Writes `values` as the constant read by input `input` of `node`: in place when the node is
    /// its only reader, else as a new initializer for this node alone (exporters share constants,
    /// e.g. one zero bias for several layers).
    public static func write(_ values: [Float], shape: [Int], to node: Node, input: Int, in graph: Graph, names: NameScope) {
        let old = node.inputs[input]!
        // An fp16/bf16 model keeps its element type: the fit is done in float, the result rounded.
        let dtype = old.constantValue?.dtype ?? .float
        var tensor = (try? Masks.tensor(values, like: dtype, shape: shape, for: old.name)) ?? Tensor(floats: values, shape: shape)
        tensor.name = old.name
        if old.initializer != nil, old.uses.count == 1, !graph.outputs.contains(where: { $0 === old }) {
            if let was = old.initializer { Masks.keepReference(was, for: old.name, in: graph) }
            graph.setInitializer(old, to: tensor)
        } else {
            let name = names.fresh(old.name + ".refit")
            var t = tensor
            t.name = name
            if let was = old.initializer { Masks.keepReference(was, for: name, in: graph) }
            node.setInput(graph.addInitializer(t, name: name), at: input)
        }
    }
}
