import Foundation
import PruneIR

// onnxruntime's normalization contrib ops: SkipLayerNormalization, SkipSimplifiedLayerNormalization,
// SimplifiedLayerNormalization, EmbedLayerNormalization and GroupNorm.
//
// They follow onnxruntime's CPU kernels: float16 inputs are widened to float32, the row statistics
// are accumulated in double (as skip_layer_norm.cc does), and the results are narrowed again.
// onnxruntime defines no LayerNormalization in com.microsoft, so none is registered here.
func registerContribNormalizationKernels(_ r: inout KernelRegistry) {
    r.register("SkipLayerNormalization", domain: "com.microsoft", since: 1) { info in
        try SkipLayerNormKernel(info, simplified: false)
    }
    r.register("SkipSimplifiedLayerNormalization", domain: "com.microsoft", since: 1) { info in
        try SkipLayerNormKernel(info, simplified: true)
    }
    // onnxruntime registers SimplifiedLayerNormalization in the default domain (opset 1); some
    // exporters write it in com.microsoft, so it runs in both.
    for domain in ["", "com.microsoft"] {
        r.register("SimplifiedLayerNormalization", domain: domain, since: 1) { info in try SimplifiedLayerNormKernel(info) }
    }
    r.register("EmbedLayerNormalization", domain: "com.microsoft", since: 1) { info in try EmbedLayerNormKernel(info) }
    r.register("GroupNorm", domain: "com.microsoft", since: 1) { info in try ContribGroupNormKernel(info) }
}

/// The element types these kernels take for their float tensors: float32 and float16.
private func contribNormType(_ t: DType) -> Bool { t == .float || t == .float16 }

private func checkTypes(_ info: KernelBuildInfo, _ inputs: [Int]) throws {
    for i in inputs {
        if let t = info.inputType(i), !contribNormType(t) { throw KernelError.unsupported("element type \(t) (float and float16 only)") }
    }
}

/// Normalizes one row in place: `(x - mean) · invStd · gamma + beta`, or `x · invStd · gamma` when simplified.
/// Returns (mean, invStd); the statistics are accumulated in double, as onnxruntime does.
@inline(__always)
private func normalizeRow(_ row: UnsafeMutablePointer<Float>, _ n: Int, gamma: [Float], beta: [Float]?,
                          epsilon: Double, simplified: Bool) -> (Float, Float) {
    var sum = 0.0, sumSq = 0.0
    for h in 0..<n {
        let v = Double(row[h])
        sum += v
        sumSq += v * v
    }
    let mean = sum / Double(n)
    let denom = simplified ? (sumSq / Double(n) + epsilon).squareRoot() : (sumSq / Double(n) - mean * mean + epsilon).squareRoot()
    let m = simplified ? 0 : mean
    for h in 0..<n {
        var y = (Double(row[h]) - m) / denom * Double(gamma[h])
        if let beta { y += Double(beta[h]) }
        row[h] = Float(y)
    }
    return (Float(mean), Float(1 / denom))
}

/// `SkipLayerNormalization` / `SkipSimplifiedLayerNormalization`: layer norm of input + skip (+ bias).
///
/// Inputs: input [.., H], skip (same shape, or broadcast over the batch: [1, S, H] or [S, H]),
/// gamma [H], beta [H]? (not in the simplified op), bias [H]?. Outputs: output, mean?, inv_std_var?
/// (float32, the input's shape with a last axis of 1), input_skip_bias_sum?.
final class SkipLayerNormKernel: Kernel {
    let simplified: Bool
    let epsilon: Double

    init(_ info: KernelBuildInfo, simplified: Bool) throws {
        try checkTypes(info, [0, 1, 2, 3, 4])
        self.simplified = simplified
        // onnxruntime's default (kDefaultSkipLayerNormEpsilon).
        epsilon = Double(try info.attribute("epsilon", default: Float(1e-12)))
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), skip = try inputs.required(1), gammaIn = try inputs.required(2)
        let betaIn = simplified ? nil : inputs.optional(3)
        let biasIn = inputs.optional(simplified ? 3 : 4)
        for a in [x, skip, gammaIn] + [betaIn, biasIn].compactMap({ $0 }) where !contribNormType(a.dtype) {
            throw KernelError("element type \(a.dtype) is not supported (float and float16 only)")
        }
        guard x.rank == 2 || x.rank == 3, let H = x.shape.last, H > 0 else {
            throw KernelError("input must be 2-D or 3-D with a non-empty last axis, got \(x.shape)")
        }
        // skip: the input's shape, or one batch entry's worth that every batch entry reuses.
        let skipCount = skip.count
        guard skip.shape.last == H, skipCount > 0, x.count % skipCount == 0,
              skip.shape == x.shape || (x.rank == 3 && (skip.shape == [1, x.shape[1], H] || skip.shape == [x.shape[1], H]))
        else { throw KernelError("skip \(skip.shape) must be \(x.shape), [1, S, H] or [S, H]") }
        for (name, p) in [("gamma", gammaIn), ("beta", betaIn), ("bias", biasIn)] {
            if let p, p.shape != [H] { throw KernelError("\(name) must be [\(H)], got \(p.shape)") }
        }
        let xs = attentionFloats(x), ss = attentionFloats(skip), gamma = attentionFloats(gammaIn)
        let beta = betaIn.map(attentionFloats), bias = biasIn.map(attentionFloats)
        let rows = x.count / H
        var sum = [Float](repeating: 0, count: x.count)
        var out = [Float](repeating: 0, count: x.count)
        var means = [Float](repeating: 0, count: rows), invStds = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            let base = r * H, skipBase = base % skipCount
            for h in 0..<H {
                var v = xs[base + h] + ss[skipBase + h]
                if let bias { v += bias[h] }
                sum[base + h] = v
            }
        }
        // The sum output is rounded like the input; onnxruntime normalizes the rounded sum too.
        if x.dtype == .float16 { for i in sum.indices { sum[i] = Float(Float16(sum[i])) } }
        out = sum
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows {
                (means[r], invStds[r]) = normalizeRow(o.baseAddress! + r * H, H, gamma: gamma, beta: beta,
                                                      epsilon: epsilon, simplified: simplified)
            }
        }
        // onnxruntime reports a mean of zero for the simplified op, which subtracts none.
        if simplified { means = [Float](repeating: 0, count: rows) }
        let statShape = Array(x.shape.dropLast()) + [1]
        return [
            out.withUnsafeBufferPointer { attentionArray($0.baseAddress!, x.dtype, x.shape, context) },
            means.withUnsafeBufferPointer { attentionArray($0.baseAddress!, .float, statShape, context) },
            invStds.withUnsafeBufferPointer { attentionArray($0.baseAddress!, .float, statShape, context) },
            sum.withUnsafeBufferPointer { attentionArray($0.baseAddress!, x.dtype, x.shape, context) },
        ]
    }
}

/// `SimplifiedLayerNormalization` (RMS norm): `X / sqrt(mean(X²) + epsilon) · scale` over the axes from
/// `axis` on. Outputs Y and inv_std_var? (float32, X's shape with the normalized axes set to 1).
final class SimplifiedLayerNormKernel: Kernel {
    let axis: Int
    let epsilon: Double

    init(_ info: KernelBuildInfo) throws {
        try checkTypes(info, [0, 1])
        axis = try info.attribute("axis", default: -1)
        epsilon = Double(try info.attribute("epsilon", default: Float(1e-5)))
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), scaleIn = try inputs.required(1)
        for a in [x, scaleIn] where !contribNormType(a.dtype) { throw KernelError("element type \(a.dtype) is not supported") }
        let a = axis < 0 ? axis + x.rank : axis
        guard a >= 0, a < x.rank else { throw KernelError("axis \(axis) is out of range for rank \(x.rank)") }
        let n = x.shape[a...].reduce(1, *)
        guard n > 0, scaleIn.count == n else { throw KernelError("scale \(scaleIn.shape) must hold the \(n) elements of \(Array(x.shape[a...]))") }
        let rows = x.count / n
        var out = attentionFloats(x)
        let scale = attentionFloats(scaleIn)
        var inv = [Float](repeating: 0, count: rows)
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows {
                inv[r] = normalizeRow(o.baseAddress! + r * n, n, gamma: scale, beta: nil, epsilon: epsilon, simplified: true).1
            }
        }
        let statShape = Array(x.shape[..<a]) + [Int](repeating: 1, count: x.rank - a)
        return [
            out.withUnsafeBufferPointer { attentionArray($0.baseAddress!, x.dtype, x.shape, context) },
            inv.withUnsafeBufferPointer { attentionArray($0.baseAddress!, .float, statShape, context) },
        ]
    }
}

/// `EmbedLayerNormalization`: layer norm of word + position (+ segment) embeddings, plus a mask index.
///
/// Inputs: input_ids [B, S] (int32), segment_ids? [B, S], word_embedding [V, H], position_embedding
/// [P, H], segment_embedding? [G, H], gamma [H], beta [H], mask? [B, S], position_ids? ([B, S] or
/// [1, S]; without it position s reads row s). Outputs: output [B, S, H], mask_index [B] (int32: the
/// number of ones in each mask row, zeros without a mask), embedding_sum? [B, S, H].
final class EmbedLayerNormKernel: Kernel {
    let epsilon: Double

    init(_ info: KernelBuildInfo) throws {
        try checkTypes(info, [2, 3, 4, 5, 6])
        epsilon = Double(try info.attribute("epsilon", default: Float(1e-12)))
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let ids = try inputs.required(0), word = try inputs.required(2), posEmb = try inputs.required(3)
        let gammaIn = try inputs.required(5), betaIn = try inputs.required(6)
        let segIds = inputs.optional(1), segEmb = inputs.optional(4), mask = inputs.optional(7), posIds = inputs.optional(8)
        guard ids.rank == 2 else { throw KernelError("input_ids must be [batch, sequence], got \(ids.shape)") }
        let B = ids.shape[0], S = ids.shape[1]
        guard word.rank == 2, posEmb.rank == 2, let H = word.shape.last, posEmb.shape[1] == H else {
            throw KernelError("word_embedding \(word.shape) and position_embedding \(posEmb.shape) must be [*, hidden]")
        }
        guard (segIds == nil) == (segEmb == nil) else { throw KernelError("segment_ids and segment_embedding must be given together") }
        if let segEmb, segEmb.rank != 2 || segEmb.shape[1] != H { throw KernelError("segment_embedding must be [*, \(H)], got \(segEmb.shape)") }
        guard gammaIn.shape == [H], betaIn.shape == [H] else { throw KernelError("gamma and beta must be [\(H)]") }
        if let segIds, segIds.shape != ids.shape { throw KernelError("segment_ids \(segIds.shape) must match input_ids \(ids.shape)") }
        if let mask, mask.shape != ids.shape { throw KernelError("mask \(mask.shape) must match input_ids \(ids.shape)") }
        if let posIds, posIds.shape != [B, S] && posIds.shape != [1, S] {
            throw KernelError("position_ids \(posIds.shape) must be [\(B), \(S)] or [1, \(S)]")
        }
        for a in [word, posEmb, gammaIn, betaIn] + [segEmb].compactMap({ $0 }) where !contribNormType(a.dtype) {
            throw KernelError("element type \(a.dtype) is not supported")
        }
        let idv = ids.ints(), segv = segIds?.ints(), posv = posIds?.ints()
        let w = attentionFloats(word), p = attentionFloats(posEmb), g = segEmb.map(attentionFloats)
        let gamma = attentionFloats(gammaIn), beta = attentionFloats(betaIn)
        let V = word.shape[0], P = posEmb.shape[0], G = segEmb?.shape[0] ?? 0
        var sum = [Float](repeating: 0, count: B * S * H)
        for b in 0..<B {
            for s in 0..<S {
                let t = b * S + s
                let wid = idv[t]
                let pid = posv.map { $0.count == S ? $0[s] : $0[t] } ?? s
                guard wid >= 0, wid < V else { throw KernelError("input id \(wid) is outside the word embedding (\(V) rows)") }
                guard pid >= 0, pid < P else { throw KernelError("position \(pid) is outside the position embedding (\(P) rows)") }
                let sid = segv?[t] ?? 0
                if segv != nil, sid < 0 || sid >= G { throw KernelError("segment id \(sid) is outside the segment embedding (\(G) rows)") }
                for h in 0..<H {
                    var v = w[wid * H + h] + p[pid * H + h]
                    if let g { v += g[sid * H + h] }
                    sum[t * H + h] = v
                }
            }
        }
        var out = sum
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<(B * S) {
                _ = normalizeRow(o.baseAddress! + r * H, H, gamma: gamma, beta: beta, epsilon: epsilon, simplified: false)
            }
        }
        var maskIndex = [Int32](repeating: 0, count: B)
        if let mv = mask?.ints() {
            for b in 0..<B { maskIndex[b] = Int32(mv[(b * S)..<((b + 1) * S)].filter { $0 == 1 }.count) }
        }
        return [
            out.withUnsafeBufferPointer { attentionArray($0.baseAddress!, word.dtype, [B, S, H], context) },
            NDArray(maskIndex, shape: [B]),
            sum.withUnsafeBufferPointer { attentionArray($0.baseAddress!, word.dtype, [B, S, H], context) },
        ]
    }
}

/// com.microsoft GroupNorm, which onnxruntime's Stable Diffusion optimizer fuses: `groups` groups of
/// channels, channels last by default (`[N, H, W, C]`, `channels_last=1`), gamma and beta per channel,
/// and SiLU after the affine map when `activation=1`. Statistics are accumulated in double.
final class ContribGroupNormKernel: Kernel {
    let groups: Int
    let epsilon: Double
    let silu: Bool
    let channelsLast: Bool

    init(_ info: KernelBuildInfo) throws {
        try checkTypes(info, [0, 1, 2])
        guard let g = try info.attribute("groups", as: Int.self), g > 0 else { throw KernelError("groups must be a positive integer") }
        groups = g
        epsilon = Double(try info.attribute("epsilon", default: Float(1e-5)))
        silu = try info.attribute("activation", default: 0) == 1
        channelsLast = try info.attribute("channels_last", default: 1) == 1
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), gammaIn = try inputs.required(1), betaIn = try inputs.required(2)
        guard x.rank >= 3 else { throw KernelError("input must have rank >= 3, has shape \(x.shape)") }
        let n = x.shape[0], c = channelsLast ? x.shape[x.rank - 1] : x.shape[1]
        guard c % groups == 0 else { throw KernelError("\(c) channels do not split into \(groups) groups") }
        guard gammaIn.count == c, betaIn.count == c else {
            throw KernelError("gamma and beta must have \(c) elements, have \(gammaIn.count) and \(betaIn.count)")
        }
        let spatial = x.count / max(1, n * c), cpg = c / groups
        var out = attentionFloats(x)
        let gamma = attentionFloats(gammaIn), beta = attentionFloats(betaIn)
        let last = channelsLast
        func index(_ b: Int, _ ch: Int, _ p: Int) -> Int { last ? (b * spatial + p) * c + ch : (b * c + ch) * spatial + p }
        for b in 0..<n {
            for g in 0..<groups {
                var sum = 0.0, sumSq = 0.0
                for k in 0..<cpg {
                    for p in 0..<spatial {
                        let v = Double(out[index(b, g * cpg + k, p)])
                        sum += v
                        sumSq += v * v
                    }
                }
                let count = Double(cpg * spatial)
                let mean = sum / count, variance = max(0, sumSq / count - mean * mean)
                let inv = 1 / (variance + epsilon).squareRoot()
                for k in 0..<cpg {
                    let ch = g * cpg + k
                    for p in 0..<spatial {
                        let i = index(b, ch, p)
                        var y = Float((Double(out[i]) - mean) * inv) * gamma[ch] + beta[ch]
                        if silu { y = y / (1 + Foundation.exp(-y)) }
                        out[i] = y
                    }
                }
            }
        }
        return [out.withUnsafeBufferPointer { attentionArray($0.baseAddress!, x.dtype, x.shape, context) }]
    }
}
