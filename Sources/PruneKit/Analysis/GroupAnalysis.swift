import PruneIR

/// The pruning groups of a model (after Torch-Pruning's DepGraph, on the ONNX graph).
///
/// The analysis starts at every MAC-bearing node with a constant weight (Conv, ConvTranspose,
/// MatMul, Gemm) and follows the output channel axis through the graph, forward and backward,
/// one rule per op (``GroupBuilder``). Every index of every axis it reaches is an element of a
/// union-find; ops unite elements that must go together (a bias with its channel, a residual `Add`
/// with both operands, a Q row with its head). The classes are the units, the connected axes
/// are a group. Ops without a rule close a group off (it is reported, blocked, never pruned).
///
/// ```swift
/// let analysis = PruningGroups.analyze(model)
/// for g in analysis.groups { print(g.kind, g.name, g.unitCount, g.params) }
/// ```
public struct PruningGroups {
    /// Groups that may be pruned, in model order.
    public let groups: [PruningGroup]
    /// Groups the analysis had to close off, with the reason.
    public let blocked: [PruningGroup]
    /// Residual blocks that can be skipped as a whole.
    public let blocks: [ResidualBlock]

    /// Analyses `model` (main graph). Shape inference runs first, so value types get filled in.
    ///
    /// - Parameter queryHeads: make the query heads of grouped-query attention units of their own
    ///   (``GroupKind/queryHeads``) instead of kv groups. A model whose masks were set per query
    ///   head is analysed that way whatever this says, so that folding sees the masks as they were set.
    public static func analyze(_ model: Model, queryHeads: Bool = false) -> PruningGroups {
        let (_, constants) = ShapeInference().runCollectingConstants(on: model)
        let all = GroupBuilder.groups(of: model, constants: constants, queryHeads: queryHeads).groups
        return PruningGroups(
            groups: all.filter(\.isPrunable), blocked: all.filter { !$0.isPrunable },
            blocks: ResidualBlock.find(in: model))
    }

    /// Analyses `model` for a target of `kinds`: with query-head units when `kinds` names
    /// ``GroupKind/queryHeads``.
    public static func analyze(_ model: Model, for kinds: Set<GroupKind>) -> PruningGroups {
        analyze(model, queryHeads: kinds.contains(.queryHeads))
    }

    /// Prunable groups of the given kinds.
    public func groups(of kinds: Set<GroupKind>) -> [PruningGroup] {
        groups.filter { kinds.contains($0.kind) }
    }
}

/// The closure engine behind ``PruningGroups``: sites (tensor axes), a union-find over their
/// indices, and a union-find over the sites themselves (the groups).
final class GroupBuilder {
    enum SiteKey: Hashable {
        case activation(ObjectIdentifier, Int)
        case parameter(ObjectIdentifier, Int, Int)
    }

    struct Site {
        let value: Value
        /// For parameters: the node reading the constant, and which input.
        let node: Node?
        let input: Int
        let axis: Int
        let size: Int
        /// First element id.
        let base: Int
    }

    /// "Axis `site` has `dim(source, sourceAxis) * times / over` elements", from a computed shape.
    struct ShapeCheck {
        let site: Int
        let node: Node
        let source: Value
        let sourceAxis: Int
        let times: Int
        let over: Int
    }

    /// "Input `input` of `node` is a scalar that counts the units of `site`'s group" (a head count
    /// that shape arithmetic divides by); valid when `source`'s axis is in the group too.
    struct CountConstant {
        let site: Int
        let node: Node
        let input: Int
        let source: Value?
        let sourceAxis: Int
    }

    enum Port: Hashable {
        case input(Int)
        case output(Int)
    }

    struct Visit: Hashable {
        let node: ObjectIdentifier
        let site: Int
    }

    let model: Model
    let graph: Graph
    let constants: KnownIntegers
    let opset: Int
    let graphOutputs: Set<ObjectIdentifier>

    var sites: [Site] = []
    var siteIndex: [SiteKey: Int] = [:]
    var elementParent: [Int32] = []
    var siteParent: [Int] = []
    /// Why a group is closed, by site (read at the component's root after merging).
    var blockReason: [Int: String] = [:]
    /// Sites whose axis a Reshape splits, the input's features grouped on an output axis (an
    /// attention head layout); a merge, as a Flatten after a conv, does not count.
    var regrouped: Set<Int> = []
    /// Sites tied into normalization groups (GroupNormalization, or its Reshape + InstanceNorm form).
    var normGroups: Set<Int> = []
    /// Sites whose axis counts attention heads (one index per head), with that count: a reshape's
    /// head axis, or the query side of a fused attention op. A group's largest is its query heads.
    var headAxes: [Int: Int] = [:]
    /// Contractions that consume a site (the next layer's input channels): gates go there.
    var absorbing: [(site: Int, node: Node)] = []
    /// Per-use cuts of repeated keys/values (query-head units): the group they end is `queryHeads`.
    var repeatCuts: Set<Int> = []
    var dataFree: [ObjectIdentifier: Bool] = [:]
    /// Sizes of virtual sites (see ``shareVirtualSize(from:to:_:)``): axes whose dim is a symbol.
    var virtualSizes: [SiteKey: Int] = [:]
    /// Shape elements computed from another tensor's size (``ShapeSource``): valid only if that
    /// tensor's axis ends up in the same group with matching unit sizes; checked per group.
    var shapeChecks: [ShapeCheck] = []
    var countConstants: [CountConstant] = []
    var visited: Set<Visit> = []
    var queue: [Int] = []

    /// Runs the closure and extracts the groups; a kv-group analysis whose masks differ inside a
    /// unit (they were set per query head) runs again with query-head units.
    static func groups(of model: Model, constants: KnownIntegers, queryHeads: Bool) -> (builder: GroupBuilder, groups: [PruningGroup]) {
        let builder = GroupBuilder(model: model, constants: constants, queryHeads: queryHeads)
        builder.build()
        let groups = builder.extractGroups()
        if !queryHeads, groups.contains(where: { $0.kind == .heads && $0.unitsAreKVGroups && $0.hasMixedMasks }) {
            return Self.groups(of: model, constants: constants, queryHeads: true)
        }
        return (builder, groups)
    }

    /// Query heads are units (a repeat of keys/values is cut per use instead of followed).
    let queryHeads: Bool

    init(model: Model, constants: KnownIntegers, queryHeads: Bool = false) {
        self.queryHeads = queryHeads
        self.model = model
        self.graph = model.graph
        self.constants = constants
        self.opset = Int(model.opsetVersion() ?? 21)
        self.graphOutputs = Set(model.graph.outputs.map(ObjectIdentifier.init))
    }

    // MARK: Building

    /// Seeds every weight-bearing layer's output channel axis and runs the closure.
    func build() {
        for node in graph.nodes {
            guard let (value, axis) = seed(of: node) else { continue }
            if siteIndex[.activation(ObjectIdentifier(value), axis)] != nil { continue }
            guard let s = activationSite(value, axis) else { continue }
            drain()
            _ = s
        }
    }

    /// The output axis a MAC-bearing node with a constant weight produces channels on.
    func seed(of node: Node) -> (Value, Int)? {
        guard let out = node.outputs.first, let rank = rankOf(out) else { return nil }
        func constant(_ i: Int) -> Bool { node.inputs.count > i && node.inputs[i]?.constantValue != nil }
        if node.opType.canonicalDomain == "com.microsoft" {
            // The fused Attention's packed QKV projection: its output features are the heads'.
            return node.opType.name == "Attention" && constant(1) && rank == 3 ? (out, 2) : nil
        }
        guard node.opType.canonicalDomain.isEmpty else { return nil }
        switch node.opType.name {
        case "Conv", "ConvTranspose":
            return constant(1) && rank >= 3 ? (out, 1) : nil
        case "MatMul":
            guard constant(1), let b = node.inputs[1], rankOf(b) == 2 else { return nil }
            return (out, rank - 1)
        case "Gemm":
            return constant(1) && rank == 2 ? (out, 1) : nil
        case "Einsum":
            // A dense layer written as Einsum: the weight's letter that reaches the output and is
            // not the activation's ("bsd,df->bsf": f).
            guard node.inputs.count == 2, let (terms, outTerm) = GroupBuilder.einsumTerms(node), terms.count == 2 else { return nil }
            for (w, x) in [(1, 0), (0, 1)] where constant(w) && !constant(x) {
                if let l = terms[w].first(where: { outTerm.contains($0) && !terms[x].contains($0) }), let a = outTerm.firstIndex(of: l) {
                    return (out, a)
                }
            }
            return nil
        default:
            return nil
        }
    }

    func drain() {
        while let s = queue.popLast() { process(s) }
    }

    /// Follows an activation axis to its producer and its consumers.
    func process(_ s: Int) {
        let v = sites[s].value
        let id = ObjectIdentifier(v)
        if graphOutputs.contains(id) { block(s, "it reaches the graph output '\(v.name)'") }
        if let p = v.producer {
            visit(p, s, .output(v.outputIndex))
        } else {
            block(s, "it reaches the graph input '\(v.name)'")
        }
        for use in v.uses {
            if use.node.graph !== graph {
                block(s, "'\(v.name)' is read inside a subgraph")
                continue
            }
            visit(use.node, s, .input(use.inputIndex))
        }
    }

    func visit(_ node: Node, _ s: Int, _ port: Port) {
        guard visited.insert(Visit(node: ObjectIdentifier(node), site: s)).inserted else { return }
        applyRule(node, s, port)
    }

    // MARK: Sites

    func rankOf(_ v: Value) -> Int? { v.type?.shape?.rank ?? v.constantValue?.shape.count }

    func dims(_ v: Value) -> [Dim]? {
        if let t = v.constantValue { return t.shape.map { .known($0) } }
        return v.type?.shape?.dims
    }

    func dim(_ v: Value, _ axis: Int) -> Int? {
        guard let d = dims(v), axis >= 0, axis < d.count else { return nil }
        return d[axis].value ?? virtualSizes[.activation(ObjectIdentifier(v), axis)]
    }

    /// Whether input `i` of `node` is a constant that this use may slice (not a graph input).
    func isConstantOperand(_ node: Node, _ i: Int) -> Bool {
        guard i < node.inputs.count, let v = node.inputs[i] else { return false }
        return v.constantValue != nil && !graph.inputs.contains { $0 === v }
    }

    /// The site of an activation axis, made (and queued) on first use; `nil` when the size is unknown.
    func activationSite(_ v: Value, _ axis: Int) -> Int? {
        let key = SiteKey.activation(ObjectIdentifier(v), axis)
        if let s = siteIndex[key] { return s }
        guard let n = dim(v, axis) ?? virtualSizes[key], n > 0 else { return nil }
        let s = addSite(key, Site(value: v, node: nil, input: 0, axis: axis, size: n, base: elementParent.count))
        queue.append(s)
        return s
    }

    /// The symbolic dim (`4*batch`) of `v` on `axis`, if it is one.
    func symbol(_ v: Value, _ axis: Int) -> String? {
        guard let d = dims(v), axis >= 0, axis < d.count, case .symbol(let name) = d[axis] else { return nil }
        return name
    }

    /// Heads merged into the batch axis (`[b, H, s, d] → [b·H, s, d]`, DeBERTa): the merged axis has
    /// a symbolic size, but its index modulo H is the head. Such an axis is a *virtual* site of H
    /// elements; this lets `v`'s axis, whose dim is the same symbol as the site's, be one too.
    func shareVirtualSize(from s: Int, to v: Value, _ axis: Int) {
        let key = SiteKey.activation(ObjectIdentifier(v), axis)
        guard siteIndex[key] == nil, dim(v, axis) == nil, let a = symbol(sites[s].value, sites[s].axis), symbol(v, axis) == a else { return }
        virtualSizes[key] = sites[s].size
    }

    /// The site of one use of a constant, on `axis`.
    func parameterSite(_ node: Node, _ input: Int, _ axis: Int) -> Int? {
        let key = SiteKey.parameter(ObjectIdentifier(node), input, axis)
        if let s = siteIndex[key] { return s }
        guard let v = node.inputs[input], let n = dim(v, axis), n > 0 else { return nil }
        return addSite(key, Site(value: v, node: node, input: input, axis: axis, size: n, base: elementParent.count))
    }

    func addSite(_ key: SiteKey, _ site: Site) -> Int {
        let s = sites.count
        sites.append(site)
        siteIndex[key] = s
        siteParent.append(s)
        let start = Int32(elementParent.count)
        elementParent.append(contentsOf: (0 ..< Int32(site.size)).map { start + $0 })
        return s
    }

    /// The site of input `i` of `node` on `axis`: a parameter site for constants, and for keys or
    /// values repeated for query heads where those are units (cut per use by a Gather on fold).
    func operand(_ node: Node, _ i: Int, _ axis: Int) -> Int? {
        guard i < node.inputs.count, let v = node.inputs[i] else { return nil }
        if isConstantOperand(node, i) { return parameterSite(node, i, axis) }
        if let kv = repeatedHeads(v, axis), queryHeads || kv == 1 {
            let s = parameterSite(node, i, axis)
            if let s { repeatCuts.insert(s) }
            return s
        }
        // A score-shaped table computed from constants alone (MPNet's relative position bias, one
        // [1, H, s, s] for every layer) is cut per reader, like a shared weight: each layer keeps
        // its own heads; so are integer index tables (DeBERTa's relative positions, expanded to
        // batch × heads). Token embeddings are also free of data by this test, hence the rank/type.
        if v.uses.count > 1, rankOf(v) == 4 || v.type?.elementType?.isFloatingPoint == false, isDataFree(v) {
            return parameterSite(node, i, axis)
        }
        // A constant only reshaped, cast or transposed on its way in (paddle2onnx adds conv biases
        // as `Add(conv, Reshape(Constant[C], [1, C, 1, 1]))`) is a weight like any other: cut per use.
        if isReshapedConstant(v) { return parameterSite(node, i, axis) }
        return activationSite(v, axis)
    }

    /// Whether `v` is computed without any layer with weights and without a floating-point graph
    /// input: from constants, shapes and token indices only.
    /// Whether `v` is a constant passed through layout ops only (Reshape, Unsqueeze, Squeeze,
    /// Flatten, Transpose, Cast) whose other inputs are constants too.
    func isReshapedConstant(_ v: Value) -> Bool {
        var value = v
        var steps = 0
        while let p = value.producer, steps < 8 {
            guard p.graph === graph, ["Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Cast"].contains(p.opType.name),
                  let data = p.inputs.first ?? nil, p.inputs.dropFirst().allSatisfy({ $0 == nil || $0!.constantValue != nil })
            else { return false }
            if data.constantValue != nil { return !graph.inputs.contains { $0 === data } && v.type?.elementType?.isFloatingPoint == true }
            value = data
            steps += 1
        }
        return false
    }

    func isDataFree(_ v: Value) -> Bool {
        if let known = dataFree[ObjectIdentifier(v)] { return known }
        dataFree[ObjectIdentifier(v)] = false  // cycles and deep chains count as data
        var result: Bool
        if v.constantValue != nil {
            result = true
        } else if let p = v.producer {
            result = p.graph === graph && p.subgraphs.isEmpty && seed(of: p) == nil
                && p.inputs.allSatisfy { $0 == nil || isDataFree($0!) }
        } else {
            result = !(v.type?.elementType?.isFloatingPoint ?? true)
        }
        dataFree[ObjectIdentifier(v)] = result
        return result
    }

    /// When `axis` of `v` is heads repeated from fewer heads (torch's repeat_kv: a size-1 axis
    /// broadcast by an Expand and merged into the head axis by a Reshape, maybe behind
    /// Transposes), the number of heads before the repeat.
    func repeatedHeads(_ v: Value, _ axis: Int, depth: Int = 0) -> Int? {
        guard depth < 8, let p = v.producer, p.opType.canonicalDomain.isEmpty, let x = p.inputs.first ?? nil else { return nil }
        switch p.opType.name {
        case "Transpose":
            guard let rank = rankOf(v) else { return nil }
            let perm = ((try? p.attribute("perm", as: [Int].self)) ?? nil) ?? Array((0 ..< rank).reversed())
            return axis < perm.count ? repeatedHeads(x, perm[axis], depth: depth + 1) : nil
        case "Reshape":
            guard let e = x.producer, e.opType.name == "Expand", e.opType.canonicalDomain.isEmpty, let ex = e.inputs.first ?? nil,
                let inDims = dims(ex), let midDims = dims(x), let outDims = dims(v), inDims.count == midDims.count,
                let covered = ReshapeAxisMap.covered(from: outDims, to: midDims, axis: axis)
            else { return nil }
            // Among the merged axes, one the Expand broadcasts from 1; the others give the kv heads.
            guard covered.contains(where: { inDims[$0] == .known(1) && (midDims[$0].value ?? 0) > 1 }) else { return nil }
            var kv = 1
            for c in covered where inDims[c] != .known(1) {
                guard let n = inDims[c].value else { return nil }
                kv *= n
            }
            return kv
        default:
            return nil
        }
    }

    // MARK: Union-find

    func findElement(_ e: Int) -> Int {
        var x = Int32(e)
        while elementParent[Int(x)] != x {
            elementParent[Int(x)] = elementParent[Int(elementParent[Int(x)])]
            x = elementParent[Int(x)]
        }
        return Int(x)
    }

    func unionElements(_ a: Int, _ b: Int) {
        let ra = findElement(a), rb = findElement(b)
        if ra != rb { elementParent[max(ra, rb)] = Int32(min(ra, rb)) }
    }

    func findSite(_ s: Int) -> Int {
        var x = s
        while siteParent[x] != x {
            siteParent[x] = siteParent[siteParent[x]]
            x = siteParent[x]
        }
        return x
    }

    func unionSites(_ a: Int, _ b: Int) {
        let ra = findSite(a), rb = findSite(b)
        guard ra != rb else { return }
        let (root, child) = (min(ra, rb), max(ra, rb))
        siteParent[child] = root
        if blockReason[root] == nil, let r = blockReason[child] { blockReason[root] = r }
        if regrouped.contains(child) { regrouped.insert(root) }
        if normGroups.contains(child) { normGroups.insert(root) }
    }

    // MARK: Links

    /// Ties `count` indices one to one: `a[offsetA + i]` with `b[offsetB + i]`.
    func linkIdentity(_ a: Int, _ b: Int, offsetA: Int = 0, offsetB: Int = 0, count: Int? = nil) {
        let n = count ?? min(sites[a].size - offsetA, sites[b].size - offsetB)
        guard offsetA + n <= sites[a].size, offsetB + n <= sites[b].size else {
            block(a, "sizes do not match between '\(sites[a].value.name)' and '\(sites[b].value.name)'")
            unionSites(a, b)
            return
        }
        unionSites(a, b)
        let ba = sites[a].base + offsetA, bb = sites[b].base + offsetB
        for i in 0 ..< n { unionElements(ba + i, bb + i) }
    }

    /// Ties every index `j` of `fine` to index `j / factor` of `coarse` (a head's rows to its head);
    /// `headSplit` when `fine` is the reshape's input.
    func linkCoarse(fine: Int, coarse: Int, factor: Int, headSplit: Bool) {
        guard factor > 0, sites[fine].size == sites[coarse].size * factor else {
            block(fine, "a reshape of '\(sites[fine].value.name)' does not split evenly")
            unionSites(fine, coarse)
            return
        }
        unionSites(fine, coarse)
        if headSplit {
            regrouped.insert(findSite(fine))
            headAxes[coarse] = sites[coarse].size
        }
        let bf = sites[fine].base, bc = sites[coarse].base
        for j in 0 ..< sites[fine].size { unionElements(bf + j, bc + j / factor) }
    }

    /// Links `s` to input `i` (or an output) of `node` on `axis`, one to one; closes the group when
    /// that axis has an unknown size.
    func link(_ s: Int, _ node: Node, input i: Int, axis: Int, offsetA: Int = 0, offsetB: Int = 0, count: Int? = nil) {
        if i < node.inputs.count, let v = node.inputs[i] { shareVirtualSize(from: s, to: v, axis) }
        guard let t = operand(node, i, axis) else {
            return block(s, "the size of axis \(axis) of '\(node.inputs[i]?.name ?? "?")' (input of \(node.displayName)) is unknown")
        }
        linkIdentity(s, t, offsetA: offsetA, offsetB: offsetB, count: count)
    }

    func link(_ s: Int, _ node: Node, output k: Int, axis: Int, offsetA: Int = 0, offsetB: Int = 0, count: Int? = nil) {
        if k < node.outputs.count { shareVirtualSize(from: s, to: node.outputs[k], axis) }
        guard k < node.outputs.count, let t = activationSite(node.outputs[k], axis) else {
            return block(s, "the size of axis \(axis) of the output of \(node.displayName) is unknown")
        }
        linkIdentity(s, t, offsetA: offsetA, offsetB: offsetB, count: count)
    }

    func block(_ s: Int, _ reason: String) {
        let r = findSite(s)
        if blockReason[r] == nil { blockReason[r] = reason }
    }
}

