import Foundation
import PruneIR

// Attention (opset 23/24/25) and RotaryEmbedding (opset 23).
//
// Attention: scaled dot-product attention per (batch, query head) with two GEMMs, an additive
// bias built from attn_mask, is_causal, the sliding window (25) and nonpad_kv_seqlen (24), grouped
// KV heads, softcap and a KV cache (past_key/past_value → present_key/present_value).
// Computation is in float32; float16, bfloat16 and double inputs are converted.
func registerAttentionKernels(_ r: inout KernelRegistry) {
    // 24 added nonpad_kv_seqlen; 25 added left/right_window_size. One kernel reads them all.
    for since in [23, 24, 25] {
        r.register("Attention", since: since) { info in try AttentionKernel(info: info) }
    }
    r.register("RotaryEmbedding", since: 23) { info in try RotaryEmbeddingKernel(info: info) }
}

/// Element types the attention kernels convert to and from float32 (the contrib kernels use it too).
func attentionTypeSupported(_ t: DType) -> Bool {
    t == .float || t == .float16 || t == .bfloat16 || t == .double
}

/// The elements of `a` as float32.
func attentionFloats(_ a: NDArray) -> [Float] {
    let n = a.count
    switch a.dtype {
    case .float:
        return Array(a.buffer(as: Float.self))
    case .float16:
        let p = a.pointer(as: Float16.self)
        return [Float](unsafeUninitializedCapacity: n) { b, c in for i in 0..<n { b[i] = Float(p[i]) }; c = n }
    case .bfloat16:
        let p = a.pointer(as: UInt16.self)
        return [Float](unsafeUninitializedCapacity: n) { b, c in
            for i in 0..<n { b[i] = Float(bitPattern: UInt32(p[i]) << 16) }
            c = n
        }
    case .double:
        let p = a.pointer(as: Double.self)
        return [Float](unsafeUninitializedCapacity: n) { b, c in for i in 0..<n { b[i] = Float(p[i]) }; c = n }
    default:
        return (0..<n).map { Float(a.element(at: $0)) }
    }
}

/// `x` rounded to the nearest bfloat16 (ties to even), as a float.
@inline(__always)
private func bfloat16Rounded(_ x: Float) -> Float {
    if x.isNaN { return x }
    let u = x.bitPattern
    return Float(bitPattern: (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000)
}

/// Rounds `n` floats at `p` to bfloat16 precision, in place.
private func roundToBFloat16(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = bfloat16Rounded(p[i]) }
}

/// A new `dtype` array of `shape` holding `values` (float32) converted.
func attentionArray(_ values: UnsafePointer<Float>, _ dtype: DType, _ shape: [Int], _ context: KernelContext) -> NDArray {
    let out = context.allocate(dtype, shape)
    let n = out.count
    switch dtype {
    case .float16:
        let p = out.pointer(as: Float16.self)
        for i in 0..<n { p[i] = Float16(values[i]) }
    case .bfloat16:
        let p = out.pointer(as: UInt16.self)
        for i in 0..<n {
            let u = values[i].bitPattern
            // Round to nearest even; keep NaN a NaN.
            p[i] = values[i].isNaN ? 0x7FC0 : UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
        }
    case .double:
        let p = out.pointer(as: Double.self)
        for i in 0..<n { p[i] = Double(values[i]) }
    default:
        out.pointer(as: Float.self).update(from: values, count: n)
    }
    return out
}

/// The ONNX `Attention` operator.
final class AttentionKernel: Kernel {
    let scale: Float?
    let isCausal: Bool
    let qHeads: Int?
    let kvHeads: Int?
    let softcap: Float
    let qkMode: Int
    let leftWindow: Int
    let rightWindow: Int
    /// How many outputs the node has (Y, present_key, present_value, qk_matmul_output).
    let outputCount: Int

    init(info: KernelBuildInfo) throws {
        for i in [0, 1, 2] {
            if let t = info.inputType(i), !attentionTypeSupported(t) { throw KernelError.unsupported("element type \(t)") }
        }
        scale = try info.attribute("scale", as: Float.self)
        isCausal = try info.attribute("is_causal", default: 0) != 0
        qHeads = try info.attribute("q_num_heads", as: Int.self)
        kvHeads = try info.attribute("kv_num_heads", as: Int.self)
        softcap = try info.attribute("softcap", default: Float(0))
        qkMode = try info.attribute("qk_matmul_output_mode", default: 0)
        guard (0...3).contains(qkMode) else { throw KernelError("qk_matmul_output_mode must be 0...3, got \(qkMode)") }
        leftWindow = try info.attribute("left_window_size", default: -1)
        rightWindow = try info.attribute("right_window_size", default: -1)
        outputCount = info.node.outputs.count
    }

    /// Q, K or V as float32 in [batch, heads, seq, headSize] order (3-D inputs are split into heads).
    private func heads(_ a: NDArray, _ count: Int?, _ name: String) throws -> (values: [Float], heads: Int, seq: Int, size: Int) {
        if a.rank == 4 { return (attentionFloats(a), a.shape[1], a.shape[2], a.shape[3]) }
        guard a.rank == 3 else { throw KernelError("\(name) must have rank 3 or 4, got \(a.shape)") }
        guard let h = count, h > 0, a.shape[2] % h == 0 else {
            throw KernelError("\(name) is 3-D (\(a.shape)); q_num_heads/kv_num_heads must divide its hidden size")
        }
        let (b, s, d) = (a.shape[0], a.shape[1], a.shape[2] / h)
        let src = attentionFloats(a)
        var out = [Float](repeating: 0, count: src.count)
        for bi in 0..<b { for si in 0..<s { for hi in 0..<h {
            let from = ((bi * s + si) * h + hi) * d, to = ((bi * h + hi) * s + si) * d
            for k in 0..<d { out[to + k] = src[from + k] }
        } } }
        return (out, h, s, d)
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let qIn = try inputs.required(0), kIn = try inputs.required(1), vIn = try inputs.required(2)
        for a in [qIn, kIn, vIn] where !attentionTypeSupported(a.dtype) { throw KernelError("element type \(a.dtype) is not supported") }
        guard qIn.rank == kIn.rank, kIn.rank == vIn.rank else { throw KernelError("Q, K, V must have the same rank") }
        let threeD = qIn.rank == 3
        let batch = qIn.shape[0]
        let q = try heads(qIn, qHeads, "Q")
        let k = try heads(kIn, kvHeads, "K")
        let v = try heads(vIn, kvHeads, "V")
        let Hq = q.heads, Hkv = k.heads, Sq = q.seq, Dh = q.size, Dv = v.size
        guard kIn.shape[0] == batch, vIn.shape[0] == batch, k.size == Dh, v.heads == Hkv, v.seq == k.seq else {
            throw KernelError("Q \(qIn.shape), K \(kIn.shape), V \(vIn.shape) do not match")
        }
        guard Hkv > 0, Hq % Hkv == 0 else { throw KernelError("\(Hq) query heads cannot share \(Hkv) KV heads") }

        // KV cache: present = concat(past, new) along the sequence axis.
        let pastK = inputs.optional(4), pastV = inputs.optional(5)
        guard (pastK == nil) == (pastV == nil) else { throw KernelError("past_key and past_value must be given together") }
        let P = pastK?.shape[2] ?? 0
        if let pastK, let pastV {
            guard pastK.shape == [batch, Hkv, P, Dh], pastV.shape == [batch, Hkv, P, Dv] else {
                throw KernelError("past_key \(pastK.shape) / past_value \(pastV.shape) do not match K and V")
            }
        }
        let L = P + k.seq
        func present(_ new: [Float], _ past: NDArray?, _ d: Int) -> [Float] {
            guard let past else { return new }
            let old = attentionFloats(past)
            var out = [Float](repeating: 0, count: batch * Hkv * L * d)
            for bh in 0..<(batch * Hkv) {
                for i in 0..<(P * d) { out[bh * L * d + i] = old[bh * P * d + i] }
                for i in 0..<(k.seq * d) { out[bh * L * d + P * d + i] = new[bh * k.seq * d + i] }
            }
            return out
        }
        let keys = present(k.values, pastK, Dh)
        let values = present(v.values, pastV, Dv)

        // nonpad_kv_seqlen (24+): valid keys per batch entry; the causal frontier is aligned to it.
        let nonpad: [Int]? = inputs.optional(6).map { $0.ints() }
        if let nonpad, nonpad.count != batch { throw KernelError("nonpad_kv_seqlen has \(nonpad.count) entries for batch \(batch)") }
        if nonpad != nil, pastK != nil { throw KernelError("nonpad_kv_seqlen cannot be combined with past_key/past_value") }

        // attn_mask: broadcast (right-aligned) to [batch, Hq, Sq, L]; a short last axis is padded as masked.
        let maskIn = inputs.optional(3)
        var maskValues: [Float] = []
        var maskStrides = [0, 0, 0, 0]
        var maskLast = 0
        if let m = maskIn {
            guard m.rank >= 1, m.rank <= 4 else { throw KernelError("attn_mask must have rank 1...4, got \(m.shape)") }
            if m.dtype == .bool {
                let p = m.pointer(as: UInt8.self)
                maskValues = (0..<m.count).map { p[$0] != 0 ? 0 : -Float.infinity }
            } else {
                guard attentionTypeSupported(m.dtype) else { throw KernelError("attn_mask element type \(m.dtype) is not supported") }
                maskValues = attentionFloats(m)
            }
            let shape4 = [Int](repeating: 1, count: 4 - m.rank) + m.shape
            maskLast = shape4[3]
            guard maskLast <= L else { throw KernelError("attn_mask last axis \(maskLast) is longer than the \(L) keys") }
            let full = [batch, Hq, Sq, maskLast]
            for i in 0..<3 where shape4[i] != 1 && shape4[i] != full[i] {
                throw KernelError("attn_mask \(m.shape) does not broadcast to \(full)")
            }
            maskStrides = Broadcast.strides(of: shape4, to: full)
        }

        var scaleValue = scale ?? 1 / Float(Dh).squareRoot()
        // bfloat16 keeps so few bits that the result depends on where intermediates are rounded:
        // round where the ONNX reference (numpy in bfloat16) does, so results match it.
        let bf16 = qIn.dtype == .bfloat16
        var qValues = q.values, kValues = keys
        if bf16 {
            let root = bfloat16Rounded(scaleValue.squareRoot())
            for i in qValues.indices { qValues[i] = bfloat16Rounded(qValues[i] * root) }
            for i in kValues.indices { kValues[i] = bfloat16Rounded(kValues[i] * root) }
            scaleValue = 1
        }
        let reps = Hq / Hkv
        var y = [Float](repeating: 0, count: batch * Hq * Sq * Dv)
        let wantQK = outputCount > 3
        var qkOut = [Float](repeating: 0, count: wantQK ? batch * Hq * Sq * L : 0)
        let softcapValue = softcap, mode = qkMode, causal = isCausal, left = leftWindow, right = rightWindow
        let hasMask = maskIn != nil

        qValues.withUnsafeBufferPointer { qp in
        kValues.withUnsafeBufferPointer { kp in
        values.withUnsafeBufferPointer { vp in
        maskValues.withUnsafeBufferPointer { mp in
        y.withUnsafeMutableBufferPointer { yp in
        qkOut.withUnsafeMutableBufferPointer { qkp in
            let qBase = qp.baseAddress!, kBase = kp.baseAddress!, vBase = vp.baseAddress!, yBase = yp.baseAddress!
            let work = Sq * L * (Dh + Dv)
            // Heads run in parallel, so each head's products run on one BLAS thread.
            context.parallelFor(batch * Hq, grain: max(1, 65536 / max(1, work))) { range in
                var scores = [Float](repeating: 0, count: Sq * L)
                var bias = [Float](repeating: 0, count: Sq * L)
                scores.withUnsafeMutableBufferPointer { sBuf in
                bias.withUnsafeMutableBufferPointer { bBuf in
                    let s = sBuf.baseAddress!, bs = bBuf.baseAddress!
                    for bh in range {
                        let b = bh / Hq, h = bh % Hq, kvh = h / reps
                        // Additive bias: mask, causal frontier, window, padding.
                        let offset = nonpad.map { $0[b] - Sq } ?? P
                        for i in 0..<Sq {
                            let row = bs + i * L
                            if hasMask {
                                let base = b * maskStrides[0] + h * maskStrides[1] + i * maskStrides[2]
                                for j in 0..<L { row[j] = j < maskLast ? mp[base + j * maskStrides[3]] : -Float.infinity }
                            } else {
                                for j in 0..<L { row[j] = 0 }
                            }
                            if causal { for j in 0..<L where j > i + offset { row[j] = -Float.infinity } }
                            if left >= 0 || right >= 0 {
                                for j in 0..<L {
                                    let diff = i + offset - j
                                    if (left >= 0 && diff > left) || (right >= 0 && -diff > right) { row[j] = -Float.infinity }
                                }
                            }
                            if let nonpad { for j in 0..<L where j >= nonpad[b] { row[j] = -Float.infinity } }
                        }
                        // scores = scale · Q Kᵀ
                        BLAS.sgemm(transA: false, transB: true, m: Sq, n: L, k: Dh, alpha: scaleValue,
                                   a: qBase + bh * Sq * Dh, lda: Dh, b: kBase + (b * Hkv + kvh) * L * Dh, ldb: Dh,
                                   c: s, ldc: L, threads: 1)
                        if bf16 { roundToBFloat16(s, Sq * L) }
                        if softcapValue > 0 {
                            if bf16 {
                                for i in 0..<(Sq * L) {
                                    s[i] = bfloat16Rounded(softcapValue * bfloat16Rounded(Foundation.tanh(bfloat16Rounded(s[i] / softcapValue))))
                                }
                            } else {
                                for i in 0..<(Sq * L) { s[i] = softcapValue * Foundation.tanh(s[i] / softcapValue) }
                            }
                        }
                        let qk = wantQK ? qkp.baseAddress! + bh * Sq * L : nil
                        if let qk, mode <= 1 { qk.update(from: s, count: Sq * L) }
                        for i in 0..<(Sq * L) { s[i] += bs[i] }
                        if bf16 { roundToBFloat16(s, Sq * L) }
                        if let qk, mode == 2 { qk.update(from: s, count: Sq * L) }
                        // Softmax per row; a row whose bias masks every key attends to nothing (zeros).
                        for i in 0..<Sq {
                            let row = s + i * L, brow = bs + i * L
                            var allMasked = true
                            for j in 0..<L where brow[j] != -Float.infinity { allMasked = false; break }
                            if allMasked {
                                for j in 0..<L { row[j] = 0 }
                                continue
                            }
                            var mx = -Float.infinity
                            for j in 0..<L { mx = max(mx, row[j]) }
                            if mx == -Float.infinity { mx = 0 }
                            var sum: Float = 0
                            if bf16 {
                                for j in 0..<L {
                                    let e = bfloat16Rounded(Foundation.exp(bfloat16Rounded(row[j] - mx)))
                                    row[j] = e
                                    sum = bfloat16Rounded(sum + e)
                                }
                                let d = sum == 0 ? 1 : sum
                                for j in 0..<L { row[j] = bfloat16Rounded(row[j] / d) }
                                continue
                            }
                            for j in 0..<L { let e = Foundation.exp(row[j] - mx); row[j] = e; sum += e }
                            let inv = sum == 0 ? 1 : 1 / sum
                            for j in 0..<L { row[j] *= inv }
                        }
                        if let qk, mode == 3 { qk.update(from: s, count: Sq * L) }
                        // Y = softmax · V
                        BLAS.sgemm(transA: false, transB: false, m: Sq, n: Dv, k: L,
                                   a: s, lda: L, b: vBase + (b * Hkv + kvh) * L * Dv, ldb: Dv,
                                   c: yBase + bh * Sq * Dv, ldc: Dv, threads: 1)
                    }
                }
                }
            }
        }
        }
        }
        }
        }
        }

        let dtype = qIn.dtype
        var outs: [NDArray?] = []
        if threeD {
            // [batch, Hq, Sq, Dv] → [batch, Sq, Hq·Dv]
            var t = [Float](repeating: 0, count: y.count)
            for b in 0..<batch { for h in 0..<Hq { for i in 0..<Sq {
                let from = ((b * Hq + h) * Sq + i) * Dv, to = ((b * Sq + i) * Hq + h) * Dv
                for d in 0..<Dv { t[to + d] = y[from + d] }
            } } }
            outs.append(t.withUnsafeBufferPointer { attentionArray($0.baseAddress!, dtype, [batch, Sq, Hq * Dv], context) })
        } else {
            outs.append(y.withUnsafeBufferPointer { attentionArray($0.baseAddress!, dtype, [batch, Hq, Sq, Dv], context) })
        }
        if outputCount > 1 {
            outs.append(keys.withUnsafeBufferPointer { attentionArray($0.baseAddress!, kIn.dtype, [batch, Hkv, L, Dh], context) })
        }
        if outputCount > 2 {
            outs.append(values.withUnsafeBufferPointer { attentionArray($0.baseAddress!, vIn.dtype, [batch, Hkv, L, Dv], context) })
        }
        if wantQK {
            outs.append(qkOut.withUnsafeBufferPointer { attentionArray($0.baseAddress!, dtype, [batch, Hq, Sq, L], context) })
        }
        return outs
    }
}

/// The ONNX `RotaryEmbedding` operator (rotate-half or interleaved, optional partial rotation).
final class RotaryEmbeddingKernel: Kernel {
    let interleaved: Bool
    let rotaryDim: Int
    let numHeads: Int

    init(info: KernelBuildInfo) throws {
        if let t = info.inputType(0), !attentionTypeSupported(t) { throw KernelError.unsupported("element type \(t)") }
        interleaved = try info.attribute("interleaved", default: 0) != 0
        rotaryDim = try info.attribute("rotary_embedding_dim", default: 0)
        numHeads = try info.attribute("num_heads", default: 0)
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), cosIn = try inputs.required(1), sinIn = try inputs.required(2)
        let positions = inputs.optional(3)
        guard attentionTypeSupported(x.dtype) else { throw KernelError("element type \(x.dtype) is not supported") }
        // Element (b, s, h, d) lives at b·bStride + s·sStride + h·hStride + d.
        let B: Int, S: Int, H: Int, D: Int, bStride: Int, sStride: Int, hStride: Int
        if x.rank == 4 {
            (B, H, S, D) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            (bStride, hStride, sStride) = (H * S * D, S * D, D)
        } else if x.rank == 3 {
            guard numHeads > 0, x.shape[2] % numHeads == 0 else {
                throw KernelError("3-D input \(x.shape) needs num_heads dividing its hidden size")
            }
            (B, S, H, D) = (x.shape[0], x.shape[1], numHeads, x.shape[2] / numHeads)
            (bStride, sStride, hStride) = (S * H * D, H * D, D)
        } else {
            throw KernelError("input must have rank 3 or 4, got \(x.shape)")
        }
        let rd = rotaryDim == 0 ? D : rotaryDim
        guard rd % 2 == 0, rd <= D else { throw KernelError("rotary_embedding_dim \(rd) must be even and at most \(D)") }
        let half = rd / 2
        guard cosIn.shape.last == half, sinIn.shape == cosIn.shape else {
            throw KernelError("cos_cache \(cosIn.shape) / sin_cache \(sinIn.shape) must end in rotary_embedding_dim/2 = \(half)")
        }
        let pos: [Int]?
        if let positions {
            guard positions.shape == [B, S] else { throw KernelError("position_ids \(positions.shape) must be [\(B), \(S)]") }
            pos = positions.ints()
            let maxPos = cosIn.shape[0]
            if let bad = pos!.first(where: { $0 < 0 || $0 >= maxPos }) { throw KernelError("position id \(bad) is outside the cache (\(maxPos))") }
        } else {
            guard cosIn.count == B * S * half else { throw KernelError("cos_cache \(cosIn.shape) must be [\(B), \(S), \(half)] without position_ids") }
            pos = nil
        }
        let xs = attentionFloats(x), cs = attentionFloats(cosIn), sn = attentionFloats(sinIn)
        var out = xs
        let inter = interleaved
        for b in 0..<B {
            for s in 0..<S {
                let row = (pos.map { $0[b * S + s] } ?? (b * S + s)) * half
                for h in 0..<H {
                    let base = b * bStride + s * sStride + h * hStride
                    for i in 0..<half {
                        let (i1, i2) = inter ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + half + i)
                        let x1 = xs[i1], x2 = xs[i2], c = cs[row + i], sv = sn[row + i]
                        out[i1] = c * x1 - sv * x2
                        out[i2] = sv * x1 + c * x2
                    }
                }
            }
        }
        return [out.withUnsafeBufferPointer { attentionArray($0.baseAddress!, x.dtype, x.shape, context) }]
    }
}
