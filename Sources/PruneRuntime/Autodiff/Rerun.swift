import Foundation
import PruneIR

extension Tape {
    /// Runs the model again with some graph inputs changed, recomputing only the steps that depend
    /// on them and taking every other value from this recording: the unchanged prefix of the graph
    /// is reused. Scoring one masked unit at a time (LD-Pruner, block skipping) costs the cone
    /// below the unit's gate instead of the whole model.
    ///
    /// - Parameter changed: New values for graph inputs, by name (same shapes as recorded).
    /// - Returns: The outputs by name.
    public func rerun(changing changed: [String: NDArray]) throws -> [String: NDArray] {
        var values = [NDArray?](repeating: nil, count: plan.slotCount)
        for (s, a) in initial { values[s] = a }
        for e in entries {
            let step = plan.steps[e.step]
            for (k, s) in step.outputs.enumerated() where k < e.outputs.count { values[s] = e.outputs[k] }
        }
        var dirty = Set<Int>()
        for (name, a) in changed {
            let s = try slot(named: name)
            values[s] = a
            dirty.insert(s)
        }
        let context = KernelContext(interpreter: interpreter, frame: Frame(plan: plan, parent: nil))
        for e in entries {
            let step = plan.steps[e.step]
            guard step.inputs.contains(where: { $0 >= 0 && dirty.contains($0) }) else { continue }
            let ins: [NDArray?] = step.inputs.map { $0 < 0 ? nil : values[$0] }
            let outs: [NDArray?]
            do {
                outs = try step.kernel.run(ins, context)
            } catch let err as KernelError {
                throw RuntimeError.kernel(node: step.name, op: step.op, reason: err.reason)
            }
            for (k, s) in step.outputs.enumerated() {
                values[s] = k < outs.count ? outs[k] : nil
                dirty.insert(s)
            }
        }
        var out: [String: NDArray] = [:]
        for (v, s) in zip(plan.graph.outputs, plan.outputSlots) { out[v.name] = values[s] }
        return out
    }

    /// How many of the recorded steps depend on the named inputs (the work ``rerun(changing:)`` does).
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
