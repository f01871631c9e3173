import Foundation
import PruneIR

// Attention as exporters decompose it:
//
//     scores = MatMul(q, kᵀ)                       [..., S, T]
//     scores = scores · scale  (Mul, or Div)       a one-element value, constant or computed
//     scores = scores + mask   (Add)               anything that broadcasts into [..., S, T]
//     probs  = Softmax(scores, axis −1)
//     out    = MatMul(probs, v)                    [..., S, Dv]
//
// with any of the middle steps absent or repeated, in any order before the Softmax, and Casts
// anywhere between the two products (Llama's fp16 export runs the softmax in fp16 and casts to
// float32 and back; others cast to float32 before it). The chain runs as one step that works on
// blocks of query rows: a block's scores, their scale, mask and softmax, and its product with v,
// before the next block. The [..., S, T] tensors are never whole in memory: at 4096 tokens (a
// UNet's first self-attention at 512²) one head's scores alone are 64 MB in float32, and the
// softmax writes as many again.
//
// The numbers are the unfused steps': a value of a float16 or bfloat16 step is rounded to its
// type where that step would round it (MatMul once, Mul, Div and Add once, float16 Softmax after
// each of its steps), in the same order. Where the run's shapes or types are not ones the loop
// takes (a rank-1 operand, a batch v does not share, a scale of more than one element, float64),
// the original steps run in turn.

extension ExecutionPlan {
    /// Replaces each attention chain (see the file's header) by one step at the position of its
    /// second MatMul. Every value the chain makes, but the last, must have its one reader in the
    /// chain.
    func fuseAttention(readers: [Int: Int], removed: inout Set<Int>, replaced: inout [Int: Step]) {
        func free(_ i: Int) -> Bool {
            steps[i].node.opType.domain.isEmpty && !removed.contains(i) && replaced[i] == nil && steps[i].outputs.count == 1
                && steps[i].memo == nil
        }
        /// The one reader of step `i`'s output.
        func next(_ i: Int) -> Int? {
            let out = steps[i].outputs[0]
            guard readers[out] == 1 else { return nil }
            for j in (i + 1)..<steps.count where steps[j].inputs.contains(out) { return free(j) ? j : nil }
            return nil
        }
        for head in steps.indices where steps[head].op == "MatMul" && free(head) && steps[head].inputs.count == 2 {
            var ops: [AttentionChainKernel.Op] = []
            var extra: [Int] = []
            var chain = [head]
            var at = head
            var softmax: Int? = nil
            var tail: Int? = nil
            while let j = next(at) {
                let s = steps[j], from = steps[at].outputs[0]
                var op: AttentionChainKernel.Op? = nil
                // Every operand the chain reads is computed before the step reading it, so before
                // the fused step at `tail`; no other step reads a value of the chain.
                switch s.op {
                case "Mul", "Div", "Add":
                    // The chain's value as the first operand (Div), or either (Mul, Add).
                    guard softmax == nil, s.inputs.count == 2 else { break }
                    let other = s.inputs[0] == from ? s.inputs[1] : s.inputs[0]
                    guard other >= 0, other != from, s.op != "Div" || s.inputs[0] == from else { break }
                    extra.append(other)
                    let input = 2 + extra.count
                    op = s.op == "Add" ? .add(input: input) : .scale(input: input, divide: s.op == "Div")
                case "Cast":
                    guard let to = try? s.node.attribute("to", as: Int.self), let t = DType(rawValue: Int32(to)),
                        [.float, .float16, .bfloat16].contains(t)
                    else { break }
                    op = .cast(t)
                case "Softmax":
                    guard softmax == nil, let kernel = s.kernel as? SoftmaxKernel, kernel.kind == .softmax else { break }
                    // Before opset 13 the rows are the trailing block from `axis`: the last axis
                    // alone when `axis` is the last, which is what the run checks.
                    softmax = kernel.axis
                    op = .softmax
                case "MatMul" where softmax != nil && s.inputs.count == 2 && s.inputs[0] == from && s.inputs[1] >= 0:
                    tail = j
                default:
                    break
                }
                if tail != nil { break }
                guard let op else { break }
                ops.append(op)
                chain.append(j)
                at = j
            }
            guard let tail, let softmax else { continue }
            let v = steps[tail].inputs[1]
            guard !chain.contains(where: { steps[$0].outputs[0] == v }) else { continue }
            let inputs = [steps[head].inputs[0], steps[head].inputs[1], v] + extra
            let fallback = (chain + [tail]).map { (kernel: steps[$0].kernel, inputs: steps[$0].inputs, output: steps[$0].outputs[0]) }
            let kernel = AttentionChainKernel(ops: ops, softmaxAxis: softmax, inputSlots: inputs, steps: fallback)
            replaced[tail] = Step(node: steps[tail].node, name: steps[tail].name, op: "Attention", kernel: kernel,
                                  inputs: inputs, outputs: steps[tail].outputs, release: [])
            for j in chain { removed.insert(j) }
        }
    }
}

/// `MatMul(row ops(MatMul(q, kᵀ)), v)` a block of query rows at a time (see AttentionFusion.swift's
/// header). Inputs: q, kᵀ, v, then the operands of the scale and mask steps in chain order.
final class AttentionChainKernel: Kernel {
    /// A step between the two products, applied to each block of score rows.
    enum Op: Equatable {
        /// Multiply (divide) by the one-element input at `input`.
        case scale(input: Int, divide: Bool)
        /// Add the input at `input`, broadcast into the scores.
        case add(input: Int)
        /// Round to a floating type (float32 values hold the rounded ones).
        case cast(DType)
        case softmax
    }

    let ops: [Op]
    let softmaxAxis: Int
    let inputSlots: [Int]
    /// The original steps, for runs the blocked loop cannot take.
    let steps: [FusedStepOriginal]

    /// Bytes of score rows a block holds at most (per thread): rows = this / (4 · T), 8 to 128.
    static let blockBytes = 1 << 18

    init(ops: [Op], softmaxAxis: Int, inputSlots: [Int], steps: [FusedStepOriginal]) {
        self.ops = ops
        self.softmaxAxis = softmaxAxis
        self.inputSlots = inputSlots
        self.steps = steps
    }

    /// Where a mask's element for (batch `i`, row, column) is: `base[i] + row · rowStride + column · columnStride`.
    private struct MaskLayout {
        let values: NDArray
        let base: [Int]
        let rowStride: Int, columnStride: Int
    }

    /// A row op with its operand resolved for the blocked loop.
    private enum Step {
        case scale(Float, divide: Bool, round: DType)
        case add(MaskLayout, round: DType)
        case round(DType)
        case softmax(DType)
    }

    /// Runs that took the original steps (for tests and profiles).
    private(set) var fallbackRuns = 0

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let xs = try (0..<inputs.count).map { try inputs.required($0) }
        if let out = try blocked(xs, ctx) { return [out] }
        fallbackRuns += 1
        return [try ctx.runOriginalSteps(steps, inputSlots: inputSlots, inputs: xs)]
    }

    /// The fused computation, or nil when these inputs need the original steps.
    private func blocked(_ xs: [NDArray], _ ctx: KernelContext) throws -> NDArray? {
        let q = xs[0], kt = xs[1], v = xs[2]
        let floats: Set<DType> = [.float, .float16, .bfloat16]
        guard floats.contains(q.dtype), kt.dtype == q.dtype, floats.contains(v.dtype), q.rank >= 2, kt.rank >= 2, v.rank >= 2,
            let first = try? MatMulKernel.plan(q.shape, kt.shape)
        else { return nil }
        let scoresShape = first.outShape
        let rank = scoresShape.count, (S, T, D) = (first.m, first.n, first.k)
        guard let second = try? MatMulKernel.plan(scoresShape, v.shape), second.batch == first.batch, second.m == S, second.k == T,
            S > 0, T > 0, first.batch > 0
        else { return nil }
        let axis = softmaxAxis < 0 ? softmaxAxis + rank : softmaxAxis
        guard axis == rank - 1 else { return nil }
        let batch = first.batch, batchShape = Array(scoresShape.dropLast(2))

        // Resolve the row ops against this run's operands and follow the chain's element type.
        var dtype = q.dtype
        var plan: [Step] = [.round(dtype)]
        for op in ops {
            switch op {
            case .scale(let input, let divide):
                let s = xs[input]
                guard s.count == 1, s.dtype == dtype, s.rank <= rank else { return nil }
                plan.append(.scale(Float(s.element(at: 0)), divide: divide, round: dtype))
            case .add(let input):
                let m = xs[input]
                guard m.dtype == dtype, m.rank <= rank, m.count > 0, (try? Broadcast.shape(scoresShape, m.shape)) == scoresShape
                else { return nil }
                let strides = Broadcast.strides(of: m.shape, to: scoresShape)
                let base = Broadcast.offsets(shape: batchShape, strides: Array(strides.prefix(rank - 2)))
                plan.append(.add(MaskLayout(values: FloatBridge.toFloat(m, ctx), base: base, rowStride: strides[rank - 2],
                                            columnStride: strides[rank - 1]), round: dtype))
            case .cast(let to):
                dtype = to
                plan.append(.round(to))
            case .softmax:
                plan.append(.softmax(dtype))
            }
        }
        guard v.dtype == dtype else { return nil }

        let fq = FloatBridge.toFloat(q, ctx), fk = FloatBridge.toFloat(kt, ctx), fv = FloatBridge.toFloat(v, ctx)
        let out = ctx.allocate(.float, second.outShape)
        let Dv = second.n
        let pq = UnsafePointer(fq.pointer(as: Float.self)), pk = UnsafePointer(fk.pointer(as: Float.self))
        let pv = UnsafePointer(fv.pointer(as: Float.self)), po = out.pointer(as: Float.self)
        // Matrix offsets of each batch index (MatMulKernel's plans leave them empty when a
        // single right-hand matrix folds the batch into M).
        let qOffset = first.aOffsets.isEmpty ? Array(0..<batch) : first.aOffsets
        let kOffset = first.bOffsets.isEmpty ? [Int](repeating: 0, count: batch) : first.bOffsets
        let vOffset = second.bOffsets.isEmpty ? [Int](repeating: 0, count: batch) : second.bOffsets
        let rows = min(S, max(8, min(128, AttentionChainKernel.blockBytes / (4 * T))))
        let blocks = (S + rows - 1) / rows
        let plans = plan
        ctx.parallelFor(batch * blocks, grain: 1) { range in
            let tile = UnsafeMutablePointer<Float>.allocate(capacity: rows * T)
            defer { tile.deallocate() }
            for task in range {
                let i = task / blocks, r0 = (task % blocks) * rows, r = min(rows, S - r0)
                Float.gemm(transA: false, transB: false, m: r, n: T, k: D, alpha: 1, a: pq + (qOffset[i] * S + r0) * D, lda: D,
                           b: pk + kOffset[i] * D * T, ldb: T, beta: 0, c: tile, ldc: T, threads: 1)
                for step in plans { AttentionChainKernel.apply(step, tile, rows: r, columns: T, batch: i, firstRow: r0) }
                Float.gemm(transA: false, transB: false, m: r, n: Dv, k: T, alpha: 1, a: tile, lda: T,
                           b: pv + vOffset[i] * T * Dv, ldb: Dv, beta: 0, c: po + (i * S + r0) * Dv, ldc: Dv, threads: 1)
            }
        }
        return FloatBridge.fromFloat(out, to: dtype, ctx)
    }

    /// One row op on a block of `rows` score rows of `columns`, in place.
    private static func apply(_ step: Step, _ tile: UnsafeMutablePointer<Float>, rows: Int, columns: Int, batch i: Int, firstRow: Int) {
        let n = rows * columns
        func round(_ t: DType) {
            if FloatBridge.isHalf(t) { VectorKernels.roundThrough(tile, bfloat16: t == .bfloat16, tile, count: n) }
        }
        switch step {
        case .round(let t):
            round(t)
        case .scale(let s, let divide, let t):
            if divide { for e in 0..<n { tile[e] /= s } } else { for e in 0..<n { tile[e] *= s } }
            round(t)
        case .add(let mask, let t):
            let pm = mask.values.pointer(as: Float.self) + mask.base[i]
            for row in 0..<rows {
                let dst = tile + row * columns, src = pm + (firstRow + row) * mask.rowStride
                if mask.columnStride == 0 {
                    let m = src[0]
                    for c in 0..<columns { dst[c] += m }
                } else {
                    for c in 0..<columns { dst[c] += src[c] }
                }
            }
            round(t)
        case .softmax(let t):
            if t == .float16 {
                for row in 0..<rows { SoftmaxMath.halfRow(tile + row * columns, columns) }
                return
            }
            // float32 (and bfloat16, computed in float32 and rounded once) as SoftmaxKernel does.
            var o = 0
            while o < rows {
                o += VectorKernels.softmaxRows(tile + o * columns, tile + o * columns, rows: rows - o, length: columns, log: false)
                if o < rows {
                    SoftmaxMath.genericRow(.softmax, tile + o * columns, tile + o * columns, columns, 1)
                    o += 1
                }
            }
            round(t)
        }
    }
}
