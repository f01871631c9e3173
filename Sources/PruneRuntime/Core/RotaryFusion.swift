import Foundation
import PruneIR

// Rotary position embeddings as exporters write Llama/Qwen/Gemma's `rotate_half`:
//
//     x1 = Slice(x, 0, h, axis -1)      x2 = Slice(x, h, end, axis -1)
//     r  = Concat(Neg(x2), x1, axis -1)
//     y  = Add(Mul(x, cos), Mul(r, sin))          (either operand order)
//
// seven steps, each a pass and an allocation, become one pass over x (`RotaryHalvesKernel`).
// h is a constant in some exports and shape arithmetic (x.shape[-1] // 2) in others, so the
// Slices' bounds are inputs of the fused step. At run time the Slices must take [0, h) and
// [h, 2h) of x's last axis, and cos and sin (a table sliced by position) must repeat in x as a
// trailing block; otherwise the kernel runs the original steps in turn.

extension ExecutionPlan {
    /// Replaces each `rotate_half` rotary chain (see the file's header) by one step at the
    /// position of its Add. Every intermediate value must have its one reader in the chain.
    func fuseRotaryHalves(readers: [Int: Int], producer: [Int: Int], known: [Int: NDArray], removed: inout Set<Int>, replaced: inout [Int: Step]) {
        func free(_ i: Int, _ op: String) -> Bool {
            steps[i].op == op && steps[i].node.opType.domain.isEmpty && !removed.contains(i) && replaced[i] == nil
                && steps[i].outputs.count == 1 && steps[i].memo == nil
        }
        /// The step making `slot` when it is `op` and `slot` has one reader.
        func made(_ slot: Int, by op: String) -> Int? {
            guard slot >= 0, readers[slot] == 1, let p = producer[slot], free(p, op) else { return nil }
            return p
        }
        func ints(_ slot: Int) -> [Int]? {
            guard slot >= 0, let a = known[slot], a.dtype == .int64 || a.dtype == .int32 else { return nil }
            return a.ints()
        }
        /// A Slice of one constant axis with step 1: (data slot, start slot, end slot, axis). The
        /// bounds may be constants or computed; the kernel reads them at run time.
        func slice(_ i: Int) -> (x: Int, start: Int, end: Int, axis: Int)? {
            let s = steps[i]
            guard s.inputs.count >= 4, s.inputs[1] >= 0, s.inputs[2] >= 0, let axes = ints(s.inputs[3]), axes.count == 1
            else { return nil }
            if s.inputs.count > 4, s.inputs[4] >= 0 { guard ints(s.inputs[4]) == [1] else { return nil } }
            return (s.inputs[0], s.inputs[1], s.inputs[2], axes[0])
        }
        for add in steps.indices where free(add, "Add") && steps[add].inputs.count == 2 {
            // The two products, in either order.
            guard let m0 = made(steps[add].inputs[0], by: "Mul"), let m1 = made(steps[add].inputs[1], by: "Mul") else { continue }
            for (cosMul, sinMul) in [(m0, m1), (m1, m0)] {
                guard steps[sinMul].inputs.count == 2, steps[cosMul].inputs.count == 2 else { continue }
                // sin's product reads the Concat.
                let sinIns = steps[sinMul].inputs
                guard let found = made(sinIns[0], by: "Concat").map({ ($0, sinIns[1]) })
                    ?? made(sinIns[1], by: "Concat").map({ ($0, sinIns[0]) })
                else { continue }
                let (concat, sinSlot) = found
                guard steps[concat].inputs.count == 2,
                    let axis = try? steps[concat].node.attribute("axis", as: Int.self),
                    let neg = made(steps[concat].inputs[0], by: "Neg"),
                    let hi = made(steps[neg].inputs[0], by: "Slice"), let lo = made(steps[concat].inputs[1], by: "Slice"),
                    let upper = slice(hi), let lower = slice(lo),
                    upper.x == lower.x, upper.axis == lower.axis,
                    // Constant bounds are checked here as well as at run time.
                    ints(lower.start).map({ $0 == [0] }) ?? true,
                    ints(upper.start).map({ $0 == ints(lower.end) }) ?? true
                else { continue }
                let x = lower.x
                // cos's product reads x itself.
                let cosIns = steps[cosMul].inputs
                guard cosIns.contains(x) else { continue }
                let cosSlot = cosIns[0] == x ? cosIns[1] : cosIns[0]
                guard cosSlot >= 0, sinSlot >= 0, cosSlot != x else { continue }
                let chain = [lo, hi, neg, concat, cosMul, sinMul]
                let fallback = (chain + [add]).map { (kernel: steps[$0].kernel, inputs: steps[$0].inputs, output: steps[$0].outputs[0]) }
                // Exporters write the Slices' axis as 3 and the Concat's as -1: both must be x's
                // last axis, which only the run knows.
                let inputs = [x, cosSlot, sinSlot, lower.start, lower.end, upper.start, upper.end]
                let kernel = RotaryHalvesKernel(axes: [axis, lower.axis], inputSlots: inputs, steps: fallback)
                replaced[add] = Step(node: steps[add].node, name: steps[add].name, op: "RotaryEmbedding", kernel: kernel,
                                     inputs: inputs, outputs: steps[add].outputs, release: [])
                for j in chain { removed.insert(j) }
                break
            }
        }
    }
}

/// `y = x·cos + rotate_half(x)·sin` over the last axis of x (float32), where rotate_half(x) is
/// [-x[h..<2h], x[0..<h]] and cos, sin repeat in x as a trailing block. Inputs: x, cos, sin, then
/// the two Slices' starts and ends (lower half, upper half).
final class RotaryHalvesKernel: Kernel {
    /// The Concat's and the Slices' axes as the graph gives them (x's last at run time, or the
    /// original steps run).
    let axes: [Int]
    let inputSlots: [Int]
    /// The original steps, for inputs the fused loop cannot take.
    let steps: [FusedStepOriginal]

    init(axes: [Int], inputSlots: [Int], steps: [FusedStepOriginal]) {
        self.axes = axes
        self.inputSlots = inputSlots
        self.steps = steps
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let xs = try (0..<inputs.count).map { try inputs.required($0) }
        let x = xs[0], c = xs[1], s = xs[2]
        let rank = x.rank, d = x.shape.last ?? 0
        /// A Slice bound as ONNX clamps it on an axis of `d` (one element, else nil).
        func bound(_ a: NDArray) -> Int? {
            guard a.count == 1, a.dtype == .int64 || a.dtype == .int32, let v = a.ints().first else { return nil }
            return min(max(v < 0 ? v + d : v, 0), d)
        }
        let h = d / 2
        guard x.dtype == .float, c.dtype == .float, s.dtype == .float, rank > 0, d > 0, d % 2 == 0,
            bound(xs[3]) == 0, bound(xs[4]) == h, bound(xs[5]) == h, bound(xs[6]) == d,
            axes.allSatisfy({ $0 == -1 || $0 == rank - 1 }), c.count > 0, c.count % d == 0, c.shape == s.shape,
            c.shape.last == d, isTrailingBlock(c.shape, of: x.shape)
        else {
            return [try ctx.runOriginalSteps(steps, inputSlots: inputSlots, inputs: xs)]
        }
        let y = ctx.allocate(.float, x.shape)
        let rows = x.count / d, period = c.count
        let px = UnsafePointer(x.pointer(as: Float.self)), pc = UnsafePointer(c.pointer(as: Float.self))
        let ps = UnsafePointer(s.pointer(as: Float.self)), py = y.pointer(as: Float.self)
        ctx.parallelFor(rows, grain: max(1, 16384 / d)) { range in
            for r in range {
                let xr = px + r * d, yr = py + r * d
                let t = (r * d) % period
                let cr = pc + t, sr = ps + t
                for i in 0..<h { yr[i] = xr[i] * cr[i] - xr[i + h] * sr[i] }
                for i in h..<d { yr[i] = xr[i] * cr[i] + xr[i - h] * sr[i] }
            }
        }
        return [y]
    }
}
