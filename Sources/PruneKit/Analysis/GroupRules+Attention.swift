import PruneIR

/// Heads of fused attention ops: onnxruntime's `com.microsoft` Attention (packed QKV weight),
/// MultiHeadAttention and GroupQueryAttention, and the standard `Attention` of opset 23. The head
/// structure is in the op's attributes instead of Reshapes, so the rule unites, per head, the
/// slices of every operand that belong to it: Q/K/V features, the packed weight's columns and
/// bias, and the output's features. With grouped-query attention a unit is a kv head together
/// with the query heads that read it.
extension GroupBuilder {
    static let fusedAttentionOps: Set<String> = [
        "com.microsoft.Attention", "com.microsoft.MultiHeadAttention", "com.microsoft.GroupQueryAttention", "Attention",
    ]

    /// A run of one site's axis that holds `heads` heads of `width` elements each, from `offset`;
    /// head `h` of the run belongs to unit `unit(h)`.
    struct HeadRun {
        let site: Int
        let offset: Int
        let heads: Int
        let width: Int
        let unit: (Int) -> Int
    }

    func fusedAttentionRule(_ node: Node, _ s: Int, _ port: Port, op: String) {
        func int(_ name: String) -> Int? { (try? node.attribute(name, as: Int.self)) ?? nil }
        func present(_ i: Int) -> Bool { i < node.inputs.count && node.inputs[i] != nil }
        for k in 1 ..< node.outputs.count where node.outputs[k].hasUses || graphOutputs.contains(ObjectIdentifier(node.outputs[k])) {
            return block(s, "output \(k) of \(node.displayName) (a kv cache or scores) is used")
        }
        switch op {
        case "com.microsoft.Attention":
            // input [B, S, hidden] · packed weight [hidden, q + k + v] (+ bias), num_heads.
            guard let heads = int("num_heads"), heads > 0, let w = node.inputs[1], let wd = dims(w), wd.count == 2,
                let cols = wd[1].value
            else { return block(s, "\(node.displayName) has an unknown weight or head count") }
            if case .input(0) = port {
                guard sites[s].axis == 2 else { return block(s, "\(node.displayName) mixes axis \(sites[s].axis)") }
                absorbing.append((s, node))
                return link(s, node, input: 1, axis: 0)
            }
            if present(4) || present(6) { return block(s, "\(node.displayName) reads a kv cache") }
            if present(5), perHead(node.inputs[5], axis: 1) { return block(s, "\(node.displayName) has a per-head attention bias") }
            let sizes = ((try? node.attribute("qkv_hidden_sizes", as: [Int].self)) ?? nil) ?? [cols / 3, cols / 3, cols / 3]
            guard sizes.count == 3, sizes.reduce(0, +) == cols, sizes.allSatisfy({ $0 % heads == 0 }),
                let out = activationSite(node.outputs[0], 2), let ws = parameterSite(node, 1, 1)
            else { return block(s, "\(node.displayName) has a weight that does not split into \(int("num_heads") ?? 0) heads") }
            var runs = [HeadRun(site: out, offset: 0, heads: heads, width: sizes[2] / heads, unit: { $0 })]
            var offset = 0
            for size in sizes {
                runs.append(HeadRun(site: ws, offset: offset, heads: heads, width: size / heads, unit: { $0 }))
                if present(2), let bs = parameterSite(node, 2, 0) {
                    runs.append(HeadRun(site: bs, offset: offset, heads: heads, width: size / heads, unit: { $0 }))
                }
                offset += size
            }
            uniteHeads(runs, from: s, node: node)
        case "com.microsoft.MultiHeadAttention", "com.microsoft.GroupQueryAttention", "Attention":
            let gqa = op == "com.microsoft.GroupQueryAttention"
            let standard = op == "Attention"
            let qHeads = standard ? int("q_num_heads") : int("num_heads")
            let kvHeads = standard ? int("kv_num_heads") : (gqa ? int("kv_num_heads") : qHeads)
            guard let q = node.inputs[0], let rq = rankOf(q) else { return block(s, "rank unknown at \(node.displayName)") }
            let headAxis = rq == 4 ? 1 : 2
            guard sites[s].axis == headAxis else { return block(s, "\(node.displayName) mixes axis \(sites[s].axis)") }
            let cacheInputs = standard ? [4, 5] : (gqa ? [3, 4] : [6, 7])
            if cacheInputs.contains(where: present) { return block(s, "\(node.displayName) reads a kv cache") }
            let packed = !standard && !present(1) && !present(2)
            if !standard, present(1) != present(2) || (!present(1) && !gqa) {
                return block(s, "\(node.displayName) takes packed K and V, which the analysis does not split")
            }
            let maskInput = standard ? 3 : (gqa ? -1 : 5)
            if maskInput >= 0, present(maskInput), perHead(node.inputs[maskInput], axis: -3) {
                return block(s, "\(node.displayName) has a per-head attention bias or mask")
            }
            let (hq, hkv): (Int, Int)
            if rq == 4 {
                guard let a = dim(q, 1), let k = node.inputs[1], let b = dim(k, 1) else { return block(s, "\(node.displayName) has unknown head counts") }
                (hq, hkv) = (a, b)
            } else {
                guard let a = qHeads, let b = kvHeads else { return block(s, "\(node.displayName) has no head-count attributes") }
                (hq, hkv) = (a, b)
            }
            guard hq > 0, hkv > 0, hq % hkv == 0 else { return block(s, "\(node.displayName) has \(hq) query heads over \(hkv) kv heads") }
            let rep = hq / hkv
            var runs: [HeadRun] = []
            if packed {
                // GroupQueryAttention with one packed input: [q | k | v] features, head size D.
                guard let site = activationSite(q, headAxis), sites[site].size % (hq + 2 * hkv) == 0 else {
                    return block(s, "the packed QKV of \(node.displayName) does not split into \(hq) + 2 × \(hkv) heads")
                }
                let d = sites[site].size / (hq + 2 * hkv)
                runs.append(HeadRun(site: site, offset: 0, heads: hq, width: d, unit: { $0 / rep }))
                runs.append(HeadRun(site: site, offset: hq * d, heads: hkv, width: d, unit: { $0 }))
                runs.append(HeadRun(site: site, offset: (hq + hkv) * d, heads: hkv, width: d, unit: { $0 }))
            }
            for (i, n, toUnit) in [(0, hq, rep), (1, hkv, 1), (2, hkv, 1)] where !packed {
                // operand(): keys/values repeated before the op are cut per use for query-head units.
                guard node.inputs[i] != nil, let site = operand(node, i, headAxis), sites[site].size % n == 0 else {
                    return block(s, "input \(i) of \(node.displayName) does not split into \(n) heads")
                }
                runs.append(HeadRun(site: site, offset: 0, heads: n, width: sites[site].size / n, unit: { $0 / toUnit }))
            }
            guard let out = activationSite(node.outputs[0], headAxis), sites[out].size % hq == 0 else {
                return block(s, "the output of \(node.displayName) does not split into \(hq) heads")
            }
            runs.append(HeadRun(site: out, offset: 0, heads: hq, width: sites[out].size / hq, unit: { $0 / rep }))
            if op == "com.microsoft.MultiHeadAttention", present(3) {
                guard !packed else { return block(s, "\(node.displayName) takes packed QKV") }
                guard let bs = operand(node, 3, 0), runs[0...2].map({ sites[$0.site].size }).reduce(0, +) == sites[bs].size else {
                    return block(s, "the bias of \(node.displayName) does not match its Q, K and V")
                }
                var offset = 0
                for r in runs[0...2] {
                    runs.append(HeadRun(site: bs, offset: offset, heads: r.heads, width: r.width, unit: r.unit))
                    offset += sites[r.site].size
                }
            }
            uniteHeads(runs, from: s, node: node)
        default:
            block(s, "\(node.displayName) is not understood by the group analysis")
        }
    }

    /// Whether `value` (a bias or mask over `[..., heads, S, T]`) has more than one element on its
    /// head axis (`axis`, negative from the end).
    private func perHead(_ value: Value?, axis: Int) -> Bool {
        guard let value, let d = dims(value) else { return value != nil }
        let a = axis < 0 ? d.count + axis : axis
        guard a >= 0, a < d.count else { return false }
        return d[a].value != 1
    }

    /// Unites every element of every run with the other elements of its unit; the group's units
    /// are then heads (or kv groups).
    private func uniteHeads(_ runs: [HeadRun], from s: Int, node: Node) {
        var representative: [Int: Int] = [:]
        if let q = runs.max(by: { $0.heads < $1.heads }) { headAxes[q.site] = max(headAxes[q.site] ?? 0, q.heads) }
        for r in runs {
            guard r.offset + r.heads * r.width <= sites[r.site].size else {
                return block(s, "\(node.displayName) has operands whose sizes do not match its heads")
            }
            unionSites(s, r.site)
            for h in 0 ..< r.heads {
                let u = r.unit(h)
                let first = sites[r.site].base + r.offset + h * r.width
                let rep = representative[u] ?? first
                representative[u] = rep
                for e in first ..< first + r.width { unionElements(rep, e) }
            }
        }
        regrouped.insert(findSite(s))
    }
}
