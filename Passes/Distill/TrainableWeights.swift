import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// Which of the student's initializers `distill` trains, and the training copy of the student
/// that reads them as graph inputs (so reverse mode over the interpreter's tape yields
/// `∂loss/∂W`), with the matched feature points added as graph outputs.
///
/// Candidates are the floating-point initializers with more than one element that feed a node
/// (masks `prunec.mask.*` never train). `all` trains every candidate; `norms-biases` the rank-1
/// ones (norm scales and shifts, biases); `lora` the rank-2 `B` operands of `MatMul`/`Gemm`,
/// through low-rank adapters (see ``DistillPass``). `nodes=GLOB` keeps the candidates whose name,
/// or the name of a node reading them, matches. A candidate whose gradient path (through float
/// values) crosses an op with no VJP is left out with a note, so the tape can always differentiate.
final class TrainableWeights {
    /// One trained tensor.
    struct Param {
        /// The initializer's name in the student.
        let name: String
        /// The training copy's graph input that replaces it.
        let input: String
        let shape: [Int]
        let dtype: DType
        /// The weights as trained (for LoRA: the frozen base weights).
        var values: [Double]
    }

    /// The trained tensors.
    var params: [Param]
    /// The copy of the student with ``params`` as graph inputs and the feature points as outputs.
    let trainingModel: Model
    /// Candidates left out because their gradient path crosses an op with no VJP.
    let skipped: [(name: String, op: String)]

    /// The names of the training copy's weight inputs, for `Tape.backward(seeds:wrt:)`.
    var inputNames: [String] { params.map(\.input) }

    init(student: Model, mode: DistillPass.Options.Train, pattern: String?, features: [String]) throws {
        let graph = student.graph
        var readers: [ObjectIdentifier: [Node]] = [:]
        for node in graph.allNodes {
            for v in node.inputs.compactMap({ $0 }) where v.initializer != nil { readers[ObjectIdentifier(v), default: []].append(node) }
        }
        var chosen: [Value] = []
        var skipped: [(String, String)] = []
        for v in graph.initializers {
            guard let t = v.initializer, t.dtype == .float || t.dtype == .double, t.elementCount > 1,
                !v.name.hasPrefix("prunec.mask."), let nodes = readers[ObjectIdentifier(v)], !nodes.isEmpty
            else { continue }
            switch mode {
            case .all: break
            case .normsBiases: guard t.shape.count == 1 else { continue }
            case .lora:
                guard t.shape.count == 2,
                    nodes.allSatisfy({ n in (n.opType == .matMul || n.opType == .gemm) && n.inputs.count > 1 && n.inputs[1] === v })
                else { continue }
            }
            if let pattern, !Glob.matches(pattern, v.name), !nodes.contains(where: { Glob.matches(pattern, $0.name) }) { continue }
            if let op = Self.nonDifferentiable(from: v) {
                skipped.append((v.name, op))
                continue
            }
            chosen.append(v)
        }
        self.skipped = skipped
        let copy = student.copy()
        var params: [Param] = []
        for v in chosen {
            guard let cv = copy.graph.initializers.first(where: { $0.name == v.name }), let t = cv.initializer else { continue }
            var name = "\(v.name).distill"
            while copy.graph.value(named: name) != nil { name += "_" }
            let input = Value(name: name, type: .tensor(t.dtype, Shape(t.shape)))
            copy.graph.addInput(input)
            cv.replaceAllUses(with: input)
            try copy.graph.removeInitializer(cv)
            params.append(Param(name: v.name, input: name, shape: t.shape, dtype: t.dtype, values: try NDArray(tensor: t).doubles()))
        }
        for f in features {
            if let v = copy.graph.value(named: f), !copy.graph.outputs.contains(where: { $0 === v }) { copy.graph.outputs.append(v) }
        }
        self.params = params
        trainingModel = copy
    }

    /// Feeds for the training copy holding `values` (one array per param).
    func feeds(_ values: [[Double]]) -> [String: NDArray] {
        var out: [String: NDArray] = [:]
        for (p, v) in zip(params, values) {
            out[p.input] = p.dtype == .double ? NDArray(v, shape: p.shape) : NDArray(v.map { Float($0) }, shape: p.shape)
        }
        return out
    }

    /// Writes `values` into the student's initializers (same names, shapes and element types).
    func write(_ values: [[Double]], into student: Model) {
        for (p, v) in zip(params, values) {
            guard let value = student.graph.initializers.first(where: { $0.name == p.name }) else { continue }
            let array = p.dtype == .double ? NDArray(v, shape: p.shape) : NDArray(v.map { Float($0) }, shape: p.shape)
            student.graph.setInitializer(value, to: array.tensor(name: p.name))
        }
    }

    /// The first op without a VJP that a gradient from `v` would have to cross (following float
    /// values only), or `nil`.
    static func nonDifferentiable(from v: Value) -> String? {
        var stack = [v]
        var seen = Set<ObjectIdentifier>()
        while let x = stack.popLast() {
            for use in x.uses {
                let node = use.node
                guard seen.insert(ObjectIdentifier(node)).inserted else { continue }
                // A node with no float output (Shape, a comparison) passes no gradient on.
                let floatOutputs = node.outputs.filter { o in !o.isOmitted && (o.type?.elementType).map { $0 == .float || $0 == .double } ?? true }
                if floatOutputs.isEmpty { continue }
                if GradientRegistry.standard.vjp(domain: node.opType.canonicalDomain, op: node.opType.name) == nil { return node.opType.name }
                stack.append(contentsOf: floatOutputs)
            }
        }
        return nil
    }
}

/// Low-rank adapters: `W' = W + B·A` per trained matrix (`B` rows×r, zeros at first; `A` r×cols,
/// small random), trained by the chain rule from `∂loss/∂W'` (`∂A = Bᵀ·∂W'`, `∂B = ∂W'·Aᵀ`) and
/// merged into `W` at the end, so no adapter node is ever part of a model.
struct LowRankAdapters {
    /// Rows, columns and rank of each adapter.
    let shapes: [(rows: Int, cols: Int, rank: Int)]

    init(params: [TrainableWeights.Param], rank: Int) {
        shapes = params.map { p in (p.shape[0], p.shape[1], max(1, min(rank, min(p.shape[0], p.shape[1])))) }
    }

    /// Initial `[A, B]` per adapter, flattened: `A` ~ N(0, 1/cols), `B` = 0.
    func initial(rng: inout NoiseSource) -> [[Double]] {
        var out: [[Double]] = []
        for s in shapes {
            let sd = 1 / Double(s.cols).squareRoot()
            out.append((0..<(s.rank * s.cols)).map { _ in rng.normal() * sd })
            out.append([Double](repeating: 0, count: s.rows * s.rank))
        }
        return out
    }

    /// `W + B·A` per adapter (`adapters` as from ``initial(rng:)``).
    func merged(base: [[Double]], adapters: [[Double]]) -> [[Double]] {
        shapes.enumerated().map { k, s in
            let a = adapters[2 * k], b = adapters[2 * k + 1]
            var w = base[k]
            for i in 0..<s.rows {
                for r in 0..<s.rank where b[i * s.rank + r] != 0 {
                    let bir = b[i * s.rank + r]
                    for j in 0..<s.cols { w[i * s.cols + j] += bir * a[r * s.cols + j] }
                }
            }
            return w
        }
    }

    /// `[∂A, ∂B]` per adapter from `∂W'` per matrix.
    func gradients(_ dW: [[Double]], adapters: [[Double]]) -> [[Double]] {
        var out: [[Double]] = []
        for (k, s) in shapes.enumerated() {
            let a = adapters[2 * k], b = adapters[2 * k + 1], g = dW[k]
            var da = [Double](repeating: 0, count: s.rank * s.cols)
            var db = [Double](repeating: 0, count: s.rows * s.rank)
            for i in 0..<s.rows {
                for r in 0..<s.rank {
                    let bir = b[i * s.rank + r]
                    var acc = 0.0
                    for j in 0..<s.cols {
                        let gij = g[i * s.cols + j]
                        acc += gij * a[r * s.cols + j]
                        da[r * s.cols + j] += bir * gij
                    }
                    db[i * s.rank + r] = acc
                }
            }
            out.append(da)
            out.append(db)
        }
        return out
    }
}

/// Shell-style patterns for `nodes=`: `*` any run of characters, `?` one character.
enum Glob {
    /// Whether `text` matches `pattern` as a whole.
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) {
                pi += 1
                ti += 1
            } else if pi < p.count && p[pi] == "*" {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
