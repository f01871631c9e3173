import Foundation
import PruneIR

/// One forward run of the main graph with every step's inputs and outputs kept, for
/// ``backward(seeds:wrt:)``.
///
/// Recording keeps each intermediate value alive until the tape goes away (the liveness plan
/// still runs, the tape holds the references): memory grows with the activations of one run.
/// Callers that differentiate through many runs (a diffusion loop) record one run at a time and
/// drop the tape before the next (see `DiffusionHarness`'s checkpointing).
public final class Tape {
    struct Entry {
        let step: Int
        let inputs: [NDArray?]
        let outputs: [NDArray?]
    }

    let interpreter: Interpreter
    let plan: ExecutionPlan
    /// For a tape recorded for reruns only (``Interpreter/runRecording(_:forRerunsChanging:)``):
    /// the slots whose values it keeps. `nil`: every step's inputs and outputs.
    let keep: Set<Int>?
    var entries: [Entry] = []
    /// Values present before the first step: feeds and constants, by slot.
    var initial: [Int: NDArray] = [:]
    /// The outputs of the run, by name.
    public internal(set) var outputs: [String: NDArray] = [:]

    init(interpreter: Interpreter, plan: ExecutionPlan, keep: Set<Int>? = nil) {
        self.interpreter = interpreter
        self.plan = plan
        self.keep = keep
    }

    func record(step: Int, inputs: [NDArray?], outputs: [NDArray?]) {
        guard let keep else {
            entries.append(Entry(step: step, inputs: inputs, outputs: outputs))
            return
        }
        let slots = plan.steps[step].outputs
        entries.append(Entry(step: step, inputs: [], outputs: outputs.enumerated().map { k, a in
            k < slots.count && keep.contains(slots[k]) ? a : nil
        }))
    }

    /// Drops the recorded run's output `name` (a large one its user has read): reruns are not
    /// affected, they compute their own outputs.
    public func releaseOutput(named name: String) { outputs[name] = nil }

    /// The slot of a graph input, initializer or graph output named `name`.
    func slot(named name: String) throws -> Int {
        try Tape.slot(named: name, in: plan)
    }

    /// The slot of `name` in `plan`, or an error naming it.
    static func slot(named name: String, in plan: ExecutionPlan) throws -> Int {
        guard let s = plan.slot(named: name) else { throw RuntimeError.input("'\(name)' is not a value of the model") }
        return s
    }

    /// Reverse mode: the gradients of `Σ seeds[o] · output o` with respect to the values named in
    /// `wrt` (graph inputs, or initializers when the interpreter was built without constant folding).
    ///
    /// - Parameters:
    ///   - seeds: Cotangent per graph output name, shaped like the output.
    ///   - wrt: Names of graph inputs or initializers.
    /// - Returns: A gradient for every name in `wrt` (zeros when no path leads from it to a seed).
    /// - Throws: ``RuntimeError/kernel(node:op:reason:)`` for a node on a gradient path that has
    ///   no VJP, or whose VJP fails.
    public func backward(seeds: [String: NDArray], wrt: [String], registry: GradientRegistry = .standard) throws -> [String: NDArray] {
        guard keep == nil else { throw RuntimeError.input("this tape was recorded for reruns only: it has no backward pass") }
        let targets = try wrt.map { try slot(named: $0) }
        // Which slots depend on a target: only their steps need a VJP.
        var live = Set(targets)
        for e in entries {
            let step = plan.steps[e.step]
            if step.inputs.contains(where: { $0 >= 0 && live.contains($0) }) { live.formUnion(step.outputs) }
        }
        var grads: [Int: NDArray] = [:]
        for (name, g) in seeds {
            let s = try slot(named: name)
            grads[s] = g
        }
        let context = KernelContext(interpreter: interpreter, frame: Frame(plan: plan, parent: nil))
        for e in entries.reversed() {
            let step = plan.steps[e.step]
            let outGrads: [NDArray?] = step.outputs.map { grads[$0] }
            guard outGrads.contains(where: { $0 != nil }) else { continue }
            let needs = step.inputs.enumerated().map { i, s in
                s >= 0 && live.contains(s) && (e.inputs[i].map { GradientMath.isDifferentiable($0.dtype) } ?? false)
            }
            guard needs.contains(true) else { continue }
            let domain = step.node.opType.canonicalDomain
            guard let vjp = registry.vjp(domain: domain, op: step.node.opType.name) else {
                throw RuntimeError.kernel(node: step.name, op: step.op, reason: "no gradient (VJP) for \(step.op); the gradient path goes through it")
            }
            let ctx = GradientContext(
                node: step.node, opset: interpreter.opsets[domain] ?? 1, inputs: e.inputs, outputs: e.outputs, needs: needs, kernel: context)
            let inGrads: [NDArray?]
            do {
                inGrads = try vjp(ctx, outGrads)
            } catch let err as KernelError {
                throw RuntimeError.kernel(node: step.name, op: step.op, reason: "gradient: \(err.reason)")
            }
            for (i, s) in step.inputs.enumerated() where s >= 0 && needs[i] && i < inGrads.count {
                guard let g = inGrads[i], let x = e.inputs[i] else { continue }
                guard g.shape == x.shape else {
                    throw RuntimeError.kernel(node: step.name, op: step.op, reason: "gradient of input \(i) has shape \(g.shape), the input \(x.shape)")
                }
                grads[s] = grads[s].map { GradientMath.sum($0, g) } ?? g
            }
        }
        var out: [String: NDArray] = [:]
        for (name, s) in zip(wrt, targets) {
            if let g = grads[s] {
                out[name] = g
            } else if let x = initial[s] {
                out[name] = NDArray(zeros: x.dtype, shape: x.shape)
            }
        }
        return out
    }
}

extension Interpreter {
    /// Runs the model like ``run(_:)`` and records a ``Tape`` for reverse mode.
    public func runRecording(_ inputs: [String: NDArray]) throws -> Tape {
        let tape = Tape(interpreter: self, plan: mainPlan)
        let outs = try runOrdered(inputs, tape: tape)
        for (v, a) in zip(model.graph.outputs, outs) { tape.outputs[v.name] = a }
        return tape
    }

    /// Runs the model on its fused plan and records a ``Tape`` for ``Tape/rerun(changing:fused:)``
    /// with new values of the inputs named in `names` (any of them, together or alone), and for
    /// nothing else: it keeps only the values such a rerun reads without recomputing them (on a
    /// decoder whose blocks are gated, each block's residual stream and branch, and the tables
    /// every layer reads), not every activation. It has no backward pass.
    ///
    /// A rerun changing a set of inputs recomputes the steps that depend on any of them; the
    /// values those steps read and do not recompute are values one input's rerun reads too.
    ///
    /// - Throws: ``RuntimeError/input(_:)`` for a name that is not a graph input or initializer;
    ///   what ``run(_:)`` throws.
    public func runRecording(_ inputs: [String: NDArray], forRerunsChanging names: [String]) throws -> Tape {
        let plan = fastPlan!
        let changed = try names.map { try Tape.slot(named: $0, in: plan) }
        var keep = Set<Int>()
        var dirty = [Bool](repeating: false, count: plan.slotCount)
        for c in changed {
            for i in dirty.indices { dirty[i] = false }
            dirty[c] = true
            for step in plan.steps where step.inputs.contains(where: { $0 >= 0 && dirty[$0] }) {
                for s in step.inputs where s >= 0 && !dirty[s] { keep.insert(s) }
                for s in step.outputs { dirty[s] = true }
            }
        }
        let tape = Tape(interpreter: self, plan: plan, keep: keep)
        let outs = try execute(plan, feeds: try feedSlots(inputs), parent: nil, tape: tape)
        for (v, a) in zip(model.graph.outputs, outs) { tape.outputs[v.name] = a }
        return tape
    }
}

/// Elementwise helpers for gradients (float32; float64 where noted).
public enum GradientMath {
    /// Element types gradients flow through.
    public static func isDifferentiable(_ t: DType) -> Bool { t == .float || t == .double }

    /// `a + b` for equal shapes (a new array).
    public static func sum(_ a: NDArray, _ b: NDArray) -> NDArray {
        precondition(a.shape == b.shape && a.dtype == b.dtype)
        let out = NDArray(zeros: a.dtype, shape: a.shape)
        if a.dtype == .double {
            let x = a.buffer(as: Double.self), y = b.buffer(as: Double.self), o = out.buffer(as: Double.self)
            for i in 0..<a.count { o[i] = x[i] + y[i] }
        } else {
            let x = a.buffer(as: Float.self), y = b.buffer(as: Float.self), o = out.buffer(as: Float.self)
            for i in 0..<a.count { o[i] = x[i] + y[i] }
        }
        return out
    }

    /// Sums `g` (shaped like a broadcast result) down to `shape` (the operand it came from).
    public static func reduce(_ g: NDArray, to shape: [Int], _ ctx: KernelContext) -> NDArray {
        if g.shape == shape { return g }
        let out = ctx.zeros(g.dtype, shape)
        let strides = Broadcast.strides(of: shape, to: g.shape)
        if g.dtype == .double {
            let src = g.buffer(as: Double.self), dst = out.buffer(as: Double.self)
            Broadcast.forEachRun(shape: g.shape, strides: [strides]) { start, offs, n, inner in
                for j in 0..<n { dst[offs[0] + j * inner[0]] += src[start + j] }
            }
        } else {
            let src = g.buffer(as: Float.self), dst = out.buffer(as: Float.self)
            Broadcast.forEachRun(shape: g.shape, strides: [strides]) { start, offs, n, inner in
                for j in 0..<n { dst[offs[0] + j * inner[0]] += src[start + j] }
            }
        }
        return out
    }

    /// `f(g, x...)` elementwise over arrays broadcast to `shape`, as float32 (or float64 when `g` is).
    public static func map(_ shape: [Int], _ arrays: [NDArray], _ ctx: KernelContext, _ f: ([Double]) -> Double) -> NDArray {
        let dtype = arrays[0].dtype
        let out = ctx.allocate(dtype, shape)
        let strides = arrays.map { Broadcast.strides(of: $0.shape, to: shape) }
        var args = [Double](repeating: 0, count: arrays.count)
        if dtype == .double {
            let ins = arrays.map { $0.buffer(as: Double.self) }, o = out.buffer(as: Double.self)
            Broadcast.forEachRun(shape: shape, strides: strides) { start, offs, n, inner in
                for j in 0..<n {
                    for k in 0..<ins.count { args[k] = ins[k][offs[k] + j * inner[k]] }
                    o[start + j] = f(args)
                }
            }
        } else {
            let ins = arrays.map { $0.buffer(as: Float.self) }, o = out.buffer(as: Float.self)
            Broadcast.forEachRun(shape: shape, strides: strides) { start, offs, n, inner in
                for j in 0..<n {
                    for k in 0..<ins.count { args[k] = Double(ins[k][offs[k] + j * inner[k]]) }
                    o[start + j] = Float(f(args))
                }
            }
        }
        return out
    }

    /// The cotangent of an output, or zeros shaped like it when none reached it.
    public static func orZeros(_ g: NDArray?, like y: NDArray, _ ctx: KernelContext) -> NDArray {
        g ?? ctx.zeros(y.dtype, y.shape)
    }
}
