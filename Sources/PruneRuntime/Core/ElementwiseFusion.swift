import Foundation
import PruneIR

// Elementwise regions: a DAG of float32 elementwise steps (GELU's Div → Erf → Add → Mul → Mul,
// tanh-GELU's eight steps, SiLU's Sigmoid → Mul) runs as one step that makes one pass over its
// inputs in blocks that stay in L1, instead of one pass and one allocation per step.
//
// A region's values come from its external inputs (of one shape, or repeating inside it as a
// trailing block, checked at run time), float scalar constants and its own steps; every value a region step makes, but the last, has its one
// reader inside the region. When the inputs differ in shape or type at run time, the region runs
// its original kernels one after another, as the unfused plan would.

/// One instruction of an elementwise region.
struct ElementwiseInstruction {
    enum Op {
        case add, sub, mul, div, square, cube
        case relu, neg, abs, sqrt, reciprocal
        case vector(VectorKernels.Function)
    }

    enum Operand {
        /// External input `i` of the fused step.
        case input(Int)
        /// The result of instruction `i`.
        case register(Int)
        case constant(Float)
    }

    var op: Op
    var a: Operand
    var b: Operand?
}

extension ExecutionPlan {
    /// Ops a region may hold, with their arity.
    static let regionOps: [String: Int] = [
        "Add": 2, "Sub": 2, "Mul": 2, "Div": 2, "Pow": 2,
        "Relu": 1, "Neg": 1, "Abs": 1, "Sqrt": 1, "Reciprocal": 1, "Sigmoid": 1, "Tanh": 1, "Erf": 1, "Exp": 1,
    ]

    /// Groups elementwise steps into regions (see the file's header), each run as one step at the
    /// position of its last step.
    func fuseElementwiseRegions(readers: [Int: Int], producer: [Int: Int], known: [Int: NDArray], removed: inout Set<Int>, replaced: inout [Int: Step]) {
        // Scalars of rank 0 or 1 only: a higher one would widen the region's output.
        func scalar(_ slot: Int) -> Float? { (known[slot]?.rank ?? 2) <= 1 ? ExecutionPlan.floatScalar(slot, known) : nil }
        func candidate(_ i: Int) -> Bool {
            let s = steps[i]
            guard let arity = ExecutionPlan.regionOps[s.op], s.node.opType.domain.isEmpty, s.memo == nil,
                !removed.contains(i), replaced[i] == nil, s.inputs.count == arity, s.outputs.count == 1,
                s.inputs.allSatisfy({ $0 >= 0 })
            else { return false }
            if s.op == "Pow" { return [2, 3].contains(scalar(s.inputs[1]) ?? 0) }
            return true
        }
        // A step in a region is removed or replaced, so `candidate` refuses it for another one.
        for root in steps.indices.reversed() where candidate(root) {
            // Grow backwards through producers whose one reader is in the region.
            var region: Set<Int> = [root]
            var frontier = [root]
            while let i = frontier.popLast() {
                for s in steps[i].inputs where scalar(s) == nil {
                    guard let p = producer[s], candidate(p), !region.contains(p), readers[s] == 1 else { continue }
                    region.insert(p)
                    frontier.append(p)
                }
            }
            guard region.count >= 2 else { continue }
            let ordered = region.sorted()
            // Instructions in step order; external inputs numbered as first met.
            var externals: [Int] = []
            var register: [Int: Int] = [:]
            var program: [ElementwiseInstruction] = []
            var ok = true
            for (k, i) in ordered.enumerated() {
                let s = steps[i]
                func operand(_ slot: Int) -> ElementwiseInstruction.Operand {
                    if let r = register[slot] { return .register(r) }
                    if let c = scalar(slot) { return .constant(c) }
                    if let e = externals.firstIndex(of: slot) { return .input(e) }
                    externals.append(slot)
                    return .input(externals.count - 1)
                }
                let a = operand(s.inputs[0])
                let b = s.inputs.count > 1 ? operand(s.inputs[1]) : nil
                let op: ElementwiseInstruction.Op
                switch s.op {
                case "Add": op = .add
                case "Sub": op = .sub
                case "Mul": op = .mul
                case "Div": op = .div
                case "Pow": op = scalar(s.inputs[1]) == 2 ? .square : .cube
                case "Relu": op = .relu
                case "Neg": op = .neg
                case "Abs": op = .abs
                case "Sqrt": op = .sqrt
                case "Reciprocal": op = .reciprocal
                case "Sigmoid": op = .vector(.sigmoid)
                case "Tanh": op = .vector(.tanh)
                case "Erf": op = .vector(.erf)
                case "Exp": op = .vector(.exp)
                default: ok = false; op = .add
                }
                program.append(ElementwiseInstruction(op: op, a: a, b: s.op == "Pow" ? nil : b))
                register[s.outputs[0]] = k
            }
            // A region of scalars only (no external tensor) is left alone; so is one that would
            // need a value it makes itself from outside (cannot happen with one reader each).
            guard ok, !externals.isEmpty else { continue }
            let fallback = ordered.map { (kernel: steps[$0].kernel, inputs: steps[$0].inputs, output: steps[$0].outputs[0]) }
            let scalarRank = ordered.flatMap { steps[$0].inputs }.compactMap { scalar($0) != nil ? known[$0]!.rank : nil }.max() ?? 0
            let kernel = ElementwiseRegionKernel(program: program, inputs: externals, steps: fallback, scalarRank: scalarRank)
            replaced[root] = Step(node: steps[root].node, name: steps[root].name, op: steps[root].op, kernel: kernel,
                                  inputs: externals, outputs: steps[root].outputs, release: [])
            for i in ordered where i != root { removed.insert(i) }
        }
    }
}

/// Runs an elementwise region's program over its inputs in blocks.
final class ElementwiseRegionKernel: Kernel {
    /// The region's instructions, as CKernels runs them.
    let program: VectorKernels.ElementwiseProgram
    /// The plan slots of the external inputs, in the order the step receives them.
    let inputSlots: [Int]
    /// The original steps, for inputs the program cannot take (differing shapes, other types).
    let steps: [FusedStepOriginal]

    /// The highest rank of the region's scalar constants (a [1] constant gives a rank-0 input rank 1).
    let scalarRank: Int

    static let block = 256

    init(program: [ElementwiseInstruction], inputs: [Int], steps: [FusedStepOriginal], scalarRank: Int) {
        self.program = VectorKernels.ElementwiseProgram(program)
        self.inputSlots = inputs
        self.steps = steps
        self.scalarRank = scalarRank
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let xs = try (0..<inputs.count).map { try inputs.required($0) }
        // The largest input gives the shape; the others must be it, or repeat inside it as a
        // trailing block (a [s, d] rotary table against [b, h, s, d]).
        let widest = xs.max { $0.count < $1.count }!
        guard let shape = try? Broadcast.shape(xs.map { $0.shape }), shape.reduce(1, *) == widest.count,
            xs.allSatisfy({ $0.dtype == .float && ($0.count == widest.count || ($0.count > 0 && isTrailingBlock($0.shape, of: shape))) }),
            widest.count > 0, shape.count >= scalarRank
        else {
            return [try ctx.runOriginalSteps(steps, inputSlots: inputSlots, inputs: xs)]
        }
        let y = ctx.allocate(.float, shape)
        let n = y.count
        let py = y.pointer(as: Float.self)
        let ptrs = xs.map { UnsafePointer($0.pointer(as: Float.self)) }
        let periods = xs.map { $0.count == n ? 0 : $0.count }
        let repeating = periods.contains { $0 > 0 }
        let program = self.program
        let block = Self.block
        let registers = program.count - 1
        let scratch = registers + (repeating ? xs.count : 0)
        ctx.parallelFor((n + block - 1) / block, grain: max(1, elementwiseGrain / block)) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, scratch) * block) { regs in
                withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: xs.count) { blockInputs in
                    let base = regs.baseAddress!
                    for i in ptrs.indices { blockInputs[i] = ptrs[i] }
                    // A repeating input whose period divides the block is the same in every block
                    // (blocks start at multiples of it): gathered once per chunk of blocks.
                    for (i, period) in periods.enumerated() where period > 0 && block % period == 0 && period < block {
                        let dst = base + (registers + i) * block
                        for r in stride(from: 0, to: block, by: period) { (dst + r).update(from: ptrs[i], count: period) }
                        blockInputs[i] = UnsafePointer(dst)
                    }
                    for b in range {
                        let start = b * block, count = min(block, n - start)
                        for (i, period) in periods.enumerated() {
                            if period == 0 {
                                blockInputs[i] = ptrs[i] + start
                            } else if start % period + count <= period {
                                // The block lies within one repetition: read it in place.
                                blockInputs[i] = ptrs[i] + start % period
                            } else if block % period != 0 {
                                // This block's elements of a repeating input, gathered in runs.
                                let dst = base + (registers + i) * block
                                var j = start % period, e = 0
                                while e < count {
                                    let run = min(period - j, count - e)
                                    (dst + e).update(from: ptrs[i] + j, count: run)
                                    e += run
                                    j = 0
                                }
                                blockInputs[i] = UnsafePointer(dst)
                            }
                        }
                        program.run(inputs: UnsafePointer(blockInputs.baseAddress!), registers: base, block: block,
                                    output: py + start, count: count)
                    }
                }
            }
        }
        return [y]
    }
}

/// A step a fused kernel replaced: its kernel, input slots and output slot, for the inputs the
/// fused loop cannot take.
typealias FusedStepOriginal = (kernel: any Kernel, inputs: [Int], output: Int)

extension KernelContext {
    /// Runs the steps a fused kernel replaced, one by one with their own kernels, on the fused
    /// step's inputs (at `inputSlots`; other slots are read from the frame), and returns the last
    /// one's output.
    func runOriginalSteps(_ steps: [FusedStepOriginal], inputSlots: [Int], inputs xs: [NDArray]) throws -> NDArray {
        var values: [Int: NDArray] = [:]
        for (slot, x) in zip(inputSlots, xs) { values[slot] = x }
        var last: NDArray?
        for step in steps {
            let ins: [NDArray?] = step.inputs.map { $0 < 0 ? nil : (values[$0] ?? frame.values[$0]) }
            guard let out = try step.kernel.run(ins, self).first ?? nil else {
                throw KernelError("a step of a fused \(steps.count)-step chain made no output")
            }
            values[step.output] = out
            last = out
        }
        guard let last else { throw KernelError("a fused step replaced no steps") }
        return last
    }
}
