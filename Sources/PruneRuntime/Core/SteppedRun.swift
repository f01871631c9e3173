import Foundation
import PruneIR

/// One run of a model that advances a step at a time: a caller reads a value as soon as it is
/// computed, and may replace a value that no step has read yet before the run goes on.
///
/// Layer-by-layer calibration uses it: ``reconstruct`` walks the network once, re-fitting each
/// layer between the step that computes the layer's input and the step that reads its weights,
/// instead of running the whole model again for every layer it re-fits. Values are released after
/// their last reader as in a normal run, so what a sweep holds is the activations crossing its
/// current position (the boundary), not the whole run.
///
/// ```swift
/// let run = try SteppedRun(interpreter: interpreter, inputs: feeds)
/// let x = try run.value(named: "/layers.0/mlp/down_proj/MatMul_input")   // runs up to it
/// try run.replace("down_proj.weight", with: refitted)                    // not read yet
/// let outputs = try run.finish()
/// ```
///
/// Steps run as the interpreter's plan for plain runs has them. Built with `fuse: false`, every
/// value of the graph can be read; built with `fusions: .attention`, every value but attention's
/// scores and probabilities, which are never whole in memory (a walk over a UNet at 64×64 would
/// otherwise hold [1, 8, 4096, 4096] twice per sample). A value inside a fused step cannot be
/// read or replaced.
public final class SteppedRun {
    private let plan: ExecutionPlan
    private let frame: Frame
    /// Runs the kernels; it holds the interpreter.
    private let context: KernelContext
    /// The first step reading each slot (`Int.max`: none).
    private let firstReader: [Int]
    /// The step writing each slot (-1: an input or constant).
    private let producer: [Int]
    private let constantSlots: Set<Int>, inputSlots: Set<Int>

    /// Steps run so far.
    public private(set) var position = 0
    /// Steps of a whole run.
    public var stepCount: Int { plan.steps.count }

    /// Binds `inputs` (checked as ``Interpreter/run(_:)`` checks them); no step runs yet.
    ///
    /// - Throws: ``RuntimeError/input(_:)`` for a missing or mismatched input.
    public init(interpreter: Interpreter, inputs: [String: NDArray]) throws {
        plan = interpreter.fastPlan
        frame = Frame(plan: plan, parent: nil)
        context = KernelContext(interpreter: interpreter, frame: frame)
        var firstReader = [Int](repeating: .max, count: plan.slotCount), producer = [Int](repeating: -1, count: plan.slotCount)
        for (i, step) in plan.steps.enumerated() {
            for s in step.inputs where s >= 0 && firstReader[s] == .max { firstReader[s] = i }
            for s in step.outputs { producer[s] = i }
        }
        self.firstReader = firstReader
        self.producer = producer
        constantSlots = Set(plan.constants.map(\.slot))
        inputSlots = Set(plan.inputs.map(\.slot))
        for c in plan.constants { frame.values[c.slot] = c.array }
        for (s, a) in try interpreter.feedSlots(inputs) { frame.values[s] = a }
    }

    /// The value named `name` (a graph input, initializer or node output), running the steps up to
    /// the one that computes it.
    ///
    /// - Throws: ``RuntimeError`` when the graph has no such value, a step fails, or the value was
    ///   already released (its last reader ran before this call).
    public func value(named name: String) throws -> NDArray {
        let s = try slot(named: name)
        if let a = frame.values[s] { return a }
        if producer[s] < 0 && !constantSlots.contains(s) && !inputSlots.contains(s) {
            throw RuntimeError.input("stepped run: '\(name)' is computed inside a fused step and cannot be read")
        }
        guard producer[s] >= position else {
            throw RuntimeError.input("stepped run: '\(name)' was released after its last reader ran (step \(position) of \(stepCount))")
        }
        while position <= producer[s] { try step() }
        guard let a = frame.values[s] else {
            throw RuntimeError.kernel(node: plan.steps[producer[s]].name, op: plan.steps[producer[s]].op, reason: "'\(name)' was not computed")
        }
        return a
    }

    /// Replaces the value named `name` for the rest of the run. No step may have read it yet, and
    /// the new value must have its element type and shape (the steps after it were planned for
    /// them). An initializer must also be a graph input: steps reading only constants may have
    /// been computed once when the interpreter was built.
    ///
    /// - Throws: ``RuntimeError/input(_:)`` naming the value when a step has read it already, it is
    ///   an initializer that is not a graph input, or the new value does not match.
    public func replace(_ name: String, with a: NDArray) throws {
        let s = try slot(named: name)
        if constantSlots.contains(s) && !inputSlots.contains(s) {
            throw RuntimeError.input("stepped run: '\(name)' is an initializer and not a graph input; only inputs can be replaced")
        }
        if producer[s] < 0 && !constantSlots.contains(s) && !inputSlots.contains(s) {
            throw RuntimeError.input("stepped run: '\(name)' is computed inside a fused step and cannot be replaced")
        }
        guard firstReader[s] >= position else {
            throw RuntimeError.input("stepped run: '\(name)' cannot be replaced: step \(firstReader[s]) (\(plan.steps[firstReader[s]].name)) has read it already")
        }
        if let old = frame.values[s], old.dtype != a.dtype || old.shape != a.shape {
            throw RuntimeError.input("stepped run: '\(name)' is \(old.dtype) \(old.shape); its replacement is \(a.dtype) \(a.shape)")
        }
        frame.values[s] = a
    }

    /// Runs the remaining steps and returns the graph's outputs by name.
    ///
    /// - Throws: ``RuntimeError`` when a step fails.
    public func finish() throws -> [String: NDArray] {
        while position < plan.steps.count { try step() }
        var out: [String: NDArray] = [:]
        for (v, s) in zip(plan.graph.outputs, plan.outputSlots) { out[v.name] = frame.values[s] }
        return out
    }

    private func step() throws {
        let step = plan.steps[position]
        let ins = step.inputs.map { $0 < 0 ? nil : frame.values[$0] }
        let outs: [NDArray?]
        do {
            outs = try step.kernel.run(ins, context)
        } catch let e as KernelError {
            throw RuntimeError.kernel(node: step.name, op: step.op, reason: e.reason)
        }
        for (k, s) in step.outputs.enumerated() { frame.values[s] = k < outs.count ? outs[k] : nil }
        for s in step.release { frame.values[s] = nil }
        position += 1
    }

    private func slot(named name: String) throws -> Int {
        guard let s = plan.slot(named: name) else { throw RuntimeError.input("stepped run: '\(name)' is not a value of the model") }
        return s
    }
}
