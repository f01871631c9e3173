import Foundation
import PruneIR

// Recurrent layers: RNN, GRU, LSTM (forward, reverse, bidirectional; layout 0 and 1;
// sequence_lens; the spec's activation functions; clip; LSTM peepholes and input_forget;
// GRU linear_before_reset).
//
// Each direction does the input projection for all time steps in one GEMM
// (X · Wᵀ, [seq·batch, gates·hidden]) and one small GEMM per step for the recurrent part
// (H · Rᵀ). Computation is in float32; double and float16 inputs are converted.
func registerRecurrentKernels(_ r: inout KernelRegistry) {
    // Version 1 had `output_sequence`; 7 made Y optional; 14 added `layout`; 22 added bfloat16.
    for since in [1, 7, 14] {
        r.register("RNN", since: since) { info in try RecurrentKernel(cell: .rnn, info: info) }
        r.register("LSTM", since: since) { info in try RecurrentKernel(cell: .lstm, info: info) }
    }
    // GRU-3 added linear_before_reset.
    for since in [1, 3, 7, 14] {
        r.register("GRU", since: since) { info in try RecurrentKernel(cell: .gru, info: info) }
    }
}

/// An activation function from the ONNX recurrent-op list, applied in place to float vectors.
enum RecurrentActivation {
    case sigmoid, tanh, relu, softsign, softplus
    case affine(Float, Float)
    case leakyRelu(Float)
    case thresholdedRelu(Float)
    case scaledTanh(Float, Float)
    case hardSigmoid(Float, Float)
    case elu(Float)

    /// Parses `names` (case-insensitive), taking alpha/beta values in order from the lists for
    /// the functions that use them and the spec's defaults when the lists run out.
    static func parse(_ names: [String], alphas: [Float], betas: [Float]) throws -> [RecurrentActivation] {
        var ai = 0, bi = 0
        func alpha(_ d: Float) -> Float { defer { ai += 1 }; return ai < alphas.count ? alphas[ai] : d }
        func beta(_ d: Float) -> Float { defer { bi += 1 }; return bi < betas.count ? betas[bi] : d }
        return try names.map { name in
            switch name.lowercased() {
            case "sigmoid": return .sigmoid
            case "tanh": return .tanh
            case "relu": return .relu
            case "softsign": return .softsign
            case "softplus": return .softplus
            case "affine": return .affine(alpha(1), beta(0))
            case "leakyrelu": return .leakyRelu(alpha(0.01))
            case "thresholdedrelu": return .thresholdedRelu(alpha(1))
            case "scaledtanh": return .scaledTanh(alpha(1), beta(1))
            case "hardsigmoid": return .hardSigmoid(alpha(0.2), beta(0.5))
            case "elu": return .elu(alpha(1))
            default: throw KernelError.unsupported("activation '\(name)'")
            }
        }
    }

    /// Applies the function to `n` floats at `p`, in place.
    func apply(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        switch self {
        case .sigmoid:
            for i in 0..<n { p[i] = 1 / (1 + Foundation.exp(-p[i])) }
        case .tanh:
            for i in 0..<n { p[i] = Foundation.tanh(p[i]) }
        case .relu:
            for i in 0..<n { p[i] = max(p[i], 0) }
        case .softsign:
            for i in 0..<n { p[i] = p[i] / (1 + abs(p[i])) }
        case .softplus:
            for i in 0..<n { p[i] = Foundation.log1p(Foundation.exp(p[i])) }
        case .affine(let a, let b):
            for i in 0..<n { p[i] = a * p[i] + b }
        case .leakyRelu(let a):
            for i in 0..<n { p[i] = p[i] >= 0 ? p[i] : a * p[i] }
        case .thresholdedRelu(let a):
            for i in 0..<n { p[i] = p[i] > a ? p[i] : 0 }
        case .scaledTanh(let a, let b):
            for i in 0..<n { p[i] = a * Foundation.tanh(b * p[i]) }
        case .hardSigmoid(let a, let b):
            for i in 0..<n { p[i] = min(1, max(0, a * p[i] + b)) }
        case .elu(let a):
            for i in 0..<n { p[i] = p[i] >= 0 ? p[i] : a * (Foundation.exp(p[i]) - 1) }
        }
    }
}

/// RNN, GRU and LSTM: one kernel, the cell chosen at build time.
final class RecurrentKernel: Kernel {
    enum Cell {
        case rnn, gru, lstm

        /// Gates per hidden unit in W and R.
        var gates: Int {
            switch self {
            case .rnn: return 1
            case .gru: return 3
            case .lstm: return 4
            }
        }

        /// Activation functions per direction, and their defaults.
        var defaultActivations: [String] {
            switch self {
            case .rnn: return ["Tanh"]
            case .gru: return ["Sigmoid", "Tanh"]
            case .lstm: return ["Sigmoid", "Tanh", "Tanh"]
            }
        }
    }

    let cell: Cell
    let directions: Int
    let reverseOnly: Bool
    let hiddenSize: Int?
    let layout: Int
    let clip: Float?
    let linearBeforeReset: Bool
    let inputForget: Bool
    /// Activations per direction.
    let activations: [[RecurrentActivation]]
    /// Which of Y, Y_h, Y_c the node asks for.
    let wants: [Bool]

    init(cell: Cell, info: KernelBuildInfo) throws {
        self.cell = cell
        if let t = info.inputType(0), t != .float, t != .double, t != .float16 {
            throw KernelError.unsupported("element type \(t)")
        }
        let direction: String = try info.attribute("direction", default: "forward")
        switch direction {
        case "forward": directions = 1; reverseOnly = false
        case "reverse": directions = 1; reverseOnly = true
        case "bidirectional": directions = 2; reverseOnly = false
        default: throw KernelError("unknown direction '\(direction)'")
        }
        hiddenSize = try info.attribute("hidden_size", as: Int.self)
        layout = try info.attribute("layout", default: 0)
        guard layout == 0 || layout == 1 else { throw KernelError("layout must be 0 or 1, got \(layout)") }
        clip = try info.attribute("clip", as: Float.self)
        linearBeforeReset = try info.attribute("linear_before_reset", default: 0) != 0
        inputForget = try info.attribute("input_forget", default: 0) != 0
        let names: [String] = try info.attribute("activations", default: [])
        let alphas: [Float] = try info.attribute("activation_alpha", default: [])
        let betas: [Float] = try info.attribute("activation_beta", default: [])
        let per = cell.defaultActivations.count
        let all = try RecurrentActivation.parse(names.isEmpty ? cell.defaultActivations : names, alphas: alphas, betas: betas)
        if all.count == per * directions {
            activations = (0..<directions).map { Array(all[($0 * per)..<(($0 + 1) * per)]) }
        } else if all.count == per {
            activations = Array(repeating: all, count: directions)
        } else {
            throw KernelError("\(all.count) activations given, expected \(per * directions)")
        }
        wants = (0..<(cell == .lstm ? 3 : 2)).map { i in i < info.node.outputs.count && !info.node.outputs[i].name.isEmpty }
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let xIn = try inputs.required(0), wIn = try inputs.required(1), rIn = try inputs.required(2)
        let dtype = xIn.dtype
        guard dtype == .float || dtype == .double || dtype == .float16 else { throw KernelError("element type \(dtype) is not supported") }
        guard xIn.rank == 3, wIn.rank == 3, rIn.rank == 3 else {
            throw KernelError("X, W, R must have rank 3, got \(xIn.shape), \(wIn.shape), \(rIn.shape)")
        }
        let G = cell.gates
        let H = hiddenSize ?? rIn.shape[2]
        let D = directions
        let (T, B) = layout == 0 ? (xIn.shape[0], xIn.shape[1]) : (xIn.shape[1], xIn.shape[0])
        let I = xIn.shape[2]
        guard wIn.shape == [D, G * H, I], rIn.shape == [D, G * H, H] else {
            throw KernelError("W \(wIn.shape) / R \(rIn.shape) do not match \(D) direction(s), \(G)×\(H) gates, input size \(I)")
        }
        var keep: [NDArray] = []
        func floats(_ a: NDArray?, _ shape: [Int], _ name: String) throws -> UnsafeMutablePointer<Float>? {
            guard let a else { return nil }
            guard a.count == shape.reduce(1, *) else { throw KernelError("\(name) has shape \(a.shape), expected \(shape)") }
            let f = recurrentFloats(a, context)
            keep.append(f)
            return f.pointer(as: Float.self)
        }
        let stateShape = layout == 0 ? [D, B, H] : [B, D, H]
        let x = try floats(xIn, xIn.shape, "X")!
        let w = try floats(wIn, wIn.shape, "W")!
        let r = try floats(rIn, rIn.shape, "R")!
        let bias = try floats(inputs.optional(3), [D, 2 * G * H], "B")
        let lens: [Int]? = inputs.optional(4).map { $0.ints() }
        if let lens, lens.count != B { throw KernelError("sequence_lens has \(lens.count) entries for batch \(B)") }
        let h0 = try floats(inputs.optional(5), stateShape, "initial_h")
        let c0 = cell == .lstm ? try floats(inputs.optional(6), stateShape, "initial_c") : nil
        let peep = cell == .lstm ? try floats(inputs.optional(7), [D, 3 * H], "P") : nil

        let yShape = layout == 0 ? [T, D, B, H] : [B, T, D, H]
        let y = context.allocate(.float, yShape)
        let yh = context.allocate(.float, stateShape)
        let yc = context.allocate(.float, stateShape)
        let GH = G * H
        // Scratch: projections for all steps, gate rows, state, recurrent products.
        let xp = context.allocate(.float, [T * B, GH])
        let gates = context.allocate(.float, [B, GH])
        let rec = context.allocate(.float, [B, GH])
        let hState = context.allocate(.float, [B, H])
        let cState = context.allocate(.float, [B, H])
        let hNew = context.allocate(.float, [B, H])
        let cNew = context.allocate(.float, [B, H])
        let biasSum = context.allocate(.float, [GH])
        keep += [y, yh, yc, xp, gates, rec, hState, cState, hNew, cNew, biasSum]

        withExtendedLifetime(keep) {
            for d in 0..<D {
                let reverse = reverseOnly || d == 1
                runDirection(
                    d: d, reverse: reverse, T: T, B: B, I: I, H: H, D: D,
                    x: x, w: w.advanced(by: d * GH * I), r: r.advanced(by: d * GH * H),
                    bias: bias.map { $0.advanced(by: d * 2 * GH) }, lens: lens,
                    h0: h0, c0: c0, peep: peep.map { $0.advanced(by: d * 3 * H) },
                    y: y.pointer(as: Float.self), yh: yh.pointer(as: Float.self), yc: yc.pointer(as: Float.self),
                    xp: xp.pointer(as: Float.self), gates: gates.pointer(as: Float.self), rec: rec.pointer(as: Float.self),
                    h: hState.pointer(as: Float.self), c: cState.pointer(as: Float.self),
                    hNew: hNew.pointer(as: Float.self), cNew: cNew.pointer(as: Float.self),
                    biasSum: biasSum.pointer(as: Float.self), context: context)
            }
        }
        var outs: [NDArray?] = [y, yh]
        if cell == .lstm { outs.append(yc) }
        return outs.enumerated().map { i, a in wants[i] ? a.map { recurrentConverted($0, dtype, context) } : nil }
    }

    /// One direction over the whole sequence.
    private func runDirection(
        d: Int, reverse: Bool, T: Int, B: Int, I: Int, H: Int, D: Int,
        x: UnsafeMutablePointer<Float>, w: UnsafeMutablePointer<Float>, r: UnsafeMutablePointer<Float>,
        bias: UnsafeMutablePointer<Float>?, lens: [Int]?,
        h0: UnsafeMutablePointer<Float>?, c0: UnsafeMutablePointer<Float>?, peep: UnsafeMutablePointer<Float>?,
        y: UnsafeMutablePointer<Float>, yh: UnsafeMutablePointer<Float>, yc: UnsafeMutablePointer<Float>,
        xp: UnsafeMutablePointer<Float>, gates: UnsafeMutablePointer<Float>, rec: UnsafeMutablePointer<Float>,
        h: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>,
        hNew: UnsafeMutablePointer<Float>, cNew: UnsafeMutablePointer<Float>,
        biasSum: UnsafeMutablePointer<Float>, context: KernelContext
    ) {
        let G = cell.gates, GH = G * H
        let acts = activations[d]
        // Input projection for every (time, batch) row of X at once; row order follows the layout.
        BLAS.sgemm(transA: false, transB: true, m: T * B, n: GH, k: I, a: x, lda: I, b: w, ldb: I, c: xp, ldc: GH, threads: context.threads)
        // Wb + Rb, except GRU's Rb_h under linear_before_reset, which goes inside r ⊙ (...).
        let rbh: UnsafeMutablePointer<Float>? = (cell == .gru && linearBeforeReset) ? bias.map { $0.advanced(by: GH + 2 * H) } : nil
        for g in 0..<GH {
            var v: Float = 0
            if let bias {
                v = bias[g]
                if !(rbh != nil && g >= 2 * H) { v += bias[GH + g] }
            }
            biasSum[g] = v
        }
        // Initial state.
        func stateOffset(_ b: Int) -> Int { layout == 0 ? (d * B + b) * H : (b * D + d) * H }
        for b in 0..<B {
            for j in 0..<H {
                h[b * H + j] = h0?[stateOffset(b) + j] ?? 0
                c[b * H + j] = c0?[stateOffset(b) + j] ?? 0
            }
        }
        let clipValue = clip
        @inline(__always) func clipped(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
            guard let cv = clipValue else { return }
            for i in 0..<n { p[i] = min(cv, max(-cv, p[i])) }
        }
        for s in 0..<T {
            let t = reverse ? T - 1 - s : s
            // Gate pre-activations: projected input plus biases.
            for b in 0..<B {
                let row = layout == 0 ? t * B + b : b * T + t
                let src = xp.advanced(by: row * GH), dst = gates.advanced(by: b * GH)
                for g in 0..<GH { dst[g] = src[g] + biasSum[g] }
            }
            switch cell {
            case .rnn:
                BLAS.sgemm(transA: false, transB: true, m: B, n: H, k: H, a: h, lda: H, b: r, ldb: H, beta: 1, c: gates, ldc: GH, threads: context.threads)
                for b in 0..<B {
                    let g = gates.advanced(by: b * GH)
                    clipped(g, H)
                    acts[0].apply(g, H)
                    hNew.advanced(by: b * H).update(from: g, count: H)
                }
            case .lstm:
                BLAS.sgemm(transA: false, transB: true, m: B, n: GH, k: H, a: h, lda: H, b: r, ldb: H, beta: 1, c: gates, ldc: GH, threads: context.threads)
                for b in 0..<B {
                    // Gate order in W/R/B: input, output, forget, cell.
                    let gi = gates.advanced(by: b * GH), go = gi + H, gf = gi + 2 * H, gc = gi + 3 * H
                    let cp = c.advanced(by: b * H), cn = cNew.advanced(by: b * H), hn = hNew.advanced(by: b * H)
                    if let peep {
                        for j in 0..<H { gi[j] += peep[j] * cp[j] }
                        for j in 0..<H { gf[j] += peep[2 * H + j] * cp[j] }
                    }
                    clipped(gi, H); acts[0].apply(gi, H)
                    if inputForget {
                        for j in 0..<H { gf[j] = 1 - gi[j] }
                    } else {
                        clipped(gf, H); acts[0].apply(gf, H)
                    }
                    clipped(gc, H); acts[1].apply(gc, H)
                    for j in 0..<H { cn[j] = gf[j] * cp[j] + gi[j] * gc[j] }
                    if let peep { for j in 0..<H { go[j] += peep[H + j] * cn[j] } }
                    clipped(go, H); acts[0].apply(go, H)
                    hn.update(from: cn, count: H)
                    acts[2].apply(hn, H)
                    for j in 0..<H { hn[j] *= go[j] }
                }
            case .gru:
                // Gate order: update (z), reset (r), hidden (h).
                if linearBeforeReset {
                    BLAS.sgemm(transA: false, transB: true, m: B, n: GH, k: H, a: h, lda: H, b: r, ldb: H, c: rec, ldc: GH, threads: context.threads)
                } else {
                    BLAS.sgemm(transA: false, transB: true, m: B, n: 2 * H, k: H, a: h, lda: H, b: r, ldb: H, c: rec, ldc: GH, threads: context.threads)
                }
                for b in 0..<B {
                    let gz = gates.advanced(by: b * GH), gr = gz + H
                    let rz = rec.advanced(by: b * GH), rr = rz + H
                    for j in 0..<H { gz[j] += rz[j]; gr[j] += rr[j] }
                    clipped(gz, 2 * H)
                    acts[0].apply(gz, 2 * H)
                }
                if linearBeforeReset {
                    for b in 0..<B {
                        let gr = gates.advanced(by: b * GH + H), gh = gr + H
                        let rh = rec.advanced(by: b * GH + 2 * H)
                        for j in 0..<H { gh[j] += gr[j] * (rh[j] + (rbh?[j] ?? 0)) }
                    }
                } else {
                    // (r ⊙ H) · R_hᵀ, with r ⊙ H staged in hNew.
                    for b in 0..<B {
                        let gr = gates.advanced(by: b * GH + H), hp = h.advanced(by: b * H), dst = hNew.advanced(by: b * H)
                        for j in 0..<H { dst[j] = gr[j] * hp[j] }
                    }
                    BLAS.sgemm(transA: false, transB: true, m: B, n: H, k: H, a: hNew, lda: H,
                               b: r.advanced(by: 2 * H * H), ldb: H, beta: 1, c: gates.advanced(by: 2 * H), ldc: GH, threads: context.threads)
                }
                for b in 0..<B {
                    let gz = gates.advanced(by: b * GH), gh = gz + 2 * H
                    let hp = h.advanced(by: b * H), hn = hNew.advanced(by: b * H)
                    clipped(gh, H)
                    acts[1].apply(gh, H)
                    for j in 0..<H { hn[j] = (1 - gz[j]) * gh[j] + gz[j] * hp[j] }
                }
            }
            // Commit the new state for rows still inside their sequence; Y is zero past the end.
            for b in 0..<B {
                let active = lens.map { t < $0[b] } ?? true
                let yRow = y.advanced(by: layout == 0 ? ((t * D + d) * B + b) * H : ((b * T + t) * D + d) * H)
                if active {
                    h.advanced(by: b * H).update(from: hNew.advanced(by: b * H), count: H)
                    if cell == .lstm { c.advanced(by: b * H).update(from: cNew.advanced(by: b * H), count: H) }
                    yRow.update(from: hNew.advanced(by: b * H), count: H)
                } else {
                    yRow.update(repeating: 0, count: H)
                }
            }
        }
        for b in 0..<B {
            yh.advanced(by: stateOffset(b)).update(from: h.advanced(by: b * H), count: H)
            yc.advanced(by: stateOffset(b)).update(from: c.advanced(by: b * H), count: H)
        }
    }
}

/// `a` as float32: itself when it already is, otherwise a converted copy.
private func recurrentFloats(_ a: NDArray, _ context: KernelContext) -> NDArray {
    if a.dtype == .float { return a }
    let out = context.allocate(.float, a.shape)
    let dst = out.pointer(as: Float.self)
    switch a.dtype {
    case .double:
        let src = a.pointer(as: Double.self)
        for i in 0..<a.count { dst[i] = Float(src[i]) }
    case .float16:
        let src = a.pointer(as: Float16.self)
        for i in 0..<a.count { dst[i] = Float(src[i]) }
    default:
        for i in 0..<a.count { dst[i] = Float(a.element(at: i)) }
    }
    return out
}

/// A float32 array converted to `dtype` (float, double or float16).
private func recurrentConverted(_ a: NDArray, _ dtype: DType, _ context: KernelContext) -> NDArray {
    if dtype == .float { return a }
    let out = context.allocate(dtype, a.shape)
    let src = a.pointer(as: Float.self)
    switch dtype {
    case .double:
        let dst = out.pointer(as: Double.self)
        for i in 0..<a.count { dst[i] = Double(src[i]) }
    case .float16:
        let dst = out.pointer(as: Float16.self)
        for i in 0..<a.count { dst[i] = Float16(src[i]) }
    default:
        preconditionFailure("fromFloat to \(dtype)")
    }
    return out
}
