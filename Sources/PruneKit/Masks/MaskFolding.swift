import PruneIR

/// Turns a masked model into a smaller one with the same outputs.
///
/// For every group with gates, a unit whose mask is 0 is removed from every slice of the group:
/// weights, biases and norm parameters are cut (a constant shared with another layer is copied
/// first), the channel dims of activations shrink, and the shape arithmetic that names a count
/// (`Reshape` targets, `Split` sizes, `Slice` bounds) is rewritten. Gates whose remaining values
/// are all 1 are deleted; other gates stay, cut to the kept units. A residual block whose gate is 0
/// becomes its skip path; what is left unused is removed.
public enum MaskFolding {
    /// What a fold did.
    public struct Summary: Sendable, Equatable {
        /// Groups that lost units.
        public var groups = 0
        /// Units removed, by kind.
        public var unitsRemoved: [GroupKind: Int] = [:]
        /// Gates deleted.
        public var gatesRemoved = 0
        /// Residual blocks removed.
        public var blocksRemoved = 0
    }

    /// Folds every mask of `model`.
    ///
    /// - Throws: ``MaskFoldError`` when a mask would remove every unit of a group, or sits on a
    ///   group the analysis cannot prune.
    @discardableResult
    public static func fold(_ model: Model) throws -> Summary {
        let graph = model.graph
        let (_, constants) = ShapeInference().runCollectingConstants(on: model)
        let (builder, groups) = GroupBuilder.groups(of: model, constants: constants, queryHeads: false)
        let names = NameScope(graph)
        var summary = Summary()

        var parameterCuts: [ParameterUse: [Int: [Int]]] = [:]
        var activationKept: [ObjectIdentifier: (value: Value, axes: [Int: [Int]])] = [:]
        var gateCuts: [(slice: GroupSlice, kept: [Int])] = []
        for g in groups {
            guard let masks = g.maskValues else { continue }
            guard g.isPrunable else { throw MaskFoldError.blockedGroup(g.name, reason: g.blockedReason ?? "") }
            let keep = masks.map { $0 != 0 }
            guard keep.contains(true) else { throw MaskFoldError.emptied(g.name, kind: g.kind) }
            // Name the activation (what a user sees in a viewer) before a weight.
            let emptied = g.slices.filter { sl in !sl.isMask && !sl.units.contains { keep[$0] } }
            if let sl = emptied.first(where: { !$0.isParameter }) ?? emptied.first {
                throw MaskFoldError.emptiedTensor(g.name, value: sl.value.name, kind: g.kind)
            }
            let removed = keep.filter { !$0 }.count
            if removed > 0 {
                summary.groups += 1
                summary.unitsRemoved[g.kind, default: 0] += removed
            }
            for (node, input) in g.unitCountConstants where removed > 0 {
                guard let old = node.inputs[input]?.constantValue else { continue }
                let count = Tensor(int64s: [Int64(keep.filter { $0 }.count)], shape: old.shape)
                let fresh = graph.addInitializer(old.dtype == .int32 ? Tensor(int32s: [Int32(keep.filter { $0 }.count)], shape: old.shape) : count,
                                                 name: names.fresh("\(node.inputs[input]!.name).kept"))
                node.setInput(fresh, at: input)
            }
            for sl in g.slices {
                let kept = sl.units.indices.filter { keep[sl.units[$0]] }
                if sl.isMask {
                    gateCuts.append((sl, kept))
                } else if case .parameter(let node, let input) = sl.target {
                    if kept.count < sl.size { parameterCuts[ParameterUse(node: node, input: input), default: [:]][sl.axis] = kept }
                } else if kept.count < sl.size {
                    let id = ObjectIdentifier(sl.value)
                    activationKept[id, default: (sl.value, [:])].axes[sl.axis] = kept
                }
            }
        }

        rewriteHeadCounts(activationKept, parameterCuts: parameterCuts, graph: graph)
        try cutParameters(parameterCuts, graph: graph, names: names)
        // A depthwise conv (the only grouped conv a group may pass through) keeps one group per channel.
        for (use, axes) in parameterCuts where use.input == 1 && use.node.opType == .conv {
            guard let kept = axes[0], let group = (try? use.node.attribute("group", as: Int.self)) ?? nil, group > 1 else { continue }
            use.node.setAttribute("group", .int(Int64(kept.count)))
        }
        try rewriteShapeArithmetic(activationKept, graph: graph, constants: constants, opset: builder.opset, names: names)
        for (value, axes) in activationKept.values {
            guard var dims = value.type?.shape?.dims, let dtype = value.type?.elementType else { continue }
            // A symbolic dim (heads merged with the batch) is left to shape inference.
            for (axis, kept) in axes where axis < dims.count && dims[axis].value != nil { dims[axis] = .known(kept.count) }
            value.type = .tensor(dtype, Shape(dims))
        }
        summary.gatesRemoved = try cutGates(gateCuts, graph: graph, names: names)
        summary.blocksRemoved = try foldBlockGates(graph)
        try DeadCode.eliminate(in: graph)
        ShapeInference().run(on: model)
        return summary
    }

    struct ParameterUse: Hashable {
        let node: Node
        let input: Int
        static func == (a: ParameterUse, b: ParameterUse) -> Bool { a.node === b.node && a.input == b.input }
        func hash(into h: inout Hasher) {
            h.combine(ObjectIdentifier(node))
            h.combine(input)
        }
    }

    /// Cuts each constant use; identical cuts of one constant share one new initializer, and a
    /// constant read only by this use is cut in place (it keeps its name).
    static func cutParameters(_ cuts: [ParameterUse: [Int: [Int]]], graph: Graph, names: NameScope) throws {
        struct CutKey: Hashable {
            let source: ObjectIdentifier
            let axes: [Int: [Int]]
        }
        var made: [CutKey: Value] = [:]
        var position: [ObjectIdentifier: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { position[ObjectIdentifier(n)] = i }
        let ordered = cuts.sorted { a, b in
            (position[ObjectIdentifier(a.key.node)] ?? 0, a.key.input) < (position[ObjectIdentifier(b.key.node)] ?? 0, b.key.input)
        }
        for (n, (use, axes)) in ordered.enumerated() {
            // The slices read each source weight once: its mapped pages need not stay resident.
            if n % 16 == 15 { MappedWeights.releaseResidentPages() }
            guard let source = use.node.inputs[use.input] else { continue }
            guard var t = source.constantValue else {
                try gatherForUse(use, axes: axes, graph: graph, names: names)
                continue
            }
            let key = CutKey(source: ObjectIdentifier(source), axes: axes)
            if let v = made[key] {
                use.node.setInput(v, at: use.input)
                continue
            }
            for axis in axes.keys.sorted() { t = try t.selecting(axes[axis]!, along: axis) }
            let soleReader = source.uses.count == 1 && source.initializer != nil && !graph.inputs.contains { $0 === source }
            if soleReader {
                graph.setInitializer(source, to: t)
                made[key] = source
            } else {
                let v = graph.addInitializer(t, name: names.fresh(source.name))
                use.node.setInput(v, at: use.input)
                made[key] = v
            }
        }
    }

    /// A computed value cut for one use (keys/values repeated for query heads): a `Gather` of the
    /// kept indices right before the reader.
    static func gatherForUse(_ use: ParameterUse, axes: [Int: [Int]], graph: Graph, names: NameScope) throws {
        guard var v = use.node.inputs[use.input] else { return }
        for (axis, kept) in axes.sorted(by: { $0.key < $1.key }) {
            let idx = graph.addInitializer(Tensor(int64s: kept.map(Int64.init), shape: [kept.count]), name: names.fresh("\(v.name).kept"))
            let gather = Node(OpType("Gather"), name: names.fresh("prunec.gather"), inputs: [v, idx], outputs: [names.fresh("\(v.name).gathered")],
                              attributes: [("axis", .int(Int64(axis)))])
            if let dtype = v.type?.elementType, var dims = v.type?.shape?.dims, axis < dims.count {
                dims[axis] = .known(kept.count)
                gather.outputs[0].type = .tensor(dtype, Shape(dims))
            }
            try graph.insert(gather, before: use.node)
            v = gather.outputs[0]
        }
        use.node.setInput(v, at: use.input)
    }

    /// Rewrites the counts that shrinking activations makes wrong: Reshape targets, Split sizes,
    /// Slice bounds.
    static func rewriteShapeArithmetic(_ kept: [ObjectIdentifier: (value: Value, axes: [Int: [Int]])], graph: Graph,
                                       constants: KnownIntegers, opset: Int, names: NameScope) throws {
        for node in graph.nodes where node.opType.canonicalDomain.isEmpty {
            switch node.opType.name {
            case "Reshape":
                guard let out = node.outputs.first, let axes = kept[ObjectIdentifier(out)]?.axes else { continue }
                for (axis, k) in axes.sorted(by: { $0.key < $1.key }) {
                    try ShapeConstants.setReshapeTarget(node, axis: axis, to: k.count, constants: constants, in: graph, names: names)
                }
            case "Expand":
                // A stored count equal to the input's size (not a broadcast 1) shrinks with it.
                guard let out = node.outputs.first, let axes = kept[ObjectIdentifier(out)]?.axes, let r = out.type?.shape?.rank,
                    node.inputs.count > 1, let shape = node.inputs[1], let length = shape.type?.shape?.dims.first?.value
                        ?? shape.constantValue?.elementCount
                else { continue }
                for (axis, k) in axes.sorted(by: { $0.key < $1.key }) where axis - (r - length) >= 0 {
                    try ShapeConstants.setReshapeTarget(node, axis: axis - (r - length), to: k.count, constants: constants, in: graph, names: names)
                }
            case "Split":
                try rewriteSplit(node, kept: kept, graph: graph, opset: opset, names: names)
            case "Slice":
                try rewriteSlice(node, kept: kept, graph: graph, constants: constants, opset: opset, names: names)
            default:
                continue
            }
        }
    }

    static func rewriteSplit(_ node: Node, kept: [ObjectIdentifier: (value: Value, axes: [Int: [Int]])], graph: Graph, opset: Int, names: NameScope) throws {
        guard let x = node.inputs.first ?? nil, let rank = x.type?.shape?.rank else { return }
        var axis = ((try? node.attribute("axis", as: Int.self)) ?? nil) ?? 0
        if axis < 0 { axis += rank }
        guard node.outputs.contains(where: { kept[ObjectIdentifier($0)]?.axes[axis] != nil }) else { return }
        var sizes: [Int64] = []
        for o in node.outputs {
            if let k = kept[ObjectIdentifier(o)]?.axes[axis] {
                sizes.append(Int64(k.count))
            } else if let d = o.type?.shape?.dims[axis].value {
                sizes.append(Int64(d))
            } else {
                throw MaskFoldError.shapeNotEditable(node.displayName, axis: axis)
            }
        }
        if opset >= 13 {
            let v = graph.addInitializer(Tensor(int64s: sizes, shape: [sizes.count]), name: names.fresh("\(node.outputs[0].name).split"))
            if node.inputs.count > 1 { node.setInput(v, at: 1) } else { node.appendInput(v) }
            node.removeAttribute("num_outputs")
        } else {
            node.setAttribute("split", .ints(sizes))
        }
    }

    static func rewriteSlice(_ node: Node, kept: [ObjectIdentifier: (value: Value, axes: [Int: [Int]])], graph: Graph,
                             constants: KnownIntegers, opset: Int, names: NameScope) throws {
        guard let x = node.inputs.first ?? nil, let axes = kept[ObjectIdentifier(x)]?.axes, let rank = x.type?.shape?.rank,
            let p = SliceParameters(node, rank: rank, opset: opset, constants: constants)
        else { return }
        var starts = p.starts, ends = p.ends
        var changed = false
        for (k, axis) in p.axes.enumerated() {
            guard let keptIdx = axes[axis], let n = x.type?.shape?.dims[axis].value else { continue }
            let (s, e) = SliceParameters.clamp(p.starts[k], p.ends[k], size: n)
            starts[k] = keptIdx.filter { $0 < s }.count
            ends[k] = p.ends[k] >= n ? p.ends[k] : keptIdx.filter { $0 < e }.count
            changed = true
        }
        guard changed else { return }
        if opset < 10 {
            node.setAttribute("starts", .ints(starts.map(Int64.init)))
            node.setAttribute("ends", .ints(ends.map(Int64.init)))
            return
        }
        // Bounds computed from the input's shape follow the new shape by themselves.
        for (i, values) in [(1, starts), (2, ends)] {
            guard let v = node.inputs[i], v.constantValue != nil else { continue }
            let t = graph.addInitializer(Tensor(int64s: values.map(Int64.init), shape: [values.count]), name: names.fresh(v.name))
            node.setInput(t, at: i)
        }
    }

    /// Cuts gates to the kept units and deletes those that are now all ones.
    static func cutGates(_ cuts: [(slice: GroupSlice, kept: [Int])], graph: Graph, names: NameScope) throws -> Int {
        var removed = 0
        for (slice, kept) in cuts {
            guard let gate = slice.node, gate.graph === graph, let mask = slice.value.initializer else { continue }
            let cut = try mask.selecting(kept, along: 0)
            if (try? cut.floats())?.allSatisfy({ $0 == 1 }) == true, case .parameter(_, let input) = slice.target {
                guard let x = gate.inputs[1 - input] else { continue }
                gate.outputs[0].replaceAllUses(with: x)
                if graph.outputs.contains(where: { $0 === gate.outputs[0] }) { continue }
                try graph.remove(gate)
                removed += 1
            } else if case .parameter(let node, let input) = slice.target {
                node.setInput(graph.addInitializer(cut, name: names.fresh(slice.value.name)), at: input)
            }
        }
        return removed
    }

    /// Residual-block gates (scalar masks): 0 turns the block's `Add` into `Identity` of the skip
    /// path (its output keeps its name); 1 deletes the gate.
    static func foldBlockGates(_ graph: Graph) throws -> Int {
        var removed = 0
        for gate in graph.nodes where gate.opType == .mul && gate.inputs.count == 2 {
            guard let m = gate.inputs[1], Masks.isMask(m), let t = m.initializer, t.elementCount == 1, let v = try? t.floats().first,
                let x = gate.inputs[0]
            else { continue }
            let out = gate.outputs[0]
            if v == 1 {
                out.replaceAllUses(with: x)
                if !graph.outputs.contains(where: { $0 === out }) { try graph.remove(gate) }
            } else if v == 0 {
                for use in out.uses where use.node.opType == .add && use.node.inputs.count == 2 {
                    if try ResidualBlock(add: use.node, skipInput: 1 - use.inputIndex, branch: [], params: 0, macs: 0).remove() { removed += 1 }
                }
            }
        }
        return removed
    }
}

/// Why masks could not be folded.
public enum MaskFoldError: Error, CustomStringConvertible {
    case emptied(String, kind: GroupKind)
    case blockedGroup(String, reason: String)
    case shapeNotEditable(String, axis: Int)
    case emptiedTensor(String, value: String, kind: GroupKind)

    public var description: String {
        switch self {
        case .emptied(let g, let kind): return "the masks remove every \(kind == .heads ? "head" : kind == .neurons ? "neuron" : "channel") of group '\(g)'; at least one must stay"
        case .blockedGroup(let g, let r): return "group '\(g)' has gates but cannot be pruned: \(r)"
        case .shapeNotEditable(let n, let axis): return "the count at axis \(axis) of \(n) is computed and cannot be rewritten"
        case .emptiedTensor(let g, let v, let kind):
            return "the masks of group '\(g)' remove every \(kind == .heads ? "head" : kind == .neurons ? "neuron" : "channel") of '\(v)', "
                + "which holds only some of the group's units; keep one of them (UnitSelection does, given the group's partialUnitSets)"
        }
    }
}
