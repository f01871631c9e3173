import Foundation
import PruneIR

/// Runs a model on the reference kernels.
///
/// Building an interpreter compiles the main graph (and, lazily, its subgraphs): every node gets
/// a kernel, or the build throws ``RuntimeError/unsupportedNodes(_:)`` naming all nodes that have
/// none, before anything runs. ``run(_:)`` may be called many times; memory returns to the pool
/// after each value's last use and is reused by the next run.
public final class Interpreter {
    /// Interpreter settings.
    public struct Options: Sendable {
        /// Threads for BLAS and the parallel loops of the other kernels. Each interpreter passes
        /// its own count to its BLAS calls, so interpreters with different counts can coexist.
        public var threads: Int
        /// Record time per node (cheap; on by default).
        public var profile: Bool
        /// Compute steps whose inputs are all constants once, when the interpreter is built.
        public var foldConstants: Bool
        /// Run plain (unrecorded) runs on a plan with fused steps: Conv with a following
        /// BatchNormalization folded into its weights, and a constant bias Add and a Relu after
        /// a Conv, MatMul or Gemm applied in place. Recorded runs always execute node by node.
        public var fuse: Bool
        /// Which fusions a plan with fused steps has (when ``fuse`` is set). A value inside a
        /// fused step is never computed, so a ``SteppedRun`` that reads layer inputs and outputs
        /// asks for ``Fusions/attention`` alone.
        public var fusions: Fusions

        /// Settings with `threads` threads.
        public init(threads: Int = 1, profile: Bool = true, foldConstants: Bool = true, fuse: Bool = true,
                    fusions: Fusions = .all) {
            self.threads = max(1, threads)
            self.profile = profile
            self.foldConstants = foldConstants
            self.fuse = fuse
            self.fusions = fusions
        }
    }

    /// Groups of steps the interpreter may run as one (see ``ExecutionPlan`` fusions).
    public struct Fusions: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        /// Conv, MatMul and Gemm with what follows them: BatchNormalization, a constant bias, a
        /// residual Add, Relu.
        public static let products = Fusions(rawValue: 1 << 0)
        /// RMSNorm as exporters decompose it.
        public static let normalization = Fusions(rawValue: 1 << 1)
        /// Llama's `rotate_half` rotary embedding.
        public static let rotary = Fusions(rawValue: 1 << 2)
        /// Regions of float32 elementwise steps.
        public static let elementwise = Fusions(rawValue: 1 << 3)
        /// Scores, scale, mask, softmax and values of attention, a block of query rows at a time.
        public static let attention = Fusions(rawValue: 1 << 4)
        /// Every fusion.
        public static let all: Fusions = [.products, .normalization, .rotary, .elementwise, .attention]
    }

    /// Ops whose result is not a function of their inputs: never folded or memoized, here or
    /// by passes that evaluate constant nodes.
    public static let nondeterministicOps: Set<String> = [
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial",
    ]

    /// The model being run.
    public let model: Model
    /// The settings it was built with.
    public let options: Options
    /// The arena: buffers for intermediate values.
    public let pool = MemoryPool()
    /// Whether runs record time per node (starts as ``Options/profile``). Timing costs two clock
    /// reads per node, which shows on small models: benchmarks time with it off.
    public var profiling: Bool
    /// Steps computed once at build time because all their inputs are constants.
    public private(set) var foldedSteps = 0
    /// Time spent per node and per op type, accumulated over runs.
    public let profile = Profile()

    let registry: KernelRegistry
    let opsets: [String: Int]
    /// The main graph, one step per node: what recorded runs (tapes, gradients) execute.
    let mainPlan: ExecutionPlan
    /// The main graph with the fusions of ``ExecutionPlan/fused()``: what plain runs execute.
    private(set) var fastPlan: ExecutionPlan! = nil
    private var subgraphPlans: [ObjectIdentifier: ExecutionPlan] = [:]
    private let planLock = NSLock()

    /// Compiles `model`. Throws ``RuntimeError/unsupportedNodes(_:)`` listing every node (in the
    /// main graph and its subgraphs) that has no kernel.
    public init(model: Model, options: Options = Options(), registry: KernelRegistry = .standard) throws {
        self.model = model
        self.options = options
        self.profiling = options.profile
        self.registry = registry
        var opsets: [String: Int] = [:]
        for o in model.opsetImports { opsets[KernelRegistry.normalize(o.domain)] = Int(o.version) }
        self.opsets = opsets
        var unsupported: [RuntimeError.UnsupportedNode] = []
        mainPlan = try ExecutionPlan(graph: model.graph, opsets: opsets, registry: registry, unsupported: &unsupported)
        // Subgraphs are compiled now too, so that a missing kernel inside an If is reported up front.
        var stack = model.graph.nodes
        while let node = stack.popLast() {
            for g in node.subgraphs {
                let plan = try ExecutionPlan(graph: g, opsets: opsets, registry: registry, unsupported: &unsupported)
                subgraphPlans[ObjectIdentifier(g)] = plan
                stack += g.nodes
            }
        }
        if !unsupported.isEmpty { throw RuntimeError.unsupportedNodes(unsupported) }
        if options.foldConstants {
            for plan in [mainPlan] + Array(subgraphPlans.values) { foldedSteps += fold(plan) }
        }
        for plan in [mainPlan] + Array(subgraphPlans.values) { plan.memoizeShapeArithmetic() }
        fastPlan = options.fuse ? (mainPlan.fused(options.fusions) ?? mainPlan) : mainPlan
        profile.track(mainPlan)
        if fastPlan !== mainPlan { profile.track(fastPlan) }
        for p in subgraphPlans.values { profile.track(p) }
    }

    private func fold(_ plan: ExecutionPlan) -> Int {
        let context = KernelContext(interpreter: self, frame: Frame(plan: plan, parent: nil))
        return plan.foldConstants { step, inputs in try step.kernel.run(inputs, context) }
    }

    /// Bytes of all constants the plans hold: initializers (borrowed from the model file where
    /// aligned), Constant nodes and folded results.
    public var constantBytes: Int {
        planLock.lock()
        defer { planLock.unlock() }
        return ([mainPlan] + Array(subgraphPlans.values)).reduce(0) { sum, plan in
            sum + plan.constants.reduce(0) { $0 + $1.array.byteCount }
        }
    }

    /// The graph's inputs that a caller must provide (inputs with an initializer are optional).
    public var requiredInputs: [Value] { mainPlan.inputs.map(\.value).filter { $0.initializer == nil } }

    /// Runs the model on `inputs` (keyed by graph input name) and returns its outputs by name.
    ///
    /// Throws ``RuntimeError/input(_:)`` when an input is missing or its element type, rank or a
    /// fixed dimension differs from the model's, naming the input.
    public func run(_ inputs: [String: NDArray]) throws -> [String: NDArray] {
        let list = try runOrdered(inputs)
        var out: [String: NDArray] = [:]
        for (v, a) in zip(model.graph.outputs, list) { out[v.name] = a }
        return out
    }

    /// Like ``run(_:)``, with the outputs in graph order.
    public func runOrdered(_ inputs: [String: NDArray]) throws -> [NDArray] {
        try runOrdered(inputs, tape: nil)
    }

    func runOrdered(_ inputs: [String: NDArray], tape: Tape?) throws -> [NDArray] {
        try execute(tape == nil ? fastPlan : mainPlan, feeds: try feedSlots(inputs), parent: nil, tape: tape)
    }

    /// `inputs` checked against the graph's inputs and keyed by their slots (the two plans share
    /// the input slots).
    func feedSlots(_ inputs: [String: NDArray]) throws -> [Int: NDArray] {
        var feeds: [Int: NDArray] = [:]
        var symbols: [String: (Int, String)] = [:]
        let known = Set(mainPlan.inputs.map(\.value.name))
        for name in inputs.keys.sorted() where !known.contains(name) {
            throw RuntimeError.input("'\(name)' is not an input of the model (inputs: \(mainPlan.inputs.map(\.value.name).joined(separator: ", ")))")
        }
        for (v, slot) in mainPlan.inputs {
            guard let a = inputs[v.name] else {
                if v.initializer != nil { continue }
                throw RuntimeError.input("missing input '\(v.name)'\(v.type.map { " (\($0))" } ?? "")")
            }
            try Interpreter.check(a, against: v, symbols: &symbols)
            feeds[slot] = a
        }
        return feeds
    }

    static func check(_ a: NDArray, against v: Value, symbols: inout [String: (Int, String)]) throws {
        guard case .tensor(let dtype, let shape)? = v.type else { return }
        if dtype != a.dtype {
            throw RuntimeError.input("input '\(v.name)' has element type \(a.dtype), the model expects \(dtype)")
        }
        guard let shape else { return }
        guard shape.rank == a.rank else {
            throw RuntimeError.input("input '\(v.name)' has shape \(a.shape) (rank \(a.rank)), the model expects rank \(shape.rank): \(shape)")
        }
        for (i, d) in shape.dims.enumerated() {
            switch d {
            case .known(let n) where n != a.shape[i]:
                throw RuntimeError.input("input '\(v.name)' has shape \(a.shape), the model expects \(shape) (dimension \(i) must be \(n))")
            case .symbol(let s):
                if let (size, other) = symbols[s], size != a.shape[i] {
                    throw RuntimeError.input("input '\(v.name)' dimension \(i) ('\(s)') is \(a.shape[i]), but '\(other)' gave '\(s)' = \(size)")
                }
                symbols[s] = (a.shape[i], v.name)
            default: break
            }
        }
    }

    func plan(for graph: Graph) throws -> ExecutionPlan {
        planLock.lock()
        defer { planLock.unlock() }
        if let p = subgraphPlans[ObjectIdentifier(graph)] { return p }
        var unsupported: [RuntimeError.UnsupportedNode] = []
        let p = try ExecutionPlan(graph: graph, opsets: opsets, registry: registry, unsupported: &unsupported)
        if !unsupported.isEmpty { throw RuntimeError.unsupportedNodes(unsupported) }
        p.memoizeShapeArithmetic()
        subgraphPlans[ObjectIdentifier(graph)] = p
        profile.track(p)
        return p
    }

    /// Runs one plan. `parent` resolves the plan's captures (values of enclosing graphs).
    func execute(_ plan: ExecutionPlan, feeds: [Int: NDArray], parent: Frame?, tape: Tape? = nil) throws -> [NDArray] {
        let frame = Frame(plan: plan, parent: parent)
        // `values` is the frame's memory: the frame must outlive every use of it below.
        return try withExtendedLifetime(frame) { try run(plan, in: frame, feeds: feeds, parent: parent, tape: tape) }
    }

    private func run(_ plan: ExecutionPlan, in frame: Frame, feeds: [Int: NDArray], parent: Frame?, tape: Tape?) throws -> [NDArray] {
        let values = frame.values
        for c in plan.constants { values[c.slot] = c.array }
        for c in plan.captures {
            guard let a = parent?.lookup(c.value) else {
                throw RuntimeError.kernel(node: plan.graph.name, op: "subgraph", reason: "outer value '\(c.value.name)' is not available")
            }
            values[c.slot] = a
        }
        for (s, a) in feeds { values[s] = a }
        if let tape {
            for i in 0..<values.count { if let a = values[i] { tape.initial[i] = a } }
        }
        let context = KernelContext(interpreter: self, frame: frame)
        let profiling = self.profiling
        // The loop below is the interpreter's per-node overhead: no allocation of its own (the
        // input list is reused), unchecked slot access, counters written through raw buffers.
        var ins: [NDArray?] = []
        ins.reserveCapacity(8)
        // True while every Shape/Size step of this run saw the shape it saw on the last run: the
        // shape arithmetic fed by them then has the inputs it had, and its outputs are reused as
        // they are (see ``ExecutionPlan/shapeMemosConsistent``).
        var shapesAsBefore = plan.shapeMemosConsistent
        plan.shapeMemosConsistent = false
        try plan.steps.withUnsafeBufferPointer { steps in
            try plan.stepSeconds.withUnsafeMutableBufferPointer { seconds in
                try plan.stepCalls.withUnsafeMutableBufferPointer { calls in
                    for i in 0..<steps.count {
                        let t0 = profiling ? Profile.now() : 0
                        do {
                            ins.removeAll(keepingCapacity: true)
                            for s in steps[i].inputs { ins.append(s < 0 ? nil : values[s]) }
                            let outs: [NDArray?]
                            if let memo = steps[i].memo {
                                if steps[i].isShapeRoot {
                                    let shape = ins[0]?.shape ?? []
                                    if let known = memo.lookup(rootShape: shape) {
                                        outs = known
                                    } else {
                                        shapesAsBefore = false
                                        outs = try steps[i].kernel.run(ins, context)
                                        memo.store(rootShape: shape, outs)
                                    }
                                } else if shapesAsBefore && memo.valid {
                                    outs = memo.outputs
                                } else if let known = memo.lookup(ins) {
                                    outs = known
                                } else {
                                    outs = try steps[i].kernel.run(ins, context)
                                    memo.store(ins, outs)
                                }
                            } else {
                                outs = try steps[i].kernel.run(ins, context)
                            }
                            let outSlots = steps[i].outputs
                            for k in 0..<outSlots.count { values[outSlots[k]] = k < outs.count ? outs[k] : nil }
                            tape?.record(step: i, inputs: ins, outputs: outs)
                        } catch let e as KernelError {
                            throw RuntimeError.kernel(node: steps[i].name, op: steps[i].node.opType.description, reason: e.reason)
                        }
                        for s in steps[i].release { values[s] = nil }
                        if profiling {
                            seconds[i] += Profile.now() - t0
                            calls[i] += 1
                        }
                    }
                }
            }
        }
        ins.removeAll()
        plan.shapeMemosConsistent = true
        return try plan.outputSlots.enumerated().map { k, s in
            guard let a = values[s] else {
                throw RuntimeError.kernel(node: plan.graph.outputs[k].name, op: "output", reason: "graph output '\(plan.graph.outputs[k].name)' was not computed")
            }
            return a
        }
    }
}

/// The values of one running graph, linked to the frame of the graph that contains it.
final class Frame {
    let plan: ExecutionPlan
    let parent: Frame?
    /// One slot per value of the plan; raw so the step loop pays no exclusivity or CoW checks.
    let values: UnsafeMutableBufferPointer<NDArray?>

    init(plan: ExecutionPlan, parent: Frame?) {
        self.plan = plan
        self.parent = parent
        self.values = .allocate(capacity: max(1, plan.slotCount))
        values.initialize(repeating: nil)
    }

    deinit {
        _ = values.deinitialize()
        values.deallocate()
    }

    func lookup(_ v: Value) -> NDArray? {
        if let s = plan.slots[ObjectIdentifier(v)], let a = values[s] { return a }
        return parent?.lookup(v)
    }
}

/// What a running kernel can use: memory from the arena, the thread setting, parallel loops,
/// and (for control flow) running a subgraph.
public final class KernelContext {
    let interpreter: Interpreter
    let frame: Frame

    init(interpreter: Interpreter, frame: Frame) {
        self.interpreter = interpreter
        self.frame = frame
    }

    /// Threads kernels may use.
    public var threads: Int { interpreter.options.threads }

    /// A new array from the arena, elements uninitialized.
    public func allocate(_ dtype: DType, _ shape: [Int]) -> NDArray {
        let n = shape.reduce(1, *)
        return NDArray(dtype: dtype, shape: shape, storage: interpreter.pool.take(NDArray.byteCount(dtype, n)))
    }

    /// A new array from the arena for a shape computed from a model's constants or inputs
    /// (ConstantOfShape, Range, Tile, Pad, Resize...), elements uninitialized.
    ///
    /// - Throws: ``KernelError`` when a dimension is negative or the array cannot fit in memory
    ///   (see ``NDArray/checkedByteCount(_:_:)``); the interpreter names the node.
    public func allocate(_ dtype: DType, checking shape: [Int]) throws -> NDArray {
        NDArray(dtype: dtype, shape: shape, storage: interpreter.pool.take(try NDArray.checkedByteCount(dtype, shape)))
    }

    /// A new zero-filled array from the arena.
    public func zeros(_ dtype: DType, _ shape: [Int]) -> NDArray {
        let a = allocate(dtype, shape)
        memset(a.rawPointer, 0, a.byteCount)
        return a
    }

    /// Calls `body` on consecutive chunks of `0..<count`, on up to ``threads`` threads (up to 4
    /// chunks per thread, claimed dynamically). Chunks hold at least `grain` iterations, so small
    /// loops stay on one thread.
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let most = max(1, count / max(1, grain))
        if threads <= 1 || most <= 1 {
            body(0..<count)
            return
        }
        // Up to 4 chunks per thread, claimed as threads become free: a worker that starts late or
        // reads from a cold cache takes fewer, instead of the caller waiting for its one chunk.
        let chunks = min(threads * 4, most)
        VectorKernels.parallelFor(threads: min(threads, chunks), count: count, chunk: (count + chunks - 1) / chunks, body)
    }

    /// Runs `graph` (a subgraph of the node being run) with `inputs` bound to its inputs in order.
    /// Values it reads from enclosing graphs are resolved automatically.
    public func run(subgraph graph: Graph, inputs: [NDArray?]) throws -> [NDArray] {
        let plan = try interpreter.plan(for: graph)
        var feeds: [Int: NDArray] = [:]
        for (i, (_, slot)) in plan.inputs.enumerated() where i < inputs.count {
            if let a = inputs[i] { feeds[slot] = a }
        }
        return try interpreter.execute(plan, feeds: feeds, parent: frame)
    }
}

/// Time per node and per op type, accumulated over runs.
///
/// Each plan keeps per-step counters in flat arrays (no hashing on the hot path); this class
/// aggregates them on demand.
public final class Profile {
    /// Accumulated time of one op type or one node.
    public struct Entry: Sendable {
        /// Op type.
        public var op: String
        /// Number of executions.
        public var calls: Int
        /// Total seconds.
        public var seconds: Double
    }

    private var plans: [ExecutionPlan] = []
    private let lock = NSLock()

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    func track(_ plan: ExecutionPlan) {
        lock.lock()
        defer { lock.unlock() }
        plans.append(plan)
    }

    /// Per-op-type totals, slowest first. Time of nodes inside subgraphs is also counted in the
    /// If/Loop/Scan node that ran them.
    public var perOp: [Entry] {
        var byOp: [String: Entry] = [:]
        for (_, e) in perNode {
            byOp[e.op, default: Entry(op: e.op, calls: 0, seconds: 0)].calls += e.calls
            byOp[e.op]!.seconds += e.seconds
        }
        return byOp.values.sorted { $0.seconds > $1.seconds }
    }

    /// Per-node totals keyed by node name (nodes that never ran are left out).
    public var perNode: [String: Entry] {
        lock.lock()
        defer { lock.unlock() }
        var out: [String: Entry] = [:]
        for p in plans {
            for (i, step) in p.steps.enumerated() where p.stepCalls[i] > 0 {
                out[step.name, default: Entry(op: step.op, calls: 0, seconds: 0)].calls += p.stepCalls[i]
                out[step.name]!.seconds += p.stepSeconds[i]
            }
        }
        return out
    }

    /// Forgets everything recorded.
    public func reset() {
        lock.lock()
        defer { lock.unlock() }
        for p in plans {
            p.stepSeconds = Array(repeating: 0, count: p.steps.count)
            p.stepCalls = Array(repeating: 0, count: p.steps.count)
        }
    }
}
