import Foundation
import PruneIR

// Shared helpers of the shape and layout kernels (Transpose, Slice, Expand, Tile, Pad, ...).
// These kernels move elements without looking at them, so they work on any element type by
// copying elements of the right byte width (1, 2, 4 or 8 bytes).

/// Bytes one element of `dtype` takes in an ``NDArray`` (booleans take one byte).
@inline(__always)
func elementSize(_ dtype: DType) -> Int {
    dtype == .bool ? 1 : max(1, dtype.bitWidth / 8)
}

/// `axis` made non-negative for an array of `rank`, or a ``KernelError`` when out of range.
func normalizedAxis(_ axis: Int, rank: Int, _ what: String = "axis") throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0, a < max(rank, 1) else { throw KernelError("\(what) \(axis) is out of range for rank \(rank)") }
    return a
}

/// Integer values of an attribute list or of a 1-D integer input, whichever the opset uses.
func intsInput(_ inputs: [NDArray?], _ i: Int) -> [Int]? {
    inputs.optional(i).map { $0.ints() }
}

/// Element-type agnostic copying kernels.
enum Layout {
    /// Copies the elements of a strided view of `src` into contiguous `dst` (row-major in `shape`).
    ///
    /// Element `(i0, ..., in)` of the output is read at element offset
    /// `srcOffset + Σ ik * srcStrides[k]` of `src`; strides may be zero (broadcast) or negative
    /// (reversed). This is Transpose, Slice, Expand, Tile and the space/depth shuffles.
    static func stridedCopy(
        src: UnsafeRawPointer, srcOffset: Int, srcStrides: [Int],
        dst: UnsafeMutableRawPointer, shape: [Int], elementSize: Int, context: KernelContext?
    ) {
        if shape.contains(0) { return }
        // Drop unit dimensions and merge dimensions that are contiguous in the source, so that
        // the innermost loop is as long as possible.
        var dims: [Int] = []
        var strides: [Int] = []
        for (d, s) in zip(shape, srcStrides) where d != 1 {
            if let last = dims.last, strides[strides.count - 1] == s * d {
                dims[dims.count - 1] = last * d
                strides[strides.count - 1] = s
            } else {
                dims.append(d)
                strides.append(s)
            }
        }
        if dims.isEmpty { dims = [1]; strides = [0] }
        // Small copies (attention heads of small models): plain nested loops. The general path's
        // tiling, row walker and parallel loop cost more than such a copy.
        if dims.count <= 4, dims.reduce(1, *) <= smallCopyElements {
            switch elementSize {
            case 4: smallCopy(src, srcOffset, strides, dst, dims, UInt32.self); return
            case 8: smallCopy(src, srcOffset, strides, dst, dims, UInt64.self); return
            case 2: smallCopy(src, srcOffset, strides, dst, dims, UInt16.self); return
            case 1: smallCopy(src, srcOffset, strides, dst, dims, UInt8.self); return
            default: break
            }
        }
        switch elementSize {
        case 1: copyTyped(src, srcOffset, strides, dst, dims, UInt8.self, context)
        case 2: copyTyped(src, srcOffset, strides, dst, dims, UInt16.self, context)
        case 4: copyTyped(src, srcOffset, strides, dst, dims, UInt32.self, context)
        case 8: copyTyped(src, srcOffset, strides, dst, dims, UInt64.self, context)
        default:
            // Any other width: copy bytes, with a trailing byte dimension.
            copyTyped(src, srcOffset * elementSize, strides.map { $0 * elementSize } + [1], dst,
                      dims + [elementSize], UInt8.self, context)
        }
    }

    /// Elements below which a strided copy runs as plain nested loops on one thread.
    static let smallCopyElements = 16_384

    /// A strided copy of at most 4 dimensions as nested loops, the output contiguous.
    @inline(__always)
    private static func smallCopy<T>(
        _ srcRaw: UnsafeRawPointer, _ offset: Int, _ strides: [Int],
        _ dstRaw: UnsafeMutableRawPointer, _ shape: [Int], _: T.Type
    ) {
        let src = srcRaw.assumingMemoryBound(to: T.self) + offset
        var o = dstRaw.assumingMemoryBound(to: T.self)
        // Pad to 4 dimensions in front (size 1, stride 0).
        let pad = 4 - shape.count
        func dim(_ i: Int) -> (Int, Int) { i < pad ? (1, 0) : (shape[i - pad], strides[i - pad]) }
        let (n0, s0) = dim(0), (n1, s1) = dim(1), (n2, s2) = dim(2), (n3, s3) = dim(3)
        for i0 in 0..<n0 {
            for i1 in 0..<n1 {
                for i2 in 0..<n2 {
                    let base = src + i0 * s0 + i1 * s1 + i2 * s2
                    if s3 == 1 {
                        o.update(from: base, count: n3)
                    } else {
                        for i3 in 0..<n3 { o[i3] = base[i3 * s3] }
                    }
                    o += n3
                }
            }
        }
    }

    private static func copyTyped<T>(
        _ srcRaw: UnsafeRawPointer, _ offset: Int, _ strides: [Int],
        _ dstRaw: UnsafeMutableRawPointer, _ shape: [Int], _: T.Type, _ context: KernelContext?
    ) {
        let src = srcRaw.assumingMemoryBound(to: T.self) + offset
        let dst = dstRaw.assumingMemoryBound(to: T.self)
        let rank = shape.count
        let inner = shape[rank - 1]
        let total = shape.reduce(1, *)
        // A transpose that moves the source's contiguous dimension away from the end: copy in
        // square tiles so that both reads and writes stay in cache.
        if rank >= 2, strides[rank - 1] != 1, inner >= 8,
           let j = strides.firstIndex(of: 1), shape[j] >= 8 {
            tiledCopy(src, strides, dst, shape, j, context)
            return
        }
        let rows = total / inner
        let grain = max(1, 65536 / max(inner, 1))
        let st = strides[rank - 1]
        let body: (Range<Int>) -> Void = { range in
            forEachRow(range, shape: shape, strides: strides) { row, off in
                let o = dst + row * inner
                let s = src + off
                if st == 1 {
                    o.update(from: s, count: inner)
                } else if st == 0 {
                    o.update(repeating: s.pointee, count: inner)
                } else {
                    for i in 0..<inner { o[i] = s[i * st] }
                }
            }
        }
        if let context { context.parallelFor(rows, grain: grain, body) } else { body(0..<rows) }
    }

    /// Calls `body(row, offset)` for the rows in `range` of an array of `shape` (row-major, a row
    /// being the last dimension), where `offset` is `Σ i_d · strides[d]` over the row's index in
    /// the other dimensions. The index advances like an odometer (no division per row).
    @inline(__always)
    static func forEachRow(_ range: Range<Int>, shape: [Int], strides: [Int], _ body: (Int, Int) -> Void) {
        let rank = shape.count
        shape.withUnsafeBufferPointer { shape in
            strides.withUnsafeBufferPointer { strides in
                var index = [Int](repeating: 0, count: max(rank - 1, 1))
                var off = 0
                var r = range.lowerBound
                for d in stride(from: rank - 2, through: 0, by: -1) {
                    index[d] = r % shape[d]
                    r /= shape[d]
                    off += index[d] * strides[d]
                }
                for row in range {
                    body(row, off)
                    var d = rank - 2
                    while d >= 0 {
                        index[d] += 1
                        off += strides[d]
                        if index[d] < shape[d] { break }
                        off -= strides[d] * shape[d]
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
    }

    /// The source offset of row `row` of a table gather's output (shaped `shape`) through the
    /// tables of all but the last dimension, or `nil` when the row lies in the padding. Shared
    /// by ``tableGather(src:tables:dst:shape:fill:elementSize:context:)`` and Pad's VJP.
    @inline(__always)
    static func tableRowOffset(_ row: Int, tables: [[Int]], shape: [Int]) -> Int? {
        var r = row
        var off = 0
        for d in stride(from: shape.count - 2, through: 0, by: -1) {
            let t = tables[d][r % shape[d]]
            r /= shape[d]
            if t < 0 { return nil }
            off += t
        }
        return off
    }

    /// Copies with dimension `j` (source stride 1) and the last dimension walked in tiles.
    private static func tiledCopy<T>(
        _ src: UnsafePointer<T>, _ strides: [Int], _ dst: UnsafeMutablePointer<T>, _ shape: [Int],
        _ j: Int, _ context: KernelContext?
    ) {
        let rank = shape.count
        let dstStrides = Broadcast.contiguousStrides(shape)
        let tile = 32
        let na = shape[j], nb = shape[rank - 1]
        let sb = strides[rank - 1], da = dstStrides[j]
        // The remaining ("batch") dimensions.
        let batchDims = (0..<(rank - 1)).filter { $0 != j }
        let batchShape = batchDims.map { shape[$0] }
        let batchCount = batchShape.reduce(1, *)
        let tilesA = (na + tile - 1) / tile
        let work = batchCount * tilesA
        let body: (Range<Int>) -> Void = { range in
            for w in range {
                var bIndex = w / tilesA
                let ta = w % tilesA
                var srcOff = 0, dstOff = 0
                for k in stride(from: batchDims.count - 1, through: 0, by: -1) {
                    let d = batchDims[k]
                    let i = bIndex % shape[d]
                    bIndex /= shape[d]
                    srcOff += i * strides[d]
                    dstOff += i * dstStrides[d]
                }
                let a0 = ta * tile, a1 = min(na, a0 + tile)
                var b0 = 0
                while b0 < nb {
                    let b1 = min(nb, b0 + tile)
                    for a in a0..<a1 {
                        let s = src + srcOff + a
                        let o = dst + dstOff + a * da
                        for b in b0..<b1 { o[b] = s[b * sb] }
                    }
                    b0 = b1
                }
            }
        }
        if let context {
            context.parallelFor(work, grain: max(1, 65536 / max(tile * nb, 1)), body)
        } else {
            body(0..<work)
        }
    }

    /// Writes `count` copies of the element at `value` to `dst`.
    static func fill(_ dst: UnsafeMutableRawPointer, count: Int, value: UnsafeRawPointer, elementSize: Int) {
        guard count > 0 else { return }
        switch elementSize {
        case 1: dst.assumingMemoryBound(to: UInt8.self).update(repeating: value.load(as: UInt8.self), count: count)
        case 2: dst.assumingMemoryBound(to: UInt16.self).update(repeating: value.loadUnaligned(as: UInt16.self), count: count)
        case 4: dst.assumingMemoryBound(to: UInt32.self).update(repeating: value.loadUnaligned(as: UInt32.self), count: count)
        case 8: dst.assumingMemoryBound(to: UInt64.self).update(repeating: value.loadUnaligned(as: UInt64.self), count: count)
        default:
            for i in 0..<count { (dst + i * elementSize).copyMemory(from: value, byteCount: elementSize) }
        }
    }

    /// Copies element `from` of `src` to element `to` of `dst`.
    @inline(__always)
    static func copyElement(_ src: UnsafeRawPointer, _ from: Int, _ dst: UnsafeMutableRawPointer, _ to: Int, _ size: Int) {
        switch size {
        case 1: dst.assumingMemoryBound(to: UInt8.self)[to] = src.assumingMemoryBound(to: UInt8.self)[from]
        case 2: dst.assumingMemoryBound(to: UInt16.self)[to] = src.assumingMemoryBound(to: UInt16.self)[from]
        case 4: dst.assumingMemoryBound(to: UInt32.self)[to] = src.assumingMemoryBound(to: UInt32.self)[from]
        case 8: dst.assumingMemoryBound(to: UInt64.self)[to] = src.assumingMemoryBound(to: UInt64.self)[from]
        default: (dst + to * size).copyMemory(from: src + from * size, byteCount: size)
        }
    }

    /// Copies `count` elements starting at element `from` of `src` to element `to` of `dst`.
    @inline(__always)
    static func copyElements(_ src: UnsafeRawPointer, _ from: Int, _ dst: UnsafeMutableRawPointer, _ to: Int,
                             count: Int, size: Int) {
        if count == 1 { copyElement(src, from, dst, to, size); return }
        if count > 0 { (dst + to * size).copyMemory(from: src + from * size, byteCount: count * size) }
    }

    /// Gathers through per-axis offset tables: output element `(i0, ..., in)` is source element
    /// `Σ tables[k][ik]`, or `fill` when any `tables[k][ik]` is negative. Used by Pad.
    static func tableGather(
        src: UnsafeRawPointer, tables: [[Int]], dst: UnsafeMutableRawPointer, shape: [Int],
        fill: UnsafeRawPointer, elementSize: Int, context: KernelContext?
    ) {
        switch elementSize {
        case 1: tableGatherTyped(src, tables, dst, shape, fill, UInt8.self, context)
        case 2: tableGatherTyped(src, tables, dst, shape, fill, UInt16.self, context)
        case 4: tableGatherTyped(src, tables, dst, shape, fill, UInt32.self, context)
        case 8: tableGatherTyped(src, tables, dst, shape, fill, UInt64.self, context)
        default:
            // Other widths: one byte dimension more.
            tableGatherTyped(src, tables.map { $0.map { $0 < 0 ? -1 : $0 * elementSize } } + [Array(0..<elementSize)],
                             dst, shape + [elementSize], fill, UInt8.self, context)
        }
    }

    private static func tableGatherTyped<T>(
        _ srcRaw: UnsafeRawPointer, _ tables: [[Int]], _ dstRaw: UnsafeMutableRawPointer, _ shape: [Int],
        _ fillRaw: UnsafeRawPointer, _: T.Type, _ context: KernelContext?
    ) {
        let src = srcRaw.assumingMemoryBound(to: T.self)
        let dst = dstRaw.assumingMemoryBound(to: T.self)
        let fill = fillRaw.loadUnaligned(as: T.self)
        if shape.isEmpty { dst[0] = src[0]; return }
        let total = shape.reduce(1, *)
        guard total > 0 else { return }
        let rank = shape.count
        let inner = shape[rank - 1]
        let rows = total / inner
        let body: (Range<Int>) -> Void = { range in
            tables[rank - 1].withUnsafeBufferPointer { innerTable in
                for row in range {
                    let o = dst + row * inner
                    guard let off = tableRowOffset(row, tables: tables, shape: shape) else {
                        o.update(repeating: fill, count: inner)
                        continue
                    }
                    let s = src + off
                    for i in 0..<inner {
                        let t = innerTable[i]
                        o[i] = t < 0 ? fill : s[t]
                    }
                }
            }
        }
        if let context { context.parallelFor(rows, grain: max(1, 65536 / inner), body) } else { body(0..<rows) }
    }
}

/// Converting numbers to stored elements, for the few layout ops that make values
/// (EyeLike's ones, Range, Pad's attribute value).
enum ElementValue {
    /// Stores `v` converted to `dtype` as element `i` of `p`. Throws for types without numbers.
    static func store(_ v: Double, _ dtype: DType, _ p: UnsafeMutableRawPointer, _ i: Int) throws {
        switch dtype {
        case .float: p.assumingMemoryBound(to: Float.self)[i] = Float(v)
        case .double: p.assumingMemoryBound(to: Double.self)[i] = v
        case .float16: p.assumingMemoryBound(to: Float16.self)[i] = Float16(v)
        case .bfloat16: p.assumingMemoryBound(to: UInt16.self)[i] = FloatBridge.bfloat16Bits(Float(v))
        case .int8: p.assumingMemoryBound(to: Int8.self)[i] = Int8(truncatingIfNeeded: Int64(v))
        case .int16: p.assumingMemoryBound(to: Int16.self)[i] = Int16(truncatingIfNeeded: Int64(v))
        case .int32: p.assumingMemoryBound(to: Int32.self)[i] = Int32(truncatingIfNeeded: Int64(v))
        case .int64: p.assumingMemoryBound(to: Int64.self)[i] = Int64(v)
        case .uint8: p.assumingMemoryBound(to: UInt8.self)[i] = UInt8(truncatingIfNeeded: Int64(v))
        case .uint16: p.assumingMemoryBound(to: UInt16.self)[i] = UInt16(truncatingIfNeeded: Int64(v))
        case .uint32: p.assumingMemoryBound(to: UInt32.self)[i] = UInt32(truncatingIfNeeded: Int64(v))
        case .uint64: p.assumingMemoryBound(to: UInt64.self)[i] = v < 0 ? UInt64(bitPattern: Int64(v)) : UInt64(v)
        case .bool: p.assumingMemoryBound(to: UInt8.self)[i] = v != 0 ? 1 : 0
        default: throw KernelError.unsupported("element type \(dtype)")
        }
    }
}
