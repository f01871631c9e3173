import Foundation

/// Lifts the `raw_data` of the main graph's initializers out of a serialized `ModelProto`.
///
/// swift-protobuf copies every `bytes` field while decoding, so decoding a 1 GB model would cost
/// another 1 GB. This walks the protobuf wire format along `ModelProto.graph (7)` →
/// `GraphProto.initializer (5)` → `TensorProto.raw_data (9)`, returns a copy of the model without
/// those fields (a few kilobytes to megabytes: everything but the weights) and the location of each
/// initializer's weights in the original buffer, so tensors can point into the mapped file.
///
/// Anything it does not understand (malformed varints, lengths past the end, groups) makes it give
/// up and return `nil`; the caller then decodes the original bytes, and swift-protobuf reports the
/// problem.
enum RawDataStripper {
    struct Result {
        /// The model without the initializers' raw_data.
        var stripped: Data
        /// Per initializer of the main graph, in order: the raw_data range in the original buffer.
        var rawData: [Range<Int>?]
    }

    /// Models smaller than this are decoded directly: the copy costs less than the walk.
    static let minimumSize = 1 << 20

    static func strip(_ data: Data) -> Result? {
        guard data.count >= minimumSize else { return nil }
        return data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) -> Result? in
            var ranges: [Range<Int>?] = []
            var out = Data()
            out.reserveCapacity(1 << 16)
            var r = Reader(buf: buf, pos: 0, end: buf.count)
            while r.pos < r.end {
                let fieldStart = r.pos
                guard let (field, wire) = r.tag() else { return nil }
                if field == 7 && wire == 2 {
                    guard let (start, end) = r.lengthDelimited() else { return nil }
                    guard let graph = stripGraph(buf, start, end, &ranges) else { return nil }
                    appendVarint(&out, UInt64(7 << 3 | 2))
                    appendVarint(&out, UInt64(graph.count))
                    out.append(graph)
                } else {
                    guard r.skip(wire) else { return nil }
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[fieldStart ..< r.pos]))
                }
            }
            return Result(stripped: out, rawData: ranges)
        }
    }

    private static func stripGraph(_ buf: UnsafeRawBufferPointer, _ start: Int, _ end: Int, _ ranges: inout [Range<Int>?]) -> Data? {
        var out = Data()
        var r = Reader(buf: buf, pos: start, end: end)
        while r.pos < r.end {
            let fieldStart = r.pos
            guard let (field, wire) = r.tag() else { return nil }
            if field == 5 && wire == 2 {
                guard let (s, e) = r.lengthDelimited() else { return nil }
                var tensor = Data()
                var raw: Range<Int>?
                var t = Reader(buf: buf, pos: s, end: e)
                while t.pos < t.end {
                    let fs = t.pos
                    guard let (f, w) = t.tag() else { return nil }
                    if f == 9 && w == 2 {
                        guard let (rs, re) = t.lengthDelimited() else { return nil }
                        raw = rs ..< re
                    } else {
                        guard t.skip(w) else { return nil }
                        tensor.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[fs ..< t.pos]))
                    }
                }
                ranges.append(raw)
                appendVarint(&out, UInt64(5 << 3 | 2))
                appendVarint(&out, UInt64(tensor.count))
                out.append(tensor)
            } else {
                guard r.skip(wire) else { return nil }
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[fieldStart ..< r.pos]))
            }
        }
        return out
    }

    private static func appendVarint(_ out: inout Data, _ value: UInt64) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    private struct Reader {
        let buf: UnsafeRawBufferPointer
        var pos: Int
        let end: Int

        mutating func varint() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while pos < end && shift < 64 {
                let b = buf[pos]
                pos += 1
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
            }
            return nil
        }

        mutating func tag() -> (Int, Int)? {
            guard let t = varint(), t >> 3 > 0, t >> 3 < (1 << 29) else { return nil }
            return (Int(t >> 3), Int(t & 7))
        }

        mutating func lengthDelimited() -> (Int, Int)? {
            guard let n = varint(), n <= UInt64(end - pos) else { return nil }
            let s = pos
            pos += Int(n)
            return (s, pos)
        }

        mutating func skip(_ wire: Int) -> Bool {
            switch wire {
            case 0: return varint() != nil
            case 1:
                guard end - pos >= 8 else { return false }
                pos += 8
                return true
            case 2: return lengthDelimited() != nil
            case 5:
                guard end - pos >= 4 else { return false }
                pos += 4
                return true
            default: return false  // groups are not used by onnx.proto
            }
        }
    }
}
