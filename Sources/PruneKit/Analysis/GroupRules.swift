import PruneIR

/// One rule per op: how an axis entering a node (through an input or an output) relates to the
/// node's other inputs and outputs. A rule either links axes, records the node as the consumer
/// that contracts the axis, or closes the group with a reason.
extension GroupBuilder {
    static let elementwiseUnary: Set<String> = [
        "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf", "Gelu", "Elu", "Selu", "Celu",
        "Softplus", "Softsign", "Mish", "Abs", "Neg", "Sqrt", "Exp", "Log", "Reciprocal", "Sin", "Cos", "Floor",
        "Ceil", "Round", "Sign", "Cast", "CastLike", "Identity", "Dropout", "Clip", "Not", "IsNaN", "IsInf",
        "ThresholdedRelu", "Swish",
    ]
    static let elementwiseBroadcast: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Where", "PRelu", "Equal", "Less", "Greater",
        "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Mod", "BitShift",
    ]
    /// onnxruntime's fused element-wise ops: a bias (and skip) added along the last axis.
    static let contribElementwise: Set<String> = [
        "com.microsoft.BiasGelu", "com.microsoft.FastGelu", "com.microsoft.BiasAdd", "com.microsoft.Gelu",
        "com.microsoft.QuickGelu",
    ]
    /// Normalizations over the last axis: LayerNorm/RMSNorm and onnxruntime's fused forms (input 1
    /// of the Skip forms is the residual added first).
    static let skipNorms: Set<String> = ["com.microsoft.SkipLayerNormalization", "com.microsoft.SkipSimplifiedLayerNormalization"]
    static let lastAxisNorms: Set<String> = [
        "LayerNormalization", "RMSNormalization", "SimplifiedLayerNormalization", "com.microsoft.SimplifiedLayerNormalization",
        "com.microsoft.SkipLayerNormalization", "com.microsoft.SkipSimplifiedLayerNormalization",
    ]
    static let rotaryOps: Set<String> = ["RotaryEmbedding", "com.microsoft.RotaryEmbedding"]
    static let reshapeLike: Set<String> = ["Reshape", "Flatten", "Squeeze", "Unsqueeze"]
    static let pools: Set<String> = ["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"]
    static let reductions: Set<String> = [
        "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
        "ReduceLogSumExp", "ReduceSumSquare",
    ]

    func applyRule(_ node: Node, _ s: Int, _ port: Port) {
        let axis = sites[s].axis
        let op = node.opType.canonicalDomain.isEmpty ? node.opType.name : node.opType.description
        // A value that only feeds shape arithmetic does not constrain the channels.
        if op == "Shape" || op == "Size" { return }
        if case .input(let i) = port, i > 0, !["Concat", "Sum", "Mean", "Max", "Min", "Where"].contains(op),
            !GroupBuilder.elementwiseBroadcast.contains(op), !["MatMul", "Gemm"].contains(op),
            !GroupBuilder.fusedAttentionOps.contains(op), !GroupBuilder.skipNorms.contains(op) || i != 1,
            op != "GatherElements" || i != 1, op != "Einsum"
        {
            return block(s, "'\(sites[s].value.name)' is input \(i) of \(node.displayName) (\(op))")
        }
        switch op {
        case _ where GroupBuilder.elementwiseUnary.contains(op):
            for k in 1 ..< node.outputs.count where node.outputs[k].hasUses || graphOutputs.contains(ObjectIdentifier(node.outputs[k])) {
                return block(s, "the second output of \(node.displayName) is used")
            }
            switch port {
            case .input: link(s, node, output: 0, axis: axis)
            case .output: link(s, node, input: 0, axis: axis)
            }
        case _ where GroupBuilder.elementwiseBroadcast.contains(op):
            broadcastRule(node, s, port)
        case "MatMul":
            matMulRule(node, s, port)
        case "Gemm":
            gemmRule(node, s, port)
        case "Conv", "ConvTranspose":
            convRule(node, s, port, transposed: op == "ConvTranspose")
        case "BatchNormalization", "InstanceNormalization":
            guard axis <= 1 else { return block(s, "\(node.displayName) normalizes over axis \(axis)") }
            // InstanceNorm over [b, G, C/G·H·W] after a group-split reshape: GroupNorm, decomposed.
            if node.opType.name == "InstanceNormalization", axis == 1, let x = node.inputs[0], rankOf(x) == 3,
                x.producer?.opType.name == "Reshape"
            {
                normGroups.insert(findSite(s))
            }
            if node.outputs.dropFirst().contains(where: \.hasUses) { return block(s, "\(node.displayName) is in training mode") }
            switch port {
            case .input: link(s, node, output: 0, axis: axis)
            case .output: link(s, node, input: 0, axis: axis)
            }
            if axis == 1 {
                for i in 1 ..< node.inputs.count where node.inputs[i] != nil { link(s, node, input: i, axis: 0) }
            }
        case _ where GroupBuilder.lastAxisNorms.contains(op):
            guard let rank = rankOf(sites[s].value) else { return block(s, "rank unknown at \(node.displayName)") }
            var first = ((try? node.attribute("axis", as: Int.self)) ?? nil) ?? -1
            if first < 0 { first += rank }
            guard axis < first else { return block(s, "\(node.displayName) normalizes over the channels") }
            let skip = GroupBuilder.skipNorms.contains(op)
            for (k, o) in node.outputs.enumerated().dropFirst() where o.hasUses && !(skip && k == 3) {
                return block(s, "\(node.displayName) has used statistics outputs")
            }
            passThrough(node, s, port)
            if skip {
                link(s, node, input: 1, axis: axis)
                if node.outputs.count > 3 { link(s, node, output: 3, axis: axis) }
            }
        case _ where GroupBuilder.contribElementwise.contains(op):
            broadcastRule(node, s, port)
        case _ where GroupBuilder.fusedAttentionOps.contains(op):
            fusedAttentionRule(node, s, port, op: op)
        case _ where GroupBuilder.rotaryOps.contains(op):
            // Rotation pairs features inside one head: whole heads pass; the angles are per position.
            guard case .input(0) = port, node.inputs.count > 0 else {
                if case .output(0) = port { return passThrough(node, s, port) }
                return block(s, "'\(sites[s].value.name)' is an angle table of \(node.displayName)")
            }
            passThrough(node, s, port)
        case "GroupNormalization":
            if axis == 0 { return passThrough(node, s, port) }
            guard axis == 1 else { return block(s, "\(node.displayName) normalizes over axis \(axis)") }
            groupNormRule(node, s, port)
        case "com.microsoft.GroupNorm":
            // onnxruntime's fused GroupNorm (SD UNets): channels last unless channels_last=0.
            let last = ((try? node.attribute("channels_last", as: Int.self)) ?? nil) ?? 1 == 1
            guard let rank = rankOf(sites[s].value) else { return block(s, "rank unknown at \(node.displayName)") }
            let channelAxis = last ? rank - 1 : 1
            if axis == 0 { return passThrough(node, s, port) }
            guard axis == channelAxis else { return block(s, "\(node.displayName) normalizes over axis \(axis)") }
            groupNormRule(node, s, port, channelAxis: channelAxis, groupsAttribute: "groups")
        case "Softmax", "LogSoftmax", "Hardmax":
            guard let rank = rankOf(sites[s].value) else { return block(s, "rank unknown at \(node.displayName)") }
            var a = (try? node.attribute("axis", as: Int.self)) ?? (opset >= 13 ? -1 : 1)
            if a < 0 { a += rank }
            let covered = opset >= 13 ? axis == a : axis >= a
            guard !covered else { return block(s, "\(node.displayName) normalizes over the channels") }
            passThrough(node, s, port)
        case "Transpose":
            guard let rank = rankOf(sites[s].value) else { return block(s, "rank unknown at \(node.displayName)") }
            let perm = ((try? node.attribute("perm", as: [Int].self)) ?? nil) ?? Array((0 ..< rank).reversed())
            switch port {
            case .input:
                guard let j = perm.firstIndex(of: axis) else { return block(s, "bad perm at \(node.displayName)") }
                link(s, node, output: 0, axis: j)
            case .output:
                guard axis < perm.count else { return block(s, "bad perm at \(node.displayName)") }
                link(s, node, input: 0, axis: perm[axis])
            }
        case _ where GroupBuilder.reshapeLike.contains(op):
            reshapeRule(node, s, port)
        case "Split":
            splitRule(node, s, port)
        case "Slice":
            sliceRule(node, s, port)
        case "Concat":
            concatRule(node, s, port)
        case "Gather":
            gatherRule(node, s, port)
        case _ where GroupBuilder.pools.contains(op):
            guard axis <= 1 else { return block(s, "\(node.displayName) pools over axis \(axis)") }
            if node.outputs.dropFirst().contains(where: \.hasUses) { return block(s, "\(node.displayName) has a used indices output") }
            passThrough(node, s, port)
        case "Resize", "Upsample":
            guard axis <= 1 else { return block(s, "\(node.displayName) resizes axis \(axis)") }
            passThrough(node, s, port)
        case _ where GroupBuilder.reductions.contains(op):
            reduceRule(node, s, port)
        case "Pad":
            padRule(node, s, port)
        case "Expand":
            expandRule(node, s, port)
        case "Einsum":
            einsumRule(node, s, port)
        case "Tile":
            tileRule(node, s, port)
        case "GatherElements":
            gatherElementsRule(node, s, port)
        default:
            block(s, "\(node.displayName) is not understood by the group analysis")
        }
    }

    /// Same axis on input 0 and output 0.
    func passThrough(_ node: Node, _ s: Int, _ port: Port) {
        let axis = sites[s].axis
        switch port {
        case .input: link(s, node, output: 0, axis: axis)
        case .output: link(s, node, input: 0, axis: axis)
        }
    }

    /// Numpy broadcasting: operands with the full axis are tied; size-1 or missing axes are not.
    func broadcastRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let out = node.outputs.first, let r = rankOf(out) else { return block(s, "rank unknown at \(node.displayName)") }
        let a: Int
        switch port {
        case .output: a = sites[s].axis
        case .input(let i):
            guard let v = node.inputs[i], let ri = rankOf(v) else { return block(s, "rank unknown at \(node.displayName)") }
            a = sites[s].axis + (r - ri)
        }
        for (j, v) in node.inputs.enumerated() {
            guard let v, let rj = rankOf(v) else { continue }
            let aj = a - (r - rj)
            guard aj >= 0 else { continue }
            shareVirtualSize(from: s, to: v, aj)
            guard let d = dim(v, aj) else { return block(s, "axis \(aj) of '\(v.name)' at \(node.displayName) has an unknown size") }
            if d == 1 { continue }
            link(s, node, input: j, axis: aj)
        }
        link(s, node, output: 0, axis: a)
    }

    func matMulRule(_ node: Node, _ s: Int, _ port: Port) {
        guard node.inputs.count == 2, let a = node.inputs[0], let b = node.inputs[1], let ra = rankOf(a), let rb = rankOf(b),
            let out = node.outputs.first, let r = rankOf(out), ra >= 2, rb >= 2
        else { return block(s, "\(node.displayName) has operands of unknown or vector rank") }
        let axis = sites[s].axis
        // Batch axes are broadcast like elementwise ops.
        func batch(_ outAxis: Int) {
            for (j, rj) in [(0, ra), (1, rb)] {
                let aj = outAxis - (r - rj)
                guard aj >= 0, aj < rj - 2, let v = node.inputs[j] else { continue }
                shareVirtualSize(from: s, to: v, aj)
                guard let d = dim(v, aj) else { return block(s, "a batch axis of \(node.displayName) has an unknown size") }
                if d != 1 { link(s, node, input: j, axis: aj) }
            }
            link(s, node, output: 0, axis: outAxis)
        }
        switch port {
        case .input(0):
            if axis == ra - 1 {
                absorbing.append((s, node))
                link(s, node, input: 1, axis: rb - 2)
            } else if axis == ra - 2 {
                link(s, node, output: 0, axis: r - 2)
            } else {
                batch(axis + (r - ra))
            }
        case .input:
            if axis == rb - 2 {
                link(s, node, input: 0, axis: ra - 1)
            } else if axis == rb - 1 {
                link(s, node, output: 0, axis: r - 1)
            } else {
                batch(axis + (r - rb))
            }
        case .output:
            if axis == r - 1 {
                link(s, node, input: 1, axis: rb - 1)
            } else if axis == r - 2 {
                link(s, node, input: 0, axis: ra - 2)
            } else {
                batch(axis)
            }
        }
    }

    func gemmRule(_ node: Node, _ s: Int, _ port: Port) {
        let transA = ((try? node.attribute("transA", as: Int.self)) ?? nil) ?? 0
        let transB = ((try? node.attribute("transB", as: Int.self)) ?? nil) ?? 0
        let axis = sites[s].axis
        let aK = transA != 0 ? 0 : 1, aM = 1 - aK
        let bK = transB != 0 ? 1 : 0, bN = 1 - bK
        func bias(_ outAxis: Int) {
            guard node.inputs.count > 2, let c = node.inputs[2], let rc = rankOf(c) else { return }
            let ac = outAxis - (2 - rc)
            guard ac >= 0, let d = dim(c, ac), d != 1 else { return }
            link(s, node, input: 2, axis: ac)
        }
        switch port {
        case .input(0):
            if axis == aK {
                absorbing.append((s, node))
                link(s, node, input: 1, axis: bK)
            } else {
                link(s, node, output: 0, axis: 0)
                bias(0)
            }
        case .input(1):
            if axis == bK {
                link(s, node, input: 0, axis: aK)
            } else {
                link(s, node, output: 0, axis: 1)
                bias(1)
            }
        case .input(2) where node.inputs[2]?.producer.map({ $0.opType == .identity && $0.inputs.first??.constantValue != nil }) == true:
            // A bias that is `Identity(constant)` (torch writes a bias equal to another one that
            // way): bias() linked it to the output already; the Identity's rule cuts the constant.
            return
        case .input:
            block(s, "'\(sites[s].value.name)' is the bias of \(node.displayName) and is computed")
        case .output:
            if axis == 1 { link(s, node, input: 1, axis: bN) } else { link(s, node, input: 0, axis: aM) }
            bias(axis)
        }
    }

    func convRule(_ node: Node, _ s: Int, _ port: Port, transposed: Bool) {
        let axis = sites[s].axis
        guard axis == 1 else {
            if axis == 0 { return passThrough(node, s, port) }
            return block(s, "\(node.displayName) mixes spatial axis \(axis)")
        }
        guard node.inputs.count >= 2, let x = node.inputs[0], let w = node.inputs[1], let cin = dim(x, 1), let wShape = dims(w),
            wShape.count >= 3, let w0 = wShape[0].value, let w1 = wShape[1].value
        else { return block(s, "\(node.displayName) has unknown channel counts") }
        let group = ((try? node.attribute("group", as: Int.self)) ?? nil) ?? 1
        let hasBias = node.inputs.count > 2 && node.inputs[2] != nil
        if group == 1 {
            switch port {
            case .input(0):
                absorbing.append((s, node))
                link(s, node, input: 1, axis: transposed ? 0 : 1)
            case .input:
                block(s, "the weight of \(node.displayName) is computed")
            case .output:
                link(s, node, input: 1, axis: transposed ? 1 : 0)
                if hasBias { link(s, node, input: 2, axis: 0) }
            }
            return
        }
        // Depthwise: one filter per channel, so input channel c, filter c and output channel c go together.
        let depthwise = !transposed && group == cin && w1 == 1 && w0 == cin
        guard depthwise, port == .input(0) || port == .output(0) else {
            return block(s, "\(node.displayName) is a grouped convolution (group \(group))")
        }
        link(s, node, input: 0, axis: 1)
        link(s, node, output: 0, axis: 1)
        link(s, node, input: 1, axis: 0)
        if hasBias { link(s, node, input: 2, axis: 0) }
    }

    /// Reshape, Flatten, Squeeze, Unsqueeze: matched by the input and output shapes.
    func reshapeRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let x = node.inputs.first ?? nil, let inDims = dims(x), let out = node.outputs.first, let outDims = dims(out) else {
            return block(s, "\(node.displayName) has unknown shapes")
        }
        let fromOutput: Bool
        if case .output = port { fromOutput = true } else { fromOutput = false }
        let (from, to) = fromOutput ? (outDims, inDims) : (inDims, outDims)
        guard let map = ReshapeAxisMap.map(from: from, to: to, axis: sites[s].axis) else {
            // Heads merged into (or split out of) the batch axis: followed modulo the head count.
            if let j = ReshapeAxisMap.moduloMap(from: from, to: to, axis: sites[s].axis, n: sites[s].size) {
                let other = fromOutput ? x : out
                let key = SiteKey.activation(ObjectIdentifier(other), j)
                if dim(other, j) == nil { virtualSizes[key] = sites[s].size }
                guard let t = activationSite(other, j), sites[t].size == sites[s].size else {
                    return block(s, "\(node.displayName) merges the heads into another axis in a way the analysis cannot follow")
                }
                linkIdentity(s, t)
                // A merged axis's target must be -1 (or follow a tensor): a stored number would be b·H.
                let outAxis = fromOutput ? sites[s].axis : j
                let merged = (fromOutput ? outDims[sites[s].axis] : outDims[j]).value == nil
                checkTarget(node, element: outAxis, outputSite: fromOutput ? s : t, s, merged: merged)
                return
            }
            return block(s, "\(node.displayName) reshapes the channel axis in a way the analysis cannot follow")
        }
        if !fromOutput {
            let a: Int
            switch map { case .same(let j), .split(let j, _), .merge(let j, _): a = j }
            if let kv = repeatedHeads(out, a), queryHeads || kv == 1 {
                return block(s, "\(node.displayName) repeats kv heads for the query heads; with query-head units the kv heads stay (kinds=heads removes whole kv groups)")
            }
        }
        let target: (Int) -> Int? = { a in fromOutput ? self.activationSite(x, a) : self.activationSite(out, a) }
        let outAxis: Int
        switch map {
        case .same(let a):
            guard let t = target(a) else { return block(s, "unknown size after \(node.displayName)") }
            linkIdentity(s, t)
            outAxis = fromOutput ? sites[s].axis : a
        case .split(let a, let factor):
            guard let t = target(a) else { return block(s, "unknown size after \(node.displayName)") }
            linkCoarse(fine: s, coarse: t, factor: factor, headSplit: !fromOutput)
            outAxis = fromOutput ? sites[s].axis : a
        case .merge(let a, let factor):
            guard let t = target(a) else { return block(s, "unknown size after \(node.displayName)") }
            linkCoarse(fine: t, coarse: s, factor: factor, headSplit: fromOutput)
            outAxis = fromOutput ? sites[s].axis : a
        }
        if node.opType.name == "Reshape" {
            let outSite = fromOutput ? s : activationSite(out, outAxis)
            checkTarget(node, element: outAxis, outputSite: outSite, s)
        }
    }

    /// Records what a Reshape/Expand target element that names the group's axis needs: nothing
    /// for `-1` or a stored number (fold rewrites it), a same-group check for a size computed from
    /// another tensor; anything else closes the group.
    func checkTarget(_ node: Node, element k: Int, outputSite: Int?, _ s: Int, merged: Bool = false) {
        let element = ShapeConstants.targetElement(node, axis: k, constants: constants)
        if merged {
            // A batch × heads axis: -1, or a size that follows the group, or `batch × H` with the
            // head count H as a constant that fold rewrites.
            switch element {
            case .inferred: return
            case .follows(let src, let axis, _, _):
                let site = siteIndex[.activation(ObjectIdentifier(src), axis)]
                if let site, let o = outputSite, findSite(site) == findSite(o) { break }
                // Only a size read off a dim other than the merged one (the batch) times H.
                guard let o = outputSite, let b = symbol(src, axis), b != symbol(sites[o].value, sites[o].axis),
                    node.inputs.count > 1, let target = node.inputs[1],
                    let m = ShapeSource.multiplier(target, element: k, constants: constants), m.factor == sites[o].size
                else { break }
                countConstants.append(CountConstant(site: o, node: m.node, input: m.input, source: nil, sourceAxis: 0))
                return
            default:
                return block(s, "the target shape of \(node.displayName) names the merged batch and head axis")
            }
        }
        switch element {
        case .inferred, .stored:
            return
        case .follows(let source, let axis, let times, let over):
            guard let o = outputSite else { return block(s, "unknown size after \(node.displayName)") }
            shapeChecks.append(ShapeCheck(site: o, node: node, source: source, sourceAxis: axis, times: times, over: over))
        case .computed:
            block(s, "the target shape of \(node.displayName) at axis \(k) is computed in a way the analysis cannot follow")
        }
    }

    func splitRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let x = node.inputs.first ?? nil, let r = rankOf(x) else { return block(s, "rank unknown at \(node.displayName)") }
        var splitAxis = ((try? node.attribute("axis", as: Int.self)) ?? nil) ?? 0
        if splitAxis < 0 { splitAxis += r }
        let axis = sites[s].axis
        guard axis == splitAxis else {
            for k in node.outputs.indices { link(s, node, output: k, axis: axis) }
            if case .output = port { link(s, node, input: 0, axis: axis) }
            return
        }
        var sizes: [Int] = []
        for o in node.outputs {
            guard let d = dim(o, axis) else { return block(s, "an output of \(node.displayName) has an unknown size") }
            sizes.append(d)
        }
        guard let xs = activationSite(x, axis), sites[xs].size == sizes.reduce(0, +) else {
            return block(s, "\(node.displayName) does not cover its input")
        }
        var offset = 0
        for (k, n) in sizes.enumerated() {
            guard let o = activationSite(node.outputs[k], axis) else { return block(s, "unknown size after \(node.displayName)") }
            linkIdentity(xs, o, offsetA: offset, count: n)
            offset += n
        }
    }

    func sliceRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let x = node.inputs.first ?? nil, let r = rankOf(x), let n = dim(x, sites[s].axis) else {
            return block(s, "shape unknown at \(node.displayName)")
        }
        guard let params = SliceParameters(node, rank: r, opset: opset, constants: constants) else {
            return block(s, "the bounds of \(node.displayName) are not known")
        }
        let axis = sites[s].axis
        guard let k = params.axes.firstIndex(of: axis) else { return passThrough(node, s, port) }
        guard params.steps[k] == 1 else { return block(s, "\(node.displayName) slices the channels with a step") }
        let (start, end) = SliceParameters.clamp(params.starts[k], params.ends[k], size: n)
        guard let xs = activationSite(x, axis), let os = activationSite(node.outputs[0], axis) else {
            return block(s, "unknown size at \(node.displayName)")
        }
        linkIdentity(xs, os, offsetA: start, count: max(0, end - start))
    }

    func concatRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let out = node.outputs.first, let r = rankOf(out) else { return block(s, "rank unknown at \(node.displayName)") }
        var catAxis = ((try? node.attribute("axis", as: Int.self)) ?? nil) ?? 0
        if catAxis < 0 { catAxis += r }
        let axis = sites[s].axis
        guard axis == catAxis else {
            for i in node.inputs.indices where node.inputs[i] != nil { link(s, node, input: i, axis: axis) }
            link(s, node, output: 0, axis: axis)
            return
        }
        guard let os = activationSite(out, axis) else { return block(s, "unknown size after \(node.displayName)") }
        var offset = 0
        for i in node.inputs.indices {
            guard let v = node.inputs[i], let n = dim(v, axis) else { return block(s, "an input of \(node.displayName) has an unknown size") }
            if n > 0 {
                guard let t = operand(node, i, axis) else { return block(s, "unknown size at \(node.displayName)") }
                linkIdentity(os, t, offsetA: offset, count: n)
            }
            offset += n
        }
    }

    func gatherRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let data = node.inputs.first ?? nil, let rd = rankOf(data), node.inputs.count > 1, let idx = node.inputs[1],
            let ri = rankOf(idx)
        else { return block(s, "rank unknown at \(node.displayName)") }
        var g = ((try? node.attribute("axis", as: Int.self)) ?? nil) ?? 0
        if g < 0 { g += rd }
        let axis = sites[s].axis
        switch port {
        case .input:
            guard axis != g else { return block(s, "\(node.displayName) gathers along the channel axis") }
            link(s, node, output: 0, axis: axis < g ? axis : axis + ri - 1)
        case .output:
            if axis < g {
                link(s, node, input: 0, axis: axis)
            } else if axis >= g + ri {
                link(s, node, input: 0, axis: axis - ri + 1)
            } else {
                block(s, "the channel axis of \(node.displayName) comes from its indices")
            }
        }
    }

    func reduceRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let x = node.inputs.first ?? nil, let r = rankOf(x) else { return block(s, "rank unknown at \(node.displayName)") }
        var axes: [Int]
        if let a = (try? node.attribute("axes", as: [Int].self)) ?? nil {
            axes = a
        } else if node.inputs.count > 1, let v = node.inputs[1], let a = constants.ints(of: v) {
            axes = a
        } else if node.inputs.count > 1, node.inputs[1] != nil {
            return block(s, "the axes of \(node.displayName) are computed")
        } else {
            let noop = ((try? node.attribute("noop_with_empty_axes", as: Int.self)) ?? nil) ?? 0
            axes = noop != 0 ? [] : Array(0 ..< r)
        }
        axes = axes.map { $0 < 0 ? $0 + r : $0 }
        let keep = (((try? node.attribute("keepdims", as: Int.self)) ?? nil) ?? 1) != 0
        let axis = sites[s].axis
        switch port {
        case .input:
            guard !axes.contains(axis) else { return block(s, "\(node.displayName) reduces over the channels") }
            link(s, node, output: 0, axis: keep ? axis : axis - axes.filter { $0 < axis }.count)
        case .output:
            var inAxis = axis
            if !keep {
                let kept = (0 ..< r).filter { !axes.contains($0) }
                guard axis < kept.count else { return block(s, "bad axes at \(node.displayName)") }
                inAxis = kept[axis]
            }
            link(s, node, input: 0, axis: inAxis)
        }
    }

    func padRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let x = node.inputs.first ?? nil, let r = rankOf(x) else { return block(s, "rank unknown at \(node.displayName)") }
        var pads: [Int]?
        if let p = (try? node.attribute("pads", as: [Int].self)) ?? nil { pads = p }
        if node.inputs.count > 1, let v = node.inputs[1] { pads = constants.ints(of: v) }
        var axes = Array(0 ..< r)
        if node.inputs.count > 3, let v = node.inputs[3] {
            guard let a = constants.ints(of: v) else { return block(s, "the axes of \(node.displayName) are computed") }
            axes = a.map { $0 < 0 ? $0 + r : $0 }
        }
        guard let pads, pads.count == 2 * axes.count else { return block(s, "the pads of \(node.displayName) are computed") }
        if let k = axes.firstIndex(of: sites[s].axis), pads[k] != 0 || pads[k + axes.count] != 0 {
            return block(s, "\(node.displayName) pads the channels")
        }
        passThrough(node, s, port)
    }

    /// Expand: an axis the shape keeps at 1 (or at the input's own size, stored or computed from
    /// a tensor of the group, as torch writes repeat_kv) passes; an axis it broadcasts blocks.
    func expandRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let x = node.inputs.first ?? nil, let rx = rankOf(x), let out = node.outputs.first, let r = rankOf(out),
            node.inputs.count > 1, let shapeValue = node.inputs[1], let length = dim(shapeValue, 0)
        else { return block(s, "the shape of \(node.displayName) has an unknown length") }
        let a: Int
        switch port {
        case .input: a = sites[s].axis + (r - rx)
        case .output: a = sites[s].axis
        }
        let ax = a - (r - rx)
        let k = a - (r - length)
        if ax >= 0, dim(x, ax) == 1, k >= 0, case .follows = ShapeConstants.targetElement(node, axis: k, constants: constants) {
            // Broadcast from 1 to the size of a tensor of the group (DeBERTa's position indices,
            // expanded to batch × heads): the output follows by itself, the input has no channels.
            guard case .output = port else { return block(s, "\(node.displayName) broadcasts the channels") }
            return checkTarget(node, element: k, outputSite: s, s, merged: dims(out).map { $0[a].value == nil } ?? false)
        }
        guard ax >= 0, let d = dim(x, ax), d != 1 else { return block(s, "\(node.displayName) broadcasts the channels") }
        if k >= 0 {
            switch ShapeConstants.targetElement(node, axis: k, constants: constants) {
            case .stored(let owner, let input, let index):
                let e = owner.inputs[input]?.constantValue.flatMap { try? $0.int64s() }.map { Int($0[index]) }
                guard e == d else { return block(s, "\(node.displayName) names another channel count in its shape") }
            default:
                checkTarget(node, element: k, outputSite: activationSite(out, a), s)
            }
        }
        link(s, node, input: 0, axis: ax)
        link(s, node, output: 0, axis: a)
    }

    /// Tile: input index `i` of the axis becomes every output index `≡ i (mod n)`.
    func tileRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let x = node.inputs.first ?? nil, let out = node.outputs.first else { return block(s, "rank unknown at \(node.displayName)") }
        let axis = sites[s].axis
        guard let n = dim(x, axis) else { return block(s, "\(node.displayName) tiles an axis of unknown size") }
        let outKey = SiteKey.activation(ObjectIdentifier(out), axis)
        // An output tiled by a count only known at run time (the batch size) is a virtual site of
        // n: whatever the count, its index modulo n is the input's index.
        if dim(out, axis) == nil { virtualSizes[outKey] = n }
        guard let xs = activationSite(x, axis), let os = activationSite(out, axis), sites[os].size % n == 0, sites[xs].size == n else {
            return block(s, "\(node.displayName) tiles the channels by an unknown count")
        }
        unionSites(xs, os)
        for j in 0 ..< sites[os].size { unionElements(sites[os].base + j, sites[xs].base + j % n) }
        // The repeat count of a virtual (batch × heads) axis, computed as `size / num_heads` of a
        // tensor of the group (DeBERTa), divides by the head count: fold rewrites that constant.
        guard virtualSizes[outKey] != nil, node.inputs.count > 1, let reps = node.inputs[1], constants.ints(of: reps) == nil else { return }
        // A count read off another tensor's dim that is not this merged axis (the batch size,
        // from the mask's shape) does not depend on the heads.
        if case .dim(let src, let srcAxis, 1, 1) = ShapeSource.trace(reps, element: axis, constants: constants),
            let b = symbol(src, srcAxis), b != symbol(out, axis)
        {
            return
        }
        guard let d = ShapeSource.divisor(reps, element: axis, constants: constants), d.divisor == n,
            case .dim(let src, let srcAxis, 1, 1) = d.numerator
        else { return block(s, "the repeat count of \(node.displayName) is computed in a way the analysis cannot follow") }
        countConstants.append(CountConstant(site: os, node: d.node, input: 1, source: src, sourceAxis: srcAxis))
    }

    /// GatherElements: every axis but the gathered one is shared by data, indices and output.
    func gatherElementsRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let data = node.inputs.first ?? nil, let r = rankOf(data) else { return block(s, "rank unknown at \(node.displayName)") }
        var g = ((try? node.attribute("axis", as: Int.self)) ?? nil) ?? 0
        if g < 0 { g += r }
        let axis = sites[s].axis
        guard axis != g else { return block(s, "\(node.displayName) gathers along the channel axis") }
        link(s, node, input: 0, axis: axis)
        link(s, node, input: 1, axis: axis)
        link(s, node, output: 0, axis: axis)
    }

    /// GroupNormalization (or onnxruntime's GroupNorm, on its channel axis) on the channel axis: the
    /// channels of a norm group are one unit (the norm stays a norm of the same size per group);
    /// scale and bias are per group (opset 18) or per channel (opset 21, GroupNorm). Fold rewrites
    /// `num_groups` (`groups`).
    func groupNormRule(_ node: Node, _ s: Int, _ port: Port, channelAxis: Int = 1, groupsAttribute: String = "num_groups") {
        guard let groups = (try? node.attribute(groupsAttribute, as: Int.self)) ?? nil, groups > 0,
            let x = node.inputs[0], let c = dim(x, channelAxis), c % groups == 0,
            let xs = activationSite(x, channelAxis), let os = activationSite(node.outputs[0], channelAxis)
        else { return block(s, "\(node.displayName) has unknown channel or group counts") }
        if node.outputs.dropFirst().contains(where: \.hasUses) { return block(s, "\(node.displayName) has used statistics outputs") }
        let per = c / groups
        linkIdentity(xs, os)
        for ch in 0 ..< c where ch % per != 0 { unionElements(sites[xs].base + ch, sites[xs].base + ch - ch % per) }
        for i in 1 ..< min(node.inputs.count, 3) {
            guard let v = node.inputs[i], let n = dim(v, 0), let ps = operand(node, i, 0) else { continue }
            unionSites(xs, ps)
            if n == c {
                for ch in 0 ..< c { unionElements(sites[ps].base + ch, sites[xs].base + ch) }
            } else if n == groups {
                for g in 0 ..< groups { unionElements(sites[ps].base + g, sites[xs].base + g * per) }
            } else {
                return block(s, "the scale of \(node.displayName) has \(n) elements for \(c) channels in \(groups) groups")
            }
        }
        normGroups.insert(findSite(s))
    }

    /// The letters of an Einsum equation (explicit or implicit output; no `...`), per input and for
    /// the output, or `nil` when the equation cannot be read that way.
    static func einsumTerms(_ node: Node) -> (inputs: [[Character]], output: [Character])? {
        guard let eq = ((try? node.attribute("equation", as: String.self)) ?? nil)?.filter({ !$0.isWhitespace }), !eq.contains(".") else { return nil }
        let sides = eq.components(separatedBy: "->")
        guard sides.count <= 2 else { return nil }
        let inputs = sides[0].components(separatedBy: ",").map { Array($0) }
        guard inputs.allSatisfy({ $0.allSatisfy(\.isLetter) }) else { return nil }
        if sides.count == 2 { return Array(sides[1]).allSatisfy(\.isLetter) ? (inputs, Array(sides[1])) : nil }
        var counts: [Character: Int] = [:]
        for t in inputs { for l in t { counts[l, default: 0] += 1 } }
        return (inputs, counts.filter { $0.value == 1 }.map(\.key).sorted())
    }

    /// Einsum (jax2tf and TF exports write dense layers and attention this way): an axis is tied to
    /// every operand axis with its letter; a letter summed away makes this a consumer of the group.
    func einsumRule(_ node: Node, _ s: Int, _ port: Port) {
        guard let (terms, out) = GroupBuilder.einsumTerms(node), terms.count == node.inputs.count else {
            return block(s, "the equation of \(node.displayName) is not understood by the group analysis")
        }
        let axis = sites[s].axis
        let letter: Character
        switch port {
        case .input(let i):
            guard i < terms.count, axis < terms[i].count else { return block(s, "bad equation at \(node.displayName)") }
            letter = terms[i][axis]
        case .output:
            guard axis < out.count else { return block(s, "bad equation at \(node.displayName)") }
            letter = out[axis]
        }
        guard (terms + [out]).allSatisfy({ t in t.filter { $0 == letter }.count <= 1 }) else {
            return block(s, "\(node.displayName) takes a diagonal over the channel axis")
        }
        for (j, t) in terms.enumerated() {
            guard let a = t.firstIndex(of: letter) else { continue }
            if case .input(let i) = port, i == j { continue }
            link(s, node, input: j, axis: a)
        }
        if let a = out.firstIndex(of: letter) {
            link(s, node, output: 0, axis: a)
        } else if case .input = port {
            absorbing.append((s, node))
        }
    }
}
