import Foundation
import PruneIR

// onnxruntime's RotaryEmbedding contrib op (com.microsoft), and the rotation GroupQueryAttention
// applies with do_rotary.
//
// It differs from ONNX's opset-23 RotaryEmbedding (Attention.swift) in its inputs: position_ids
// is required and comes second, and a one-element position_ids is an offset (position s reads cache
// row offset + s), as in onnxruntime's rotary_embedding_helper (position_ids_format 0).
func registerContribRotaryKernels(_ r: inout KernelRegistry) {
    r.register("RotaryEmbedding", domain: "com.microsoft", since: 1) { info in try ContribRotaryEmbeddingKernel(info) }
}

/// Rotates the first `rotaryDim` elements of one head row in place with one cache row.
///
/// Rotate-half pairs element i with i + rotaryDim/2; interleaved pairs 2i with 2i + 1.
@inline(__always)
func contribRotate(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                   rotaryDim: Int, interleaved: Bool) {
    let half = rotaryDim / 2
    for i in 0..<half {
        let (i1, i2) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
        let x1 = x[i1], x2 = x[i2], c = cos[i], s = sin[i]
        x[i1] = x1 * c - x2 * s
        x[i2] = x1 * s + x2 * c
    }
}

/// `com.microsoft::RotaryEmbedding`.
///
/// input: [B, S, N·H] (3-D) or [B, N, S, H] (4-D); position_ids: [B, S], or [1] as an offset;
/// cos_cache/sin_cache: [max_position, rotary_dim/2]. Without num_heads a 3-D input's head size is
/// twice the cache width. `scale` is accepted and, as in onnxruntime's CPU kernel, not applied.
/// is_packed_batching is refused.
final class ContribRotaryEmbeddingKernel: Kernel {
    let interleaved: Bool
    let numHeads: Int
    let rotaryDim: Int

    init(_ info: KernelBuildInfo) throws {
        if let t = info.inputType(0), t != .float && t != .float16 { throw KernelError.unsupported("element type \(t) (float and float16 only)") }
        interleaved = try info.attribute("interleaved", default: 0) != 0
        numHeads = try info.attribute("num_heads", default: 0)
        rotaryDim = try info.attribute("rotary_embedding_dim", default: 0)
        if try info.attribute("is_packed_batching", default: 0) != 0 {
            throw KernelError.unsupported("is_packed_batching=1 is not supported")
        }
        if rotaryDim > 0 && numHeads <= 0 { throw KernelError("num_heads must be given with rotary_embedding_dim") }
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), positions = try inputs.required(1)
        let cosIn = try inputs.required(2), sinIn = try inputs.required(3)
        guard x.dtype == .float || x.dtype == .float16 else { throw KernelError("element type \(x.dtype) is not supported") }
        guard cosIn.rank == 2, sinIn.shape == cosIn.shape else {
            throw KernelError("cos_cache \(cosIn.shape) and sin_cache \(sinIn.shape) must be the same [max_position, rotary_dim/2]")
        }
        let half = cosIn.shape[1], maxPos = cosIn.shape[0]
        // Element (b, s, n, h) lives at b·bStride + s·sStride + n·nStride + h.
        let B: Int, S: Int, N: Int, H: Int, bStride: Int, sStride: Int, nStride: Int
        if x.rank == 4 {
            (B, N, S, H) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            (bStride, nStride, sStride) = (N * S * H, S * H, H)
        } else if x.rank == 3 {
            (B, S) = (x.shape[0], x.shape[1])
            let hidden = x.shape[2]
            let heads = numHeads > 0 ? numHeads : (half > 0 ? hidden / (2 * half) : 0)
            guard heads > 0, hidden % heads == 0 else {
                throw KernelError("cannot split hidden size \(hidden) into heads (num_heads \(numHeads), cache width \(half))")
            }
            (N, H) = (heads, hidden / heads)
            (bStride, sStride, nStride) = (S * hidden, hidden, H)
        } else {
            throw KernelError("input must be 3-D [B, S, hidden] or 4-D [B, N, S, head], got \(x.shape)")
        }
        let rd = rotaryDim > 0 ? rotaryDim : H
        guard rd % 2 == 0, rd <= H, half == rd / 2 else {
            throw KernelError("rotary dim \(rd) must be even, at most the head size \(H), and twice the cache width \(half)")
        }
        let pos = positions.ints()
        let offset: Int?
        if positions.count == 1 {
            offset = pos[0]
        } else {
            guard positions.shape == [B, S] else { throw KernelError("position_ids \(positions.shape) must be [\(B), \(S)] or [1]") }
            offset = nil
        }
        var out = attentionFloats(x)
        let cs = attentionFloats(cosIn), sn = attentionFloats(sinIn)
        let inter = interleaved
        try out.withUnsafeMutableBufferPointer { o in
            try cs.withUnsafeBufferPointer { c in
                try sn.withUnsafeBufferPointer { s in
                    for b in 0..<B {
                        for si in 0..<S {
                            let p = offset.map { $0 + si } ?? pos[b * S + si]
                            guard p >= 0, p < maxPos else { throw KernelError("position \(p) is outside the cache (\(maxPos) rows)") }
                            for n in 0..<N {
                                contribRotate(o.baseAddress! + b * bStride + si * sStride + n * nStride,
                                              cos: c.baseAddress! + p * half, sin: s.baseAddress! + p * half,
                                              rotaryDim: rd, interleaved: inter)
                            }
                        }
                    }
                }
            }
        }
        return [out.withUnsafeBufferPointer { attentionArray($0.baseAddress!, x.dtype, x.shape, context) }]
    }
}
