import Foundation
import PruneIR

extension Tape {
    /// Runs the model again with some graph inputs changed, recomputing only the steps that depend
    /// on them and taking every other value from this recording: the unchanged prefix of the graph
    /// is reused. Scoring one masked unit at a time (LD-Pruner, block skipping) costs the cone
    /// below the unit's gate instead of the whole model.
    ///
    /// With `fused`, the recomputed steps are those of the plan plain runs execute (see
    /// ``Interpreter/Options/fuse``: products with their bias, RMSNorm chains, rotary halves and
    /// elementwise regions as one step each), which reads the values the recording holds through
    /// the same slots. The outputs then differ from the recorded plan's by float rounding only,
    /// as ``Interpreter/run(_:)``'s do from a recorded run's.
    ///
    /// - Parameters:
    ///   - changed: New values for graph inputs, by name (same shapes as recorded).
    ///   - fused: Recompute on the fused plan instead of one step per node.
    /// - Returns: The outputs by name.
    public func rerun(changing changed: [String: NDArray], fused: Bool = false) throws -> [String: NDArray] {
        // The fused plan is a copy of the recorded one: every value both have keeps its slot, and
        // the constants it adds (folded weights) take slots after the recorded plan's.
        // A tape for reruns only was recorded on the fused plan.
        let run = fused || keep != nil ? interpreter.fastPlan! : plan
        // The frame holds the values: a fused step that falls back to the steps it replaced reads
        // their other operands (scalar constants) from it.
        let frame = Frame(plan: run, parent: nil)
        let values = frame.values
        for (s, a) in initial { values[s] = a }
        if run !== plan { for c in run.constants { values[c.slot] = c.array } }
        for e in entries {
            let step = plan.steps[e.step]
            for (k, s) in step.outputs.enumerated() where k < e.outputs.count { values[s] = e.outputs[k] }
        }
        var dirty = [Bool](repeating: false, count: run.slotCount)
        for (name, a) in changed {
            let s = try slot(named: name)
            values[s] = a
            dirty[s] = true
        }
        let context = KernelContext(interpreter: interpreter, frame: frame)
        var ins: [NDArray?] = []
        for step in run.steps {
            guard step.inputs.contains(where: { $0 >= 0 && dirty[$0] }) else { continue }
            ins.removeAll(keepingCapacity: true)
            for s in step.inputs { ins.append(s < 0 ? nil : values[s]) }
            // A value a partial tape did not keep would read as an omitted optional input.
            if keep != nil, let k = step.inputs.indices.first(where: { step.inputs[$0] >= 0 && ins[$0] == nil }) {
                throw RuntimeError.kernel(node: step.name, op: step.op, reason: "rerun: input \(k) was not kept by the recording")
            }
            let outs: [NDArray?]
            do {
                outs = try step.kernel.run(ins, context)
            } catch let err as KernelError {
                throw RuntimeError.kernel(node: step.name, op: step.op, reason: err.reason)
            }
            for (k, s) in step.outputs.enumerated() {
                values[s] = k < outs.count ? outs[k] : nil
                dirty[s] = true
            }
            // Recomputed values nobody reads again go back to the arena now, as in a plain run.
            for s in step.release where dirty[s] { values[s] = nil }
        }
        var out: [String: NDArray] = [:]
        for (v, s) in zip(plan.graph.outputs, plan.outputSlots) { out[v.name] = values[s] }
        withExtendedLifetime(frame) {}
        return out
    }

    /// How many of the recorded steps depend on the named inputs (the work ``rerun(changing:fused:)`` does).
    public func stepsDepending(on names: [String]) throws -> Int {
        var dirty = Set(try names.map { try slot(named: $0) })
        var n = 0
        for e in entries {
            let step = plan.steps[e.step]
            guard step.inputs.contains(where: { $0 >= 0 && dirty.contains($0) }) else { continue }
            dirty.formUnion(step.outputs)
            n += 1
        }
        return n
    }

    /// Steps recorded.
    public var stepCount: Int { entries.count }
}
