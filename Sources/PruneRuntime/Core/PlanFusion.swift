import Foundation
import PruneIR

// Fusions in the execution plan. The graph stays as the user gave it: a fused plan is a second
// list of steps for plain runs, while recorded runs (tapes, reruns, gradients) keep the plan
// that has one step per node.
//
// - Conv → BatchNormalization (inference, constant statistics): the normalization is folded into
//   the convolution's weights and bias once, at build time.
// - Conv / MatMul / Gemm → Add of a constant bias along the channel (Conv) or last (MatMul) axis:
//   the bias is added in place to the product.
// - any of the above → Relu: clamped in place.
// - Conv (after its BatchNormalization, if any) → Add of a value computed before the Conv (a
//   residual connection) → Relu: added and clamped inside the convolution's GEMM.
// - RMSNorm as exporters decompose it, x · 1/√(mean(x²) + ε) · w: Pow(x, 2) → ReduceMean over the
//   last axis → Add ε → Sqrt → Reciprocal (or Div(1, ·)) → Mul(x, ·) (or Div(x, ·)) → a Cast to
//   float32 → Mul by a constant weight: one pass over each row instead of six or seven.
// - Llama's rotary embedding, x·cos + rotate_half(x)·sin (RotaryFusion.swift).
// - regions of float32 elementwise steps (ElementwiseFusion.swift).
// - attention's scores, scale, mask, softmax and values, a block of query rows at a time
//   (AttentionFusion.swift).
//
// A step is fused into its producer only when the producer's output has that one reader and is
// not an output of the graph nor read by a subgraph, and only for float32 values.

extension ExecutionPlan {
    /// A copy of this plan with the fusions above (those of `kinds`) applied, or nil when none
    /// applies.
    func fused(_ kinds: Interpreter.Fusions = .all) -> ExecutionPlan? {
        var readers: [Int: Int] = [:]
        for step in steps {
            for s in step.inputs where s >= 0 { readers[s, default: 0] += 1 }
            // Values read by a subgraph are read by its node too, as far as fusion is concerned.
            for v in ExecutionPlan.freeValues(ofSubgraphsOf: step.node) {
                if let s = slot(of: v) { readers[s, default: 0] += 2 }
            }
        }
        for s in outputSlots { readers[s, default: 0] += 2 }
        let overridable = Set(inputs.map(\.slot))
        var known: [Int: NDArray] = [:]
        for c in constants where !overridable.contains(c.slot) { known[c.slot] = c.array }

        /// A product with constant float32 weights (so a float32 output, whatever the IR knows
        /// of types): the size of its channel axis (Conv: axis 1) or last axis (MatMul, Gemm).
        func channels(_ step: Step) -> Int? {
            guard step.inputs.count >= 2, step.inputs[1] >= 0, let w = known[step.inputs[1]], w.dtype == .float else { return nil }
            switch step.op {
            case "Conv": return w.rank >= 3 ? w.shape[0] : nil
            case "MatMul": return w.rank >= 2 ? w.shape[w.rank - 1] : nil
            case "Gemm":
                guard w.rank == 2 else { return nil }
                let transB = (try? step.node.attribute("transB", as: Int.self)) ?? 0
                return transB != 0 ? w.shape[0] : w.shape[1]
            default: return nil
            }
        }
        /// The single reader of step `i`'s first output, if it is the only one.
        func reader(of i: Int, from start: Int) -> Int? {
            guard let out = steps[i].outputs.first, readers[out] == 1 else { return nil }
            for j in start..<steps.count where steps[j].inputs.contains(out) { return j }
            return nil
        }
        var removed = Set<Int>()
        var replaced: [Int: Step] = [:]
        /// ``reader(of:from:)`` when no fusion took that reader yet.
        func soleReader(of i: Int, from start: Int) -> Int? {
            reader(of: i, from: start).flatMap { removed.contains($0) || replaced[$0] != nil ? nil : $0 }
        }

        var newConstants: [(slot: Int, array: NDArray)] = []
        var nextSlot = slotCount
        func addConstant(_ a: NDArray) -> Int {
            newConstants.append((nextSlot, a))
            nextSlot += 1
            return nextSlot - 1
        }

        var producer: [Int: Int] = [:]
        for (i, step) in steps.enumerated() { for s in step.outputs { producer[s] = i } }

        // Before the products and the regions: they would take the chain's MatMuls, Mul and Add.
        if kinds.contains(.attention) { fuseAttention(readers: readers, removed: &removed, replaced: &replaced) }
        for i in steps.indices where kinds.contains(.products) && !removed.contains(i) && replaced[i] == nil {
            let head = steps[i]
            guard ["Conv", "MatMul", "Gemm"].contains(head.op), head.node.opType.domain.isEmpty, head.outputs.count == 1,
                let width = channels(head)
            else { continue }
            var step = head
            var epilogue = FusedEpilogue()
            var last = i
            var absorbed: [Int] = []

            // Conv → BatchNormalization.
            if head.op == "Conv", let conv = head.kernel as? ConvKernel, let j = soleReader(of: last, from: last + 1),
                steps[j].op == "BatchNormalization", steps[j].node.opType.domain.isEmpty, steps[j].inputs.first == head.outputs[0],
                let folded = ExecutionPlan.foldBatchNorm(conv: head, bn: steps[j], known: known)
            {
                let kernel = ConvKernel(window: conv.window, group: conv.group, constantInputs: [false, true, true])
                if ConvKernel.vectorGemm { kernel.prepack(folded.weights) }
                step = Step(node: head.node, name: head.name, op: head.op, kernel: kernel,
                            inputs: [head.inputs[0], addConstant(folded.weights), addConstant(folded.bias)],
                            outputs: head.outputs, release: [])
                absorbed.append(j)
                last = j
            }
            // A constant bias.
            if let j = soleReader(of: last, from: last + 1), steps[j].op == "Add", steps[j].node.opType.domain.isEmpty,
                let bias = ExecutionPlan.channelBias(add: steps[j], operand: steps[last].outputs[0], conv: head.op == "Conv",
                                                     channels: width, known: known)
            {
                epilogue.bias = bias.array
                epilogue.biasAxisFromEnd = bias.axisFromEnd
                absorbed.append(j)
                last = j
            }
            // Conv → Add of a value computed before the convolution (a residual) → Relu: added
            // and clamped inside the convolution's GEMM.
            if head.op == "Conv", epilogue.bias == nil, let conv = step.kernel as? ConvKernel,
                let j = soleReader(of: last, from: last + 1), steps[j].op == "Add", steps[j].node.opType.domain.isEmpty,
                steps[j].inputs.count == 2, steps[j].outputs.count == 1
            {
                let product = steps[last].outputs[0]
                let productFirst = steps[j].inputs[0] == product
                let other = productFirst ? steps[j].inputs[1] : steps[j].inputs[0]
                if other >= 0, other != product, (producer[other].map { $0 < i } ?? true) {
                    var relu: (any Kernel)? = nil
                    var end = j
                    if let r = soleReader(of: j, from: j + 1), steps[r].op == "Relu", steps[r].node.opType.domain.isEmpty {
                        relu = steps[r].kernel
                        end = r
                    }
                    let kernel = ConvResidualKernel(conv: conv, add: steps[j].kernel, productFirst: productFirst, relu: relu)
                    replaced[i] = Step(node: head.node, name: head.name, op: head.op, kernel: kernel,
                                       inputs: step.inputs + [other], outputs: steps[end].outputs, release: [])
                    for a in absorbed + [j] + (end != j ? [end] : []) { removed.insert(a) }
                    continue
                }
            }
            if let j = soleReader(of: last, from: last + 1), steps[j].op == "Relu", steps[j].node.opType.domain.isEmpty {
                epilogue.relu = true
                absorbed.append(j)
                last = j
            }
            guard !absorbed.isEmpty else { continue }
            // The fused step writes the last absorbed step's output (release lists are set once all
            // fusions are done). The head's name: profiles count the absorbed steps' time in it.
            let inner = step.kernel
            let kernel: any Kernel = epilogue.isEmpty ? inner : FusedEpilogueKernel(inner: inner, epilogue: epilogue)
            replaced[i] = Step(node: head.node, name: head.name, op: head.op, kernel: kernel, inputs: step.inputs,
                               outputs: steps[last].outputs, release: [])
            for j in absorbed { removed.insert(j) }
        }
        if kinds.contains(.normalization) { fuseRMSNorms(soleReader: reader, known: known, removed: &removed, replaced: &replaced) }
        // Before the regions: they would take the chain's Mul and Add steps.
        if kinds.contains(.rotary) {
            fuseRotaryHalves(readers: readers, producer: producer, known: known, removed: &removed, replaced: &replaced)
        }
        if kinds.contains(.elementwise) {
            fuseElementwiseRegions(readers: readers, producer: producer, known: known, removed: &removed, replaced: &replaced)
        }
        guard !replaced.isEmpty else { return nil }
        let plan = ExecutionPlan(copying: self)
        plan.slotCount = nextSlot
        plan.constants += newConstants
        plan.steps = steps.indices.compactMap { removed.contains($0) ? nil : (replaced[$0] ?? steps[$0]) }
        // A fused step reads its inputs where its last step was: liveness is computed anew.
        plan.recomputeReleases()
        // Replaced steps carry no memo: they run their kernels every time (products and float
        // arithmetic, not the shape arithmetic memos are for).
        plan.stepSeconds = Array(repeating: 0, count: plan.steps.count)
        plan.stepCalls = Array(repeating: 0, count: plan.steps.count)
        return plan
    }

    /// Replaces each decomposed RMSNorm chain (see the file's header) by one step at the chain's
    /// last position. Every intermediate value must have its one reader in the chain.
    private func fuseRMSNorms(soleReader: (Int, Int) -> Int?, known: [Int: NDArray], removed: inout Set<Int>,
                              replaced: inout [Int: Step]) {
        func isOp(_ i: Int, _ op: String) -> Bool {
            steps[i].op == op && steps[i].node.opType.domain.isEmpty && !removed.contains(i) && replaced[i] == nil
        }
        func scalar(_ slot: Int) -> Float? { ExecutionPlan.floatScalar(slot, known) }
        for p in steps.indices where isOp(p, "Pow") && steps[p].inputs.count == 2 && scalar(steps[p].inputs[1]) == 2 {
            let x = steps[p].inputs[0]
            guard x >= 0, let r = soleReader(p, p + 1), isOp(r, "ReduceMean"), steps[r].inputs.first == steps[p].outputs[0],
                (try? steps[r].node.attribute("keepdims", as: Int.self)) ?? 1 == 1
            else { continue }
            // The last axis only: as an attribute (opset < 18) or a constant input.
            var axes = (try? steps[r].node.attribute("axes", as: [Int].self)) ?? []
            if steps[r].inputs.count > 1, steps[r].inputs[1] >= 0 {
                guard let a = known[steps[r].inputs[1]], a.dtype == .int64 else { continue }
                axes = a.doubles().map { Int($0) }
            }
            let rank = steps[p].node.inputs.first??.type?.shape?.rank
            guard axes.count == 1, axes[0] == -1 || (rank != nil && axes[0] == rank! - 1) else { continue }
            guard let a = soleReader(r, r + 1), isOp(a, "Add"), steps[a].inputs.count == 2 else { continue }
            let epsSlot = steps[a].inputs[0] == steps[r].outputs[0] ? steps[a].inputs[1] : steps[a].inputs[0]
            guard let eps = scalar(epsSlot), let q = soleReader(a, a + 1), isOp(q, "Sqrt") else { continue }
            guard let d = soleReader(q, q + 1) else { continue }
            var chain = [p, r, a, q]
            var normalized: Int
            if isOp(d, "Div"), steps[d].inputs == [x, steps[q].outputs[0]] {
                normalized = d
            } else {
                // 1/√ then x · that.
                let inverse: Bool
                if isOp(d, "Reciprocal") { inverse = true } else if isOp(d, "Div"), scalar(steps[d].inputs[0]) == 1, steps[d].inputs[1] == steps[q].outputs[0] { inverse = true } else { inverse = false }
                guard inverse, let m = soleReader(d, d + 1), isOp(m, "Mul"),
                    Set(steps[m].inputs) == Set([x, steps[d].outputs[0]]), steps[m].inputs.count == 2
                else { continue }
                chain.append(d)
                normalized = m
            }
            chain.append(normalized)
            // torch's legacy export casts the float32 result to float32 before the weight.
            if let c = soleReader(normalized, normalized + 1), isOp(c, "Cast"),
                (try? steps[c].node.attribute("to", as: Int.self)) == 1
            {
                chain.append(c)
            }
            let tail = chain.last!
            var weight: Int = -1
            if let w = soleReader(tail, tail + 1), isOp(w, "Mul"), steps[w].inputs.count == 2 {
                let other = steps[w].inputs[0] == steps[tail].outputs[0] ? steps[w].inputs[1] : steps[w].inputs[0]
                if other >= 0, let wa = known[other], wa.dtype == .float, wa.rank == 1 {
                    weight = other
                    chain.append(w)
                }
            }
            let last = chain.last!
            replaced[last] = Step(node: steps[last].node, name: steps[last].name, op: "RMSNorm",
                                  kernel: RMSNormKernel(epsilon: eps), inputs: [x, weight], outputs: steps[last].outputs,
                                  release: [])
            for j in chain.dropLast() { removed.insert(j) }
        }
    }

    /// The value of `slot` when it is a float32 constant of one element.
    static func floatScalar(_ slot: Int, _ known: [Int: NDArray]) -> Float? {
        guard slot >= 0, let a = known[slot], a.dtype == .float, a.count == 1 else { return nil }
        return a.pointer(as: Float.self)[0]
    }

    /// Sets every step's release list from the steps as they are: a value is dropped after the
    /// last step that reads it (or at once if nothing does), unless it is a graph output, a
    /// constant or a capture.
    func recomputeReleases() {
        var lastUse: [Int: Int] = [:]
        for (i, step) in steps.enumerated() {
            for s in step.inputs where s >= 0 { lastUse[s] = i }
            for v in ExecutionPlan.freeValues(ofSubgraphsOf: step.node) {
                if let s = slot(of: v) { lastUse[s] = i }
            }
        }
        var keep = Set(outputSlots)
        for c in constants { keep.insert(c.slot) }
        for c in captures { keep.insert(c.slot) }
        for i in steps.indices {
            steps[i].release = steps[i].outputs.filter { lastUse[$0] == nil && !keep.contains($0) }
        }
        for (s, i) in lastUse where !keep.contains(s) { steps[i].release.append(s) }
    }

    /// Weights and bias of `conv` with the inference BatchNormalization `bn` folded in, when the
    /// weights, the bias (if any) and all statistics are float32 constants.
    static func foldBatchNorm(conv: Step, bn: Step, known: [Int: NDArray]) -> (weights: NDArray, bias: NDArray)? {
        guard conv.inputs.count >= 2, conv.inputs[1] >= 0, let w = known[conv.inputs[1]], w.dtype == .float, w.rank >= 3,
            bn.inputs.count == 5, bn.outputs.count >= 1
        else { return nil }
        // Training-mode outputs (running statistics) must not be wanted.
        if bn.node.outputs.count > 1 { return nil }
        if (try? bn.node.attribute("training_mode", as: Int.self)) ?? 0 != 0 { return nil }
        if let spatial = try? bn.node.attribute("spatial", as: Int.self), spatial == 0 { return nil }
        let params = bn.inputs[1...4].map { $0 >= 0 ? known[$0] : nil }
        let m = w.shape[0]
        guard params.allSatisfy({ $0?.dtype == .float && $0?.count == m }) else { return nil }
        var b: NDArray?
        if conv.inputs.count > 2, conv.inputs[2] >= 0 {
            guard let cb = known[conv.inputs[2]], cb.dtype == .float, cb.count == m else { return nil }
            b = cb
        }
        let eps = Double((try? bn.node.attribute("epsilon", as: Float.self)) ?? 1e-5)
        let scale = params[0]!.pointer(as: Float.self), shift = params[1]!.pointer(as: Float.self)
        let mean = params[2]!.pointer(as: Float.self), variance = params[3]!.pointer(as: Float.self)
        let weights = NDArray(zeros: .float, shape: w.shape)
        let bias = NDArray(zeros: .float, shape: [m])
        let per = w.count / m
        let src = w.pointer(as: Float.self), dst = weights.pointer(as: Float.self), pb = bias.pointer(as: Float.self)
        for oc in 0..<m {
            let s = Double(scale[oc]) / (Double(variance[oc]) + eps).squareRoot()
            for e in 0..<per { dst[oc * per + e] = Float(Double(src[oc * per + e]) * s) }
            let b0 = b.map { Double($0.pointer(as: Float.self)[oc]) } ?? 0
            pb[oc] = Float((b0 - Double(mean[oc])) * s + Double(shift[oc]))
        }
        return (weights, bias)
    }

    /// The constant bias an Add step adds to `operand` (a product with `channels` channels): along
    /// axis 1 of a Conv's output (shaped [C, 1, ...] or [1, C, 1, ...]) or along the last axis of a
    /// MatMul's or Gemm's (shaped [N] or [1, ..., N]), with that axis counted from the end; one
    /// value also fits.
    static func channelBias(add: Step, operand: Int, conv: Bool, channels: Int, known: [Int: NDArray]) -> (array: NDArray, axisFromEnd: Int)? {
        guard add.inputs.count == 2, add.outputs.count == 1 else { return nil }
        let other = add.inputs[0] == operand ? add.inputs[1] : add.inputs[1] == operand ? add.inputs[0] : -1
        guard other >= 0, other != operand, let b = known[other], b.dtype == .float, b.count == channels || b.count == 1
        else { return nil }
        let nonUnit = b.shape.indices.filter { b.shape[$0] != 1 }
        guard nonUnit.count <= 1 else { return nil }
        if conv {
            // The channel axis, counted from the end, is the bias's own rank minus 1 from the end
            // when it is shaped [C, 1, ..., 1]: the Conv's output has rank = weights' rank.
            guard let axis = nonUnit.first else { return b.rank <= 1 ? (b, 0) : nil }
            let fromEnd = b.rank - 1 - axis
            return fromEnd >= 1 ? (b, fromEnd) : nil
        }
        if let axis = nonUnit.first, axis != b.rank - 1 { return nil }
        return (b, 0)
    }
}

/// What a fused step does to its product, in place: add a bias along one axis, then clamp at 0.
struct FusedEpilogue {
    var bias: NDArray? = nil
    /// The bias's axis counted from the end (0: last axis).
    var biasAxisFromEnd = 0
    var relu = false

    var isEmpty: Bool { bias == nil && !relu }
}

/// A product kernel followed by its epilogue on the product's freshly allocated float32 output.
final class FusedEpilogueKernel: Kernel {
    let inner: any Kernel
    let epilogue: FusedEpilogue

    init(inner: any Kernel, epilogue: FusedEpilogue) {
        self.inner = inner
        self.epilogue = epilogue
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        var outs = try inner.run(inputs, ctx)
        guard var y = outs.first ?? nil, y.dtype == .float, y.count > 0 else { return outs }
        if let b = epilogue.bias, b.rank > y.rank {
            // Broadcasting gives the sum the bias's rank (leading ones): the same elements.
            y = NDArray(dtype: y.dtype, shape: Array(repeating: 1, count: b.rank - y.rank) + y.shape, storage: y.storage,
                        byteOffset: y.byteOffset)
            outs[0] = y
        }
        let p = y.pointer(as: Float.self)
        let n = y.count
        let relu = epilogue.relu
        if let bias = epilogue.bias {
            let axis = y.rank - 1 - epilogue.biasAxisFromEnd
            guard axis >= 0, bias.count == 1 || bias.count == y.shape[axis] else {
                throw KernelError("fused bias of \(bias.count) does not fit the product \(y.shape)")
            }
            let pb = bias.pointer(as: Float.self)
            if axis == y.rank - 1, bias.count > 1 {
                // Along the last axis: each row gets the bias vector.
                let size = bias.count
                ctx.parallelFor(n / size, grain: max(1, elementwiseGrain / size)) { range in
                    for r in range {
                        let row = p + r * size
                        if relu { for e in 0..<size { row[e] = max(row[e] + pb[e], 0) } } else { for e in 0..<size { row[e] += pb[e] } }
                    }
                }
            } else {
                // Along a channel axis (or one value): each run of `inner` elements gets one value.
                let inner = y.shape[(axis + 1)...].reduce(1, *), size = y.shape[axis]
                let one = bias.count == 1
                ctx.parallelFor(n / inner, grain: max(1, elementwiseGrain / max(1, inner))) { range in
                    for r in range {
                        let row = p + r * inner
                        let v = pb[one ? 0 : r % size]
                        if relu { for e in 0..<inner { row[e] = max(row[e] + v, 0) } } else { for e in 0..<inner { row[e] += v } }
                    }
                }
            }
        } else if relu {
            ctx.parallelFor(n, grain: elementwiseGrain) { range in
                for e in range { p[e] = max(p[e], 0) }
            }
        }
        return outs
    }
}

/// A convolution whose output has one reader, an Add of a value computed before it (a residual
/// connection), and optionally a Relu after: the sum and the clamp happen inside the
/// convolution's GEMM, before a tile of the output leaves the registers. Inputs: the
/// convolution's, then the residual. When the residual does not have the output's shape (a
/// broadcast) or this is not float32, the three steps run as they were.
final class ConvResidualKernel: Kernel {
    let conv: ConvKernel
    let add: any Kernel
    /// Whether the Add reads the convolution's output first (its operand order, for the fallback).
    let productFirst: Bool
    let relu: (any Kernel)?

    init(conv: ConvKernel, add: any Kernel, productFirst: Bool, relu: (any Kernel)?) {
        self.conv = conv
        self.add = add
        self.productFirst = productFirst
        self.relu = relu
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let convInputs = Array(inputs.dropLast())
        let residual = try inputs.required(inputs.count - 1)
        if let y = try conv.run(convInputs, residual: residual, relu: relu != nil, ctx) { return [y] }
        let product = try conv.run(convInputs, ctx)[0]
        var out = try add.run(productFirst ? [product, residual] : [residual, product], ctx)
        if let relu { out = try relu.run(out, ctx) }
        return out
    }
}

/// x / √(mean(x²) + ε) · w over the last axis (`w` optional), in float32: the fused form of the
/// RMSNorm chain exporters write.
final class RMSNormKernel: Kernel {
    let epsilon: Float

    init(epsilon: Float) { self.epsilon = epsilon }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let w = inputs.optional(1)
        guard x.dtype == .float, x.rank >= 1, let size = x.shape.last, size > 0 else {
            throw KernelError("fused RMSNorm expects float32 with a last axis, got \(x.dtype) \(x.shape)")
        }
        if let w, w.dtype != .float || w.count != size {
            throw KernelError("fused RMSNorm weight of \(w.count) does not fit rows of \(size)")
        }
        let y = ctx.allocate(.float, x.shape)
        let px = x.pointer(as: Float.self), py = y.pointer(as: Float.self), pw = w?.pointer(as: Float.self)
        let eps = epsilon
        ctx.parallelFor(x.count / size, grain: max(1, elementwiseGrain / size)) { rows in
            for row in rows {
                let src = px + row * size, dst = py + row * size
                var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
                var e = 0
                while e + 4 <= size {
                    s0 += src[e] * src[e]; s1 += src[e + 1] * src[e + 1]
                    s2 += src[e + 2] * src[e + 2]; s3 += src[e + 3] * src[e + 3]
                    e += 4
                }
                while e < size { s0 += src[e] * src[e]; e += 1 }
                let r = 1 / (((s0 + s1) + (s2 + s3)) / Float(size) + eps).squareRoot()
                if let pw { for e in 0..<size { dst[e] = src[e] * r * pw[e] } } else { for e in 0..<size { dst[e] = src[e] * r } }
            }
        }
        return [y]
    }
}
