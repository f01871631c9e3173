import PruneIR

/// Head counts that live in attributes: onnxruntime's fused Attention, MultiHeadAttention,
/// GroupQueryAttention and RotaryEmbedding, and the standard Attention and RotaryEmbedding of
/// opset 23. When their operands lose heads, the counts follow (a share of the old count equal to
/// the share of features kept), and a packed Attention's `qkv_hidden_sizes` is recomputed.
extension MaskFolding {
    static func rewriteHeadCounts(_ kept: [ObjectIdentifier: (value: Value, axes: [Int: [Int]])],
                                  parameterCuts: [ParameterUse: [Int: [Int]]], graph: Graph) {
        func int(_ node: Node, _ name: String) -> Int? { (try? node.attribute(name, as: Int.self)) ?? nil }
        /// `count * kept / size` for input `i` of `node` along `axis`, when that input shrank.
        func scaled(_ node: Node, _ attribute: String, input i: Int, axis: Int) {
            guard let count = int(node, attribute), i < node.inputs.count, let v = node.inputs[i],
                let k = kept[ObjectIdentifier(v)]?.axes[axis], let size = v.type?.shape?.dims[axis].value, size > 0
            else { return }
            node.setAttribute(attribute, .int(Int64(count * k.count / size)))
        }
        for node in graph.nodes {
            let domain = node.opType.canonicalDomain
            guard domain.isEmpty || domain == "com.microsoft" else { continue }
            let rank = node.inputs.first??.type?.shape?.rank ?? 0
            switch (domain, node.opType.name) {
            case ("com.microsoft", "Attention"):
                guard let cols = parameterCuts[ParameterUse(node: node, input: 1)]?[1], let heads = int(node, "num_heads"),
                    let w = node.inputs[1]?.constantValue, w.shape.count == 2
                else { continue }
                let total = w.shape[1]
                let sizes = ((try? node.attribute("qkv_hidden_sizes", as: [Int].self)) ?? nil) ?? [total / 3, total / 3, total / 3]
                var bounds: [Int] = [0]
                for size in sizes { bounds.append(bounds.last! + size) }
                let newSizes = (0 ..< 3).map { p in cols.filter { bounds[p] <= $0 && $0 < bounds[p + 1] }.count }
                node.setAttribute("num_heads", .int(Int64(heads * newSizes[0] / max(sizes[0], 1))))
                if node[attribute: "qkv_hidden_sizes"] != nil { node.setAttribute("qkv_hidden_sizes", .ints(newSizes.map(Int64.init))) }
            case ("com.microsoft", "GroupQueryAttention") where node.inputs.count < 2 || node.inputs[1] == nil:
                // Packed [q | k | v]: count the kept features of each part.
                guard let q = node.inputs[0], let k = kept[ObjectIdentifier(q)]?.axes[2], let size = q.type?.shape?.dims[2].value,
                    let h = int(node, "num_heads"), let kv = int(node, "kv_num_heads"), h + 2 * kv > 0
                else { continue }
                let d = size / (h + 2 * kv)
                node.setAttribute("num_heads", .int(Int64(k.filter { $0 < h * d }.count / d)))
                node.setAttribute("kv_num_heads", .int(Int64(k.filter { h * d <= $0 && $0 < (h + kv) * d }.count / d)))
            case ("com.microsoft", "MultiHeadAttention"), ("com.microsoft", "GroupQueryAttention"):
                scaled(node, "num_heads", input: 0, axis: 2)
                scaled(node, "kv_num_heads", input: 1, axis: 2)
            case ("", "Attention") where rank == 3:
                scaled(node, "q_num_heads", input: 0, axis: 2)
                scaled(node, "kv_num_heads", input: 1, axis: 2)
            case ("", "GroupNormalization"):
                scaled(node, "num_groups", input: 0, axis: 1)
            case ("com.microsoft", "GroupNorm"):
                scaled(node, "groups", input: 0, axis: int(node, "channels_last") == 0 ? 1 : rank - 1)
            case ("", "RotaryEmbedding"), ("com.microsoft", "RotaryEmbedding"):
                if rank == 3 { scaled(node, "num_heads", input: 0, axis: 2) }
            default:
                continue
            }
        }
    }
}
