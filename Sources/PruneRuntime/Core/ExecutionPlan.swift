import Foundation
import PruneIR

/// A graph compiled for execution: kernels made, values numbered into slots, and for each step
/// the slots whose last use it is (the liveness plan that lets the pool reuse their memory).
final class ExecutionPlan {
    struct Step {
        let node: Node
        let name: String
        let op: String
        let kernel: any Kernel
        /// Input slots, -1 for an omitted optional input.
        let inputs: [Int]
        let outputs: [Int]
        /// Slots to drop after this step.
        var release: [Int]
        /// Set for steps that only compute on shapes (see ``memoizeShapeArithmetic()``).
        var memo: Memo? = nil
        /// Whether this step is a Shape/Size op: a root of the shape arithmetic (its memo is
        /// keyed by its input's shape).
        var isShapeRoot = false
    }

    /// The last inputs and outputs of a step whose inputs are small and derived only from
    /// shapes and constants: when a run feeds it equal inputs, the outputs are reused.
    final class Memo {
        static let maxBytes = 4096
        private var inputs: [NDArray?] = []
        /// The outputs of the step's last run (when ``valid``).
        private(set) var outputs: [NDArray?] = []
        /// Whether ``outputs`` are those of the step's last run.
        private(set) var valid = false
        /// For a Shape/Size step: the shape its input had on the last run.
        private var rootShape: [Int]? = nil

        /// For a Shape/Size step (a root of the shape arithmetic): the remembered outputs if the
        /// input has the shape it had on the last run. Compares a few integers, no elements.
        @inline(__always)
        func lookup(rootShape shape: [Int]) -> [NDArray?]? {
            valid && rootShape == shape ? outputs : nil
        }

        /// Remembers a Shape/Size step's run.
        func store(rootShape shape: [Int], _ outs: [NDArray?]) {
            rootShape = shape
            outputs = outs.map { $0?.copy() }
            valid = true
        }

        /// The remembered outputs if `current` equals the remembered inputs.
        func lookup(_ current: [NDArray?]) -> [NDArray?]? {
            guard valid, current.count == inputs.count else { return nil }
            for (a, b) in zip(current, inputs) {
                switch (a, b) {
                case (nil, nil): continue
                case let (a?, b?):
                    guard a.dtype == b.dtype, a.shape == b.shape,
                        memcmp(a.rawPointer, b.rawPointer, a.byteCount) == 0
                    else { return nil }
                default: return nil
                }
            }
            return outputs
        }

        /// Remembers a run (private copies, so no arena block stays held); too large: forget.
        func store(_ ins: [NDArray?], _ outs: [NDArray?]) {
            let bytes = ins.reduce(0) { $0 + ($1?.byteCount ?? 0) } + outs.reduce(0) { $0 + ($1?.byteCount ?? 0) }
            guard bytes <= Memo.maxBytes else { valid = false; return }
            inputs = ins.map { $0?.copy() }
            outputs = outs.map { $0?.copy() }
            valid = true
        }
    }

    let graph: Graph
    private(set) var slots: [ObjectIdentifier: Int] = [:]

    /// The slot of `v`, if this plan has one.
    func slot(of v: Value) -> Int? { slots[ObjectIdentifier(v)] }
    /// The slot of the graph input, initializer, node output or graph output named `name`.
    func slot(named name: String) -> Int? {
        (graph.value(named: name) ?? graph.outputs.first(where: { $0.name == name })).flatMap(slot(of:))
    }
    var slotCount = 0
    /// Initializers and Constant outputs, filled once per run.
    var constants: [(slot: Int, array: NDArray)] = []
    /// Graph inputs, in order, with their slot.
    private(set) var inputs: [(value: Value, slot: Int)] = []
    private(set) var outputSlots: [Int] = []
    /// Values defined outside this graph that it (or a nested subgraph) reads.
    private(set) var captures: [(slot: Int, value: Value)] = []
    var steps: [Step] = []
    /// Profile counters per step (see ``Profile``).
    var stepSeconds: [Double] = []
    var stepCalls: [Int] = []

    /// A plan that runs the same steps (kernels shared) with its own profile counters and memos
    /// left as they are: the base of ``fused()``.
    init(copying other: ExecutionPlan) {
        graph = other.graph
        slots = other.slots
        slotCount = other.slotCount
        constants = other.constants
        inputs = other.inputs
        outputSlots = other.outputSlots
        captures = other.captures
        steps = other.steps
        stepSeconds = other.stepSeconds
        stepCalls = other.stepCalls
        memoState = other.memoState
    }

    /// Compiles `graph`. Collects every node it cannot run into `unsupported` instead of throwing,
    /// so the caller can report them all at once.
    init(graph: Graph, opsets: [String: Int], registry: KernelRegistry, unsupported: inout [RuntimeError.UnsupportedNode]) throws {
        self.graph = graph
        func slot(_ v: Value) -> Int {
            let id = ObjectIdentifier(v)
            if let s = slots[id] { return s }
            slots[id] = slotCount
            slotCount += 1
            return slotCount - 1
        }

        var defined = Set<ObjectIdentifier>()
        for v in graph.inputs {
            inputs.append((v, slot(v)))
            defined.insert(ObjectIdentifier(v))
        }
        for v in graph.initializers {
            guard let t = v.initializer else { continue }
            constants.append((slot(v), try NDArray(tensor: t)))
            defined.insert(ObjectIdentifier(v))
        }

        // Slots in first-use order; liveness is the index of the last step reading a slot.
        var lastUse: [Int: Int] = [:]
        var pending: [(index: Int, node: Node, kernel: (any Kernel)?, ins: [Int], outs: [Int])] = []
        for (index, node) in graph.nodes.enumerated() {
            let name = node.name.isEmpty ? "\(node.opType.name)#\(index)" : node.name
            // onnxruntime runs contrib ops of a domain the model forgot to import; so do we (newest kernel).
            let domain = KernelRegistry.normalize(node.opType.domain)
            let opset = opsets[domain] ?? (domain.isEmpty ? 0 : Int.max)
            var ins: [Int] = []
            for input in node.inputs {
                guard let v = input else { ins.append(-1); continue }
                let id = ObjectIdentifier(v)
                if !defined.contains(id) && slots[id] == nil {
                    // Read from an enclosing graph.
                    captures.append((slot(v), v))
                    defined.insert(id)
                }
                let s = slot(v)
                ins.append(s)
                lastUse[s] = index
            }
            // Values a node's subgraphs read from this graph or beyond must live until the node ran.
            for v in ExecutionPlan.freeValues(ofSubgraphsOf: node) {
                let id = ObjectIdentifier(v)
                if !defined.contains(id) && slots[id] == nil {
                    captures.append((slot(v), v))
                    defined.insert(id)
                }
                lastUse[slot(v)] = index
            }
            let outs = node.outputs.map { v -> Int in
                defined.insert(ObjectIdentifier(v))
                return slot(v)
            }

            var kernel: (any Kernel)?
            if node.opType == .constant, let t = node.outputs.first.flatMap({ $0.constantValue }) {
                do {
                    constants.append((outs[0], try NDArray(tensor: t)))
                } catch {
                    unsupported.append(.init(node: name, op: node.opType.description, opset: opset, reason: "\(error)"))
                }
                continue
            }
            if let factory = registry.kernel(domain: node.opType.domain, op: node.opType.name, opset: opset) {
                do {
                    kernel = try factory(KernelBuildInfo(node: node, opset: opset))
                } catch let e as KernelError where e.unsupported {
                    unsupported.append(.init(node: name, op: node.opType.description, opset: opset, reason: e.reason))
                } catch let e as KernelError {
                    throw RuntimeError.kernel(node: name, op: node.opType.description, reason: e.reason)
                } catch let e as RuntimeError {
                    if case .unsupportedNodes(let inner) = e { unsupported += inner } else { throw e }
                }
            } else {
                let known = registry.contains(domain: node.opType.domain, op: node.opType.name)
                unsupported.append(.init(
                    node: name, op: node.opType.description, opset: opset,
                    reason: known ? "no kernel for opset \(opset)" : "operator not implemented"))
            }
            pending.append((index, node, kernel, ins, outs))
        }

        // A subgraph may return an enclosing graph's value directly (no node reads it here).
        for v in graph.outputs where !defined.contains(ObjectIdentifier(v)) {
            captures.append((slot(v), v))
            defined.insert(ObjectIdentifier(v))
        }

        var keep = Set(graph.outputs.map { slot($0) })
        for c in constants { keep.insert(c.slot) }
        for c in captures { keep.insert(c.slot) }
        outputSlots = graph.outputs.map { slot($0) }

        var releaseAt: [Int: [Int]] = [:]
        for (s, step) in lastUse where !keep.contains(s) { releaseAt[step, default: []].append(s) }
        for p in pending {
            guard let kernel = p.kernel else { continue }
            let nodeIndex = p.index
            var release = releaseAt[nodeIndex] ?? []
            // Outputs nobody reads are dropped at once.
            for s in p.outs where lastUse[s] == nil && !keep.contains(s) { release.append(s) }
            let name = p.node.name.isEmpty ? "\(p.node.opType.name)#\(nodeIndex)" : p.node.name
            steps.append(Step(node: p.node, name: name, op: p.node.opType.name, kernel: kernel,
                              inputs: p.ins, outputs: p.outs, release: release))
        }
        stepSeconds = Array(repeating: 0, count: steps.count)
        stepCalls = Array(repeating: 0, count: steps.count)
    }

    /// Largest output a folded step may keep for the life of the plan.
    static let maxFoldedBytes = 1 << 20

    /// Runs, once, every step whose inputs are all constants (initializers, Constant outputs or
    /// earlier folded results) and keeps its outputs as constants, so runs skip it: exported
    /// models carry many such chains (shape arithmetic on constants, rotary tables, masks).
    /// Steps with subgraphs, nondeterministic ops, steps that throw, and results over
    /// ``maxFoldedBytes`` (unless no larger than their inputs) are left to run normally.
    /// Returns the number of steps folded.
    @discardableResult
    func foldConstants(_ run: (Step, [NDArray?]) throws -> [NDArray?]) -> Int {
        var known: [Int: NDArray] = [:]
        // An initializer that is also a graph input is only a default: the caller may override it.
        let overridable = Set(inputs.map(\.slot))
        for c in constants where !overridable.contains(c.slot) { known[c.slot] = c.array }
        var kept: [Step] = []
        var keptSeconds: [Double] = []
        var folded = 0
        for step in steps {
            let foldable = !Interpreter.nondeterministicOps.contains(step.op) && step.node.subgraphs.isEmpty
                && step.inputs.allSatisfy { $0 < 0 || known[$0] != nil }
                && step.inputs.contains { $0 >= 0 }
            if foldable, let outs = try? run(step, step.inputs.map { $0 < 0 ? nil : known[$0] }) {
                let inBytes = step.inputs.reduce(0) { $0 + ($1 < 0 ? 0 : known[$1]!.byteCount) }
                let outBytes = outs.reduce(0) { $0 + ($1?.byteCount ?? 0) }
                if outs.count == step.outputs.count, outs.allSatisfy({ $0 != nil }),
                    outBytes <= max(ExecutionPlan.maxFoldedBytes, inBytes)
                {
                    for (slot, a) in zip(step.outputs, outs) {
                        // A private copy, so the arena gets its block back.
                        let owned = a!.copy()
                        known[slot] = owned
                        constants.append((slot, owned))
                    }
                    folded += 1
                    continue
                }
            }
            kept.append(step)
            keptSeconds.append(0)
        }
        if folded > 0 {
            // Release lists of removed steps only named slots that are constants now or dead.
            steps = kept
            stepSeconds = keptSeconds
            stepCalls = Array(repeating: 0, count: kept.count)
        }
        return folded
    }

    /// Ops whose outputs depend only on their input's shape.
    static let shapeOps: Set<String> = ["Shape", "Size"]

    /// Whether the last run of this plan finished: then every memoized step's remembered outputs
    /// belong to that run, and a run whose Shape/Size steps all see the shapes they saw then may
    /// reuse the outputs of the shape arithmetic that follows without comparing anything.
    /// Shared with plans made by ``init(copying:)``, whose steps share the memos.
    var shapeMemosConsistent: Bool {
        get { memoState.consistent }
        set { memoState.consistent = newValue }
    }
    final class MemoState { var consistent = false }
    private(set) var memoState = MemoState()

    /// Marks the steps that compute only on shapes and constants (Shape → Gather → Unsqueeze →
    /// Concat chains, position ranges, ...) so that a run with the same input shapes reuses
    /// their previous outputs instead of running them. Exported models with symbolic dims carry
    /// dozens of such nodes, each costing more in overhead than in arithmetic.
    func memoizeShapeArithmetic() {
        var derived = Set(constants.map(\.slot)).subtracting(inputs.map(\.slot))
        for i in steps.indices {
            let step = steps[i]
            if ExecutionPlan.shapeOps.contains(step.op) && step.node.opType.domain.isEmpty && step.inputs.first.map({ $0 >= 0 }) == true {
                steps[i].memo = Memo()
                steps[i].isShapeRoot = true
                derived.formUnion(step.outputs)
                continue
            }
            guard !Interpreter.nondeterministicOps.contains(step.op), step.node.subgraphs.isEmpty,
                step.inputs.contains(where: { $0 >= 0 }),
                step.inputs.allSatisfy({ $0 < 0 || derived.contains($0) })
            else { continue }
            steps[i].memo = Memo()
            derived.formUnion(step.outputs)
        }
    }

    /// Values that `node`'s subgraphs (at any depth) read but do not define.
    static func freeValues(ofSubgraphsOf node: Node) -> [Value] {
        var out: [Value] = []
        var seen = Set<ObjectIdentifier>()
        for g in node.subgraphs {
            var defined = Set<ObjectIdentifier>()
            for v in g.inputs { defined.insert(ObjectIdentifier(v)) }
            for v in g.initializers { defined.insert(ObjectIdentifier(v)) }
            for n in g.nodes { for v in n.outputs { defined.insert(ObjectIdentifier(v)) } }
            for n in g.nodes {
                let reads = n.inputs.compactMap { $0 } + freeValues(ofSubgraphsOf: n)
                for v in reads where !defined.contains(ObjectIdentifier(v)) && seen.insert(ObjectIdentifier(v)).inserted {
                    out.append(v)
                }
            }
            for v in g.outputs where !defined.contains(ObjectIdentifier(v)) && seen.insert(ObjectIdentifier(v)).inserted {
                out.append(v)
            }
        }
        return out
    }
}
