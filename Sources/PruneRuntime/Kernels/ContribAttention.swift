import Foundation
import PruneIR

// onnxruntime's attention contrib ops: Attention (packed QKV projection), MultiHeadAttention and
// GroupQueryAttention, following onnxruntime's CPU kernels (attention_cpu_base.h,
// gqa_attention_base.h).
//
// One core, `contribAttention`, computes softmax(scale · Q Kᵀ (softcapped) + bias) · V per
// (batch, query head) in float32; the ops differ in how they build Q, K, V and the additive bias.
// Masks follow onnxruntime, not ONNX's Attention: a masked key gets mask_filter_value (-10000 by
// default) added, not -inf, so a row whose keys are all padding still attends (uniformly shifted),
// and the causal frontier uses the lowest finite float. GroupQueryAttention instead restricts each
// query row to a key range (causal, sliding window), giving the other keys probability zero.
func registerContribAttentionKernels(_ r: inout KernelRegistry) {
    let ms = "com.microsoft"
    r.register("Attention", domain: ms, since: 1) { info in try ContribAttentionKernel(info) }
    r.register("MultiHeadAttention", domain: ms, since: 1) { info in try MultiHeadAttentionKernel(info) }
    r.register("GroupQueryAttention", domain: ms, since: 1) { info in try GroupQueryAttentionKernel(info) }
}

private func contribAttentionType(_ t: DType) -> Bool { t == .float || t == .float16 }

/// Refuses element types other than float32 and float16 at build time.
private func checkAttentionTypes(_ info: KernelBuildInfo, _ inputs: [Int]) throws {
    for i in inputs {
        if let t = info.inputType(i), !contribAttentionType(t) { throw KernelError.unsupported("input \(i): element type \(t) (float and float16 only)") }
    }
}

/// The shapes of one attention call. Q is [B, Hq, S, Dh]; K is [B, Hkv, T, Dh]; V is [B, Hkv, T, Dv].
private struct AttentionDims {
    var B: Int, Hq: Int, Hkv: Int, S: Int, T: Int, Dh: Int, Dv: Int
}

/// softmax(scale · Q Kᵀ + bias) · V, returned as [B, S, Hq·Dv].
///
/// `bias`, when given, is an additive [B, Hb, S, T] tensor (Hb is 1 or Hq: one bias for all heads, or
/// one per head). `keyRange(b, i)`, when given, is the keys query i of batch entry b may attend to;
/// the others get probability zero. `softcap > 0` maps each score x to softcap · tanh(x / softcap)
/// before the bias and softmax.
private func contribAttention(
    q: [Float], k: [Float], v: [Float], _ d: AttentionDims, scale: Float, softcap: Float = 0,
    bias: [Float]?, biasHeads: Int = 1, keyRange: ((Int, Int) -> Range<Int>)? = nil, _ context: KernelContext
) -> [Float] {
    let (B, Hq, Hkv, S, T, Dh, Dv) = (d.B, d.Hq, d.Hkv, d.S, d.T, d.Dh, d.Dv)
    let reps = Hq / Hkv
    var y = [Float](repeating: 0, count: B * S * Hq * Dv)
    q.withUnsafeBufferPointer { qp in
    k.withUnsafeBufferPointer { kp in
    v.withUnsafeBufferPointer { vp in
    y.withUnsafeMutableBufferPointer { yp in
        let yBase = yp.baseAddress!
        context.parallelFor(B * Hq, grain: max(1, 65536 / max(1, S * T * (Dh + Dv)))) { range in
            var scores = [Float](repeating: 0, count: S * T)
            var head = [Float](repeating: 0, count: S * Dv)
            scores.withUnsafeMutableBufferPointer { sBuf in
            head.withUnsafeMutableBufferPointer { hBuf in
                let s = sBuf.baseAddress!, hy = hBuf.baseAddress!
                for bh in range {
                    let b = bh / Hq, h = bh % Hq, kvh = h / reps
                    let kv = b * Hkv + kvh
                    BLAS.sgemm(transA: false, transB: true, m: S, n: T, k: Dh, alpha: scale,
                               a: qp.baseAddress! + bh * S * Dh, lda: Dh, b: kp.baseAddress! + kv * T * Dh, ldb: Dh,
                               c: s, ldc: T, threads: 1)
                    for i in 0..<S {
                        let row = s + i * T
                        let keys = keyRange?(b, i) ?? 0..<T
                        if softcap > 0 { for j in keys { row[j] = softcap * tanh(row[j] / softcap) } }
                        if let bias {
                            let base = ((b * biasHeads + (biasHeads == 1 ? 0 : h)) * S + i) * T
                            for j in keys { row[j] += bias[base + j] }
                        }
                        var mx = -Float.infinity
                        for j in keys { mx = max(mx, row[j]) }
                        var sum: Double = 0
                        for j in keys { let e = exp(row[j] - mx); row[j] = e; sum += Double(e) }
                        let inv = sum > 0 ? Float(1 / sum) : 0
                        for j in 0..<T { row[j] = keys.contains(j) ? row[j] * inv : 0 }
                    }
                    BLAS.sgemm(transA: false, transB: false, m: S, n: Dv, k: T,
                               a: s, lda: T, b: vp.baseAddress! + kv * T * Dv, ldb: Dv, c: hy, ldc: Dv, threads: 1)
                    for i in 0..<S {
                        (yBase + ((b * S + i) * Hq + h) * Dv).update(from: hy + i * Dv, count: Dv)
                    }
                }
            }
            }
        }
    }
    }
    }
    }
    return y
}

/// [B, S, H·D] (rows of `width` starting at `offset`) → [B, H, S, D].
private func splitHeads(_ x: [Float], B: Int, S: Int, H: Int, D: Int, width: Int, offset: Int = 0) -> [Float] {
    var out = [Float](repeating: 0, count: B * H * S * D)
    for b in 0..<B { for s in 0..<S { for h in 0..<H {
        let from = (b * S + s) * width + offset + h * D, to = ((b * H + h) * S + s) * D
        for i in 0..<D { out[to + i] = x[from + i] }
    } } }
    return out
}

/// Concatenates past [B, H, P, D] and new [B, H, L, D] along the sequence axis.
private func concatPast(_ past: [Float], _ new: [Float], BH: Int, P: Int, L: Int, D: Int) -> [Float] {
    if P == 0 { return new }
    var out = [Float](repeating: 0, count: BH * (P + L) * D)
    for bh in 0..<BH {
        for i in 0..<(P * D) { out[bh * (P + L) * D + i] = past[bh * P * D + i] }
        for i in 0..<(L * D) { out[bh * (P + L) * D + P * D + i] = new[bh * L * D + i] }
    }
    return out
}

/// Rounds every value to float16 and back: what a value stored in a float16 buffer reads as.
private func roundedToHalf(_ x: inout [Float]) {
    for i in x.indices { x[i] = Float(Float16(x[i])) }
}

/// The additive [B, S, T] mask onnxruntime's `PrepareMask` builds from a mask_index, with the causal
/// frontier (keys after past + i for query i) when `causal`; `nil` when there is neither.
///
/// mask forms: [B] key lengths (keys from the length on are masked), [2B] key lengths then start
/// positions (keys before the start are masked too), [B, T] 0/1, [B, S, T] 0/1.
private func prepareMask(_ mask: NDArray?, B: Int, S: Int, T: Int, past: Int, causal: Bool, filter: Float,
                         what: String) throws -> [Float]? {
    guard mask != nil || causal else { return nil }
    var out = [Float](repeating: 0, count: B * S * T)
    if let mask {
        let m = mask.ints()
        switch mask.shape {
        case [B], [2 * B]:
            for b in 0..<B {
                let end = m[b], start = mask.count == 2 * B ? min(m[B + b], T) : 0
                for i in 0..<S {
                    for j in 0..<T where j >= end || j < start { out[(b * S + i) * T + j] = filter }
                }
            }
        case [B, T]:
            for b in 0..<B { for i in 0..<S { for j in 0..<T where m[b * T + j] <= 0 { out[(b * S + i) * T + j] = filter } } }
        case [B, S, T]:
            for n in 0..<(B * S * T) where m[n] <= 0 { out[n] = filter }
        default:
            throw KernelError("\(what) \(mask.shape) is not supported: use [\(B)] key lengths, [\(2 * B)] lengths and starts, [\(B), \(T)] or [\(B), \(S), \(T)]")
        }
    }
    if causal {
        for b in 0..<B { for i in 0..<S { for j in min(T, past + i + 1)..<T { out[(b * S + i) * T + j] = -Float.greatestFiniteMagnitude } } }
    }
    return out
}

/// Adds attention_bias [B or 1, N or 1, S, T] to a [B, S, T] mask, giving [B, N, S, T]
/// (or returns it as is when there is no attention_bias).
private func addAttentionBias(_ mask: [Float]?, _ ab: NDArray?, B: Int, N: Int, S: Int, T: Int) throws -> (values: [Float]?, heads: Int) {
    guard let ab else { return (mask, 1) }
    guard ab.rank == 4, ab.shape[0] == 1 || ab.shape[0] == B, ab.shape[1] == 1 || ab.shape[1] == N,
          ab.shape[2] == S, ab.shape[3] == T
    else { throw KernelError("attention_bias \(ab.shape) must be [\(B) or 1, \(N) or 1, \(S), \(T)]") }
    guard contribAttentionType(ab.dtype) else { throw KernelError("attention_bias element type \(ab.dtype) is not supported") }
    let a = attentionFloats(ab)
    var out = [Float](repeating: 0, count: B * N * S * T)
    for b in 0..<B { for h in 0..<N { for n in 0..<(S * T) {
        let src = ((ab.shape[0] == 1 ? 0 : b) * ab.shape[1] + (ab.shape[1] == 1 ? 0 : h)) * S * T + n
        out[(b * N + h) * S * T + n] = a[src] + (mask?[b * S * T + n] ?? 0)
    } } }
    return (out, N)
}

/// `com.microsoft::Attention`: self-attention with a packed projection.
///
/// input [B, S, Din] · weights [Din, hq + hk + hv] + bias → Q, K, V (qkv_hidden_sizes gives the three
/// widths, else they are equal), num_heads heads each; mask_index in the forms of ``prepareMask``;
/// attention_bias [B or 1, N, S, S]; unidirectional; scale (0: 1/√head_size); mask_filter_value.
/// Refused: past / past_sequence_length / present (the KV cache), 4-D masks, do_rotary.
final class ContribAttentionKernel: Kernel {
    let numHeads: Int
    let unidirectional: Bool
    let sizes: [Int]?
    let scale: Float
    let filter: Float

    init(_ info: KernelBuildInfo) throws {
        try checkAttentionTypes(info, [0, 1, 2, 5])
        numHeads = try info.attribute("num_heads", default: 0)
        guard numHeads > 0 else { throw KernelError("num_heads must be positive, got \(numHeads)") }
        unidirectional = try info.attribute("unidirectional", default: 0) != 0
        sizes = try info.attribute("qkv_hidden_sizes", as: [Int].self)
        scale = try info.attribute("scale", default: Float(0))
        filter = try info.attribute("mask_filter_value", default: Float(-10000))
        if try info.attribute("do_rotary", default: 0) != 0 { throw KernelError.unsupported("do_rotary=1 is not supported") }
        if info.hasInput(4) || info.hasInput(6) { throw KernelError.unsupported("past / past_sequence_length (a KV cache) are not supported") }
        if info.node.outputs.count > 1 { throw KernelError.unsupported("the present output (a KV cache) is not supported") }
        if let sizes, sizes.count != 3 || sizes[0] != sizes[1] || sizes.contains(where: { $0 <= 0 }) {
            throw KernelError("qkv_hidden_sizes must be three positive widths with Q and K equal, got \(sizes)")
        }
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), w = try inputs.required(1)
        let biasIn = inputs.optional(2), mask = inputs.optional(3), ab = inputs.optional(5)
        for a in [x, w] + [biasIn].compactMap({ $0 }) where !contribAttentionType(a.dtype) {
            throw KernelError("element type \(a.dtype) is not supported")
        }
        guard x.rank == 3 else { throw KernelError("input must be [batch, sequence, hidden], got \(x.shape)") }
        let (B, S, Din) = (x.shape[0], x.shape[1], x.shape[2])
        let widths = sizes ?? (w.rank == 2 ? [Int](repeating: w.shape[1] / 3, count: 3) : [0, 0, 0])
        let total = widths.reduce(0, +)
        guard w.shape == [Din, total], total > 0 else { throw KernelError("weights \(w.shape) must be [\(Din), \(total)]") }
        if let biasIn, biasIn.shape != [total] { throw KernelError("bias \(biasIn.shape) must be [\(total)]") }
        let N = numHeads
        guard widths[0] % N == 0, widths[2] % N == 0 else { throw KernelError("hidden sizes \(widths) must divide into \(N) heads") }
        let Dh = widths[0] / N, Dv = widths[2] / N
        // QKV = input · weights + bias, one [B·S, total] product.
        var qkv = [Float](repeating: 0, count: B * S * total)
        if let biasIn {
            let b = attentionFloats(biasIn)
            for r in 0..<(B * S) { for c in 0..<total { qkv[r * total + c] = b[c] } }
        }
        let xs = attentionFloats(x), ws = attentionFloats(w)
        xs.withUnsafeBufferPointer { xp in ws.withUnsafeBufferPointer { wp in qkv.withUnsafeMutableBufferPointer { cp in
            BLAS.sgemm(transA: false, transB: false, m: B * S, n: total, k: Din, a: xp.baseAddress!, lda: Din,
                       b: wp.baseAddress!, ldb: total, beta: 1, c: cp.baseAddress!, ldc: total)
        } } }
        let q = splitHeads(qkv, B: B, S: S, H: N, D: Dh, width: total)
        let k = splitHeads(qkv, B: B, S: S, H: N, D: Dh, width: total, offset: widths[0])
        let v = splitHeads(qkv, B: B, S: S, H: N, D: Dv, width: total, offset: widths[0] + widths[1])
        let m = try prepareMask(mask, B: B, S: S, T: S, past: 0, causal: unidirectional, filter: filter, what: "mask_index")
        let (bias, heads) = try addAttentionBias(m, ab, B: B, N: N, S: S, T: S)
        let y = contribAttention(q: q, k: k, v: v, AttentionDims(B: B, Hq: N, Hkv: N, S: S, T: S, Dh: Dh, Dv: Dv),
                                 scale: scale == 0 ? 1 / Float(Dh).squareRoot() : scale, bias: bias, biasHeads: heads, context)
        return [y.withUnsafeBufferPointer { attentionArray($0.baseAddress!, x.dtype, [B, S, N * Dv], context) }]
    }
}

/// `com.microsoft::MultiHeadAttention` with separate query [B, S, N·Dh], key [B, L, N·Dh] and value
/// [B, L, N·Dv].
///
/// bias? [2·N·Dh + N·Dv] is added to Q, K and V; key_padding_mask in the forms of ``prepareMask``
/// over the P + L keys; attention_bias [B or 1, N or 1, S, P + L]; past_key/past_value [B, N, P, D]
/// give present_key/present_value [B, N, P + L, D]; unidirectional; scale; mask_filter_value.
/// Refused: packed QKV or KV, 4-D (BNSH) key/value, past_sequence_length, cache_indirection and the qk output.
final class MultiHeadAttentionKernel: Kernel {
    let numHeads: Int
    let unidirectional: Bool
    let scale: Float
    let filter: Float

    init(_ info: KernelBuildInfo) throws {
        try checkAttentionTypes(info, [0, 1, 2, 3, 5, 6, 7])
        numHeads = try info.attribute("num_heads", default: 0)
        guard numHeads > 0 else { throw KernelError("num_heads must be positive, got \(numHeads)") }
        unidirectional = try info.attribute("unidirectional", default: 0) != 0
        scale = try info.attribute("scale", default: Float(0))
        filter = try info.attribute("mask_filter_value", default: Float(-10000))
        if !info.hasInput(1) || !info.hasInput(2) { throw KernelError.unsupported("packed QKV or KV (no separate key and value) is not supported") }
        if info.hasInput(8) || info.hasInput(9) { throw KernelError.unsupported("past_sequence_length / cache_indirection are not supported") }
        if info.node.outputs.count > 3 { throw KernelError.unsupported("the qk output is not supported") }
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let qIn = try inputs.required(0), kIn = try inputs.required(1), vIn = try inputs.required(2)
        let biasIn = inputs.optional(3), mask = inputs.optional(4), ab = inputs.optional(5)
        let pastK = inputs.optional(6), pastV = inputs.optional(7)
        for a in [qIn, kIn, vIn] + [biasIn, pastK, pastV].compactMap({ $0 }) where !contribAttentionType(a.dtype) {
            throw KernelError("element type \(a.dtype) is not supported")
        }
        guard qIn.rank == 3, kIn.rank == 3, vIn.rank == 3 else {
            throw KernelError("query \(qIn.shape), key \(kIn.shape), value \(vIn.shape): only 3-D [batch, sequence, hidden] inputs are supported")
        }
        let N = numHeads
        let (B, S, L) = (qIn.shape[0], qIn.shape[1], kIn.shape[1])
        guard qIn.shape[2] % N == 0, vIn.shape[2] % N == 0, kIn.shape[2] == qIn.shape[2], kIn.shape[0] == B,
              vIn.shape[0] == B, vIn.shape[1] == L
        else { throw KernelError("query \(qIn.shape), key \(kIn.shape), value \(vIn.shape) do not match \(N) heads") }
        let hq = qIn.shape[2], hv = vIn.shape[2], Dh = hq / N, Dv = hv / N
        var q = attentionFloats(qIn), k = attentionFloats(kIn), v = attentionFloats(vIn)
        if let biasIn {
            guard biasIn.shape == [2 * hq + hv] else { throw KernelError("bias \(biasIn.shape) must be [\(2 * hq + hv)]") }
            let b = attentionFloats(biasIn)
            for i in q.indices { q[i] += b[i % hq] }
            for i in k.indices { k[i] += b[hq + i % hq] }
            for i in v.indices { v[i] += b[2 * hq + i % hv] }
        }
        guard (pastK == nil) == (pastV == nil) else { throw KernelError("past_key and past_value must be given together") }
        let P = pastK?.shape.count == 4 ? pastK!.shape[2] : 0
        if let pastK, let pastV {
            guard pastK.shape == [B, N, P, Dh], pastV.shape == [B, N, P, Dv] else {
                throw KernelError("past_key \(pastK.shape) / past_value \(pastV.shape) must be [\(B), \(N), P, head size]")
            }
        }
        let T = P + L
        let keys = concatPast(pastK.map(attentionFloats) ?? [], splitHeads(k, B: B, S: L, H: N, D: Dh, width: hq), BH: B * N, P: P, L: L, D: Dh)
        let values = concatPast(pastV.map(attentionFloats) ?? [], splitHeads(v, B: B, S: L, H: N, D: Dv, width: hv), BH: B * N, P: P, L: L, D: Dv)
        let m = try prepareMask(mask, B: B, S: S, T: T, past: P, causal: unidirectional, filter: filter, what: "key_padding_mask")
        let (bias, heads) = try addAttentionBias(m, ab, B: B, N: N, S: S, T: T)
        let y = contribAttention(q: splitHeads(q, B: B, S: S, H: N, D: Dh, width: hq), k: keys, v: values,
                                 AttentionDims(B: B, Hq: N, Hkv: N, S: S, T: T, Dh: Dh, Dv: Dv),
                                 scale: scale == 0 ? 1 / Float(Dh).squareRoot() : scale, bias: bias, biasHeads: heads, context)
        let dt = qIn.dtype
        return [
            y.withUnsafeBufferPointer { attentionArray($0.baseAddress!, dt, [B, S, N * Dv], context) },
            keys.withUnsafeBufferPointer { attentionArray($0.baseAddress!, dt, [B, N, T, Dh], context) },
            values.withUnsafeBufferPointer { attentionArray($0.baseAddress!, dt, [B, N, T, Dv], context) },
        ]
    }
}

/// `com.microsoft::GroupQueryAttention`: causal attention of num_heads query heads over kv_num_heads
/// KV heads (query head h reads KV head h / (num_heads / kv_num_heads)) with a KV cache.
///
/// query [B, S, N·D] (or packed [B, S, (N + 2·kvN)·D] with key and value omitted), key/value
/// [B, S, kvN·D], past_key/past_value? [B, kvN, P, D], seqlens_k [B] (int32: each entry's total
/// length − 1), total_sequence_length (int32 scalar), cos_cache/sin_cache with do_rotary.
/// present_key/present_value are [B, kvN, max(P, total), D]: entry b's past rows 0..<past_b, then its
/// S new rows, zeros after. A first prompt (S == total_sequence_length) has no past; otherwise
/// past_b = seqlens_k[b] + 1 − S. Query row i attends to keys 0...past_b + i, only the last
/// local_window_size of them with a window (onnxruntime 1.31's CPU kernel; older ones took one more); softcap; scale (0: 1/√D).
/// Refused: position_ids, attention_bias, head_sink, smooth_softmax, qk_output.
final class GroupQueryAttentionKernel: Kernel {
    let numHeads: Int
    let kvHeads: Int
    let scale: Float
    let softcap: Float
    let doRotary: Bool
    let interleaved: Bool
    let window: Int

    init(_ info: KernelBuildInfo) throws {
        try checkAttentionTypes(info, [0, 1, 2, 3, 4, 7, 8])
        numHeads = try info.attribute("num_heads", default: 0)
        kvHeads = try info.attribute("kv_num_heads", default: 0)
        guard numHeads > 0, kvHeads > 0, numHeads % kvHeads == 0 else {
            throw KernelError("num_heads (\(numHeads)) must be a positive multiple of kv_num_heads (\(kvHeads))")
        }
        scale = try info.attribute("scale", default: Float(0))
        softcap = try info.attribute("softcap", default: Float(0))
        doRotary = try info.attribute("do_rotary", default: 0) != 0
        interleaved = try info.attribute("rotary_interleaved", default: 0) != 0
        window = try info.attribute("local_window_size", default: -1)
        if try info.attribute("smooth_softmax", default: 0) != 0 { throw KernelError.unsupported("smooth_softmax=1 is not supported") }
        if try info.attribute("qk_output", default: 0) != 0 { throw KernelError.unsupported("qk_output is not supported") }
        if info.hasInput(9) || info.hasInput(10) || info.hasInput(11) {
            throw KernelError.unsupported("position_ids, attention_bias and head_sink inputs are not supported")
        }
        if doRotary && !(info.hasInput(7) && info.hasInput(8)) { throw KernelError("do_rotary needs cos_cache and sin_cache") }
        if info.node.outputs.count > 3 { throw KernelError.unsupported("the output_qk output is not supported") }
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let qIn = try inputs.required(0), seqlensIn = try inputs.required(5), totalIn = try inputs.required(6)
        let kIn = inputs.optional(1), vIn = inputs.optional(2), pastK = inputs.optional(3), pastV = inputs.optional(4)
        for a in [qIn] + [kIn, vIn, pastK, pastV].compactMap({ $0 }) where !contribAttentionType(a.dtype) {
            throw KernelError("element type \(a.dtype) is not supported")
        }
        let N = numHeads, kvN = kvHeads
        guard qIn.rank == 3 else { throw KernelError("query must be [batch, sequence, hidden], got \(qIn.shape)") }
        let (B, S) = (qIn.shape[0], qIn.shape[1])
        let packed = kIn == nil
        guard packed == (vIn == nil) else { throw KernelError("key and value must be given together (or both omitted for packed QKV)") }
        let width = qIn.shape[2]
        let D = packed ? width / (N + 2 * kvN) : width / N
        guard D > 0, width == (packed ? (N + 2 * kvN) * D : N * D) else {
            throw KernelError("query width \(width) does not split into \(packed ? "\(N) + 2·\(kvN)" : "\(N)") heads")
        }
        let qs = attentionFloats(qIn)
        var q: [Float], k: [Float], v: [Float]
        if packed {
            q = splitHeads(qs, B: B, S: S, H: N, D: D, width: width)
            k = splitHeads(qs, B: B, S: S, H: kvN, D: D, width: width, offset: N * D)
            v = splitHeads(qs, B: B, S: S, H: kvN, D: D, width: width, offset: (N + kvN) * D)
        } else {
            guard let kIn, let vIn, kIn.shape == [B, S, kvN * D], vIn.shape == [B, S, kvN * D] else {
                throw KernelError("key \(kIn?.shape ?? []) and value \(vIn?.shape ?? []) must be [\(B), \(S), \(kvN * D)]")
            }
            q = splitHeads(qs, B: B, S: S, H: N, D: D, width: width)
            k = splitHeads(attentionFloats(kIn), B: B, S: S, H: kvN, D: D, width: kvN * D)
            v = splitHeads(attentionFloats(vIn), B: B, S: S, H: kvN, D: D, width: kvN * D)
        }
        guard (pastK == nil) == (pastV == nil) else { throw KernelError("past_key and past_value must be given together") }
        let P = pastK.map { $0.rank == 4 ? $0.shape[2] : -1 } ?? 0
        if let pastK, let pastV, pastK.shape != [B, kvN, P, D] || pastV.shape != pastK.shape {
            throw KernelError("past_key \(pastK.shape) / past_value \(pastV.shape) must be [\(B), \(kvN), P, \(D)]")
        }
        guard seqlensIn.count == B, totalIn.count == 1 else {
            throw KernelError("seqlens_k \(seqlensIn.shape) must hold \(B) lengths and total_sequence_length one")
        }
        let seqlens = seqlensIn.ints(), total = totalIn.ints()[0]
        let first = S == total
        let presentLen = max(P, total)
        var past = [Int](repeating: 0, count: B)
        for b in 0..<B {
            let t = seqlens[b] + 1
            past[b] = first ? 0 : t - S
            guard t >= 1, past[b] >= 0, past[b] <= P, past[b] + S <= presentLen, t <= presentLen else {
                throw KernelError("seqlens_k[\(b)] = \(seqlens[b]) does not fit \(S) new tokens, a past of \(P) and total_sequence_length \(total)")
            }
        }
        let half16 = qIn.dtype == .float16
        if doRotary, let cosIn = inputs.optional(7), let sinIn = inputs.optional(8) {
            guard cosIn.rank == 2, sinIn.shape == cosIn.shape, 2 * cosIn.shape[1] <= D else {
                throw KernelError("cos_cache \(cosIn.shape) / sin_cache \(sinIn.shape) must be [max_position, rotary_dim/2] with rotary_dim ≤ \(D)")
            }
            let half = cosIn.shape[1], maxPos = cosIn.shape[0]
            let cs = attentionFloats(cosIn), sn = attentionFloats(sinIn)
            // New token s of entry b sits at position past_b + s (s in a first prompt).
            func rotate(_ x: inout [Float], heads: Int) throws {
                try x.withUnsafeMutableBufferPointer { xp in
                    for b in 0..<B { for h in 0..<heads { for s in 0..<S {
                        let p = past[b] + s
                        guard p < maxPos else { throw KernelError("position \(p) is outside the rotary cache (\(maxPos) rows)") }
                        cs.withUnsafeBufferPointer { c in sn.withUnsafeBufferPointer { sp in
                            contribRotate(xp.baseAddress! + ((b * heads + h) * S + s) * D, cos: c.baseAddress! + p * half,
                                          sin: sp.baseAddress! + p * half, rotaryDim: 2 * half, interleaved: interleaved)
                        } }
                    } } }
                }
            }
            try rotate(&q, heads: N)
            try rotate(&k, heads: kvN)
            // onnxruntime stores the rotated float16 values before multiplying.
            if half16 { roundedToHalf(&q); roundedToHalf(&k) }
        }
        // present: past rows 0..<past_b, the new rows, zeros after.
        let pk = pastK.map(attentionFloats) ?? [], pv = pastV.map(attentionFloats) ?? []
        var presentK = [Float](repeating: 0, count: B * kvN * presentLen * D), presentV = presentK
        for b in 0..<B { for h in 0..<kvN {
            let bh = b * kvN + h, dst = bh * presentLen * D
            for i in 0..<(past[b] * D) { presentK[dst + i] = pk[bh * P * D + i]; presentV[dst + i] = pv[bh * P * D + i] }
            for i in 0..<(S * D) {
                presentK[dst + past[b] * D + i] = k[bh * S * D + i]
                presentV[dst + past[b] * D + i] = v[bh * S * D + i]
            }
        } }
        let w = window, pastLens = past
        let y = contribAttention(q: q, k: presentK, v: presentV,
                                 AttentionDims(B: B, Hq: N, Hkv: kvN, S: S, T: presentLen, Dh: D, Dv: D),
                                 scale: scale == 0 ? 1 / Float(D).squareRoot() : scale, softcap: softcap, bias: nil,
                                 keyRange: { b, i in
                                     let end = pastLens[b] + i + 1
                                     return (w > 0 && end > w ? end - w : 0)..<end
                                 }, context)
        let dt = qIn.dtype
        return [
            y.withUnsafeBufferPointer { attentionArray($0.baseAddress!, dt, [B, S, N * D], context) },
            presentK.withUnsafeBufferPointer { attentionArray($0.baseAddress!, dt, [B, kvN, presentLen, D], context) },
            presentV.withUnsafeBufferPointer { attentionArray($0.baseAddress!, dt, [B, kvN, presentLen, D], context) },
        ]
    }
}
