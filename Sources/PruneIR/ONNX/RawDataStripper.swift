import Foundation

/// Lifts the `raw_data` of the main graph's initializers out of a serialized `ModelProto`.
///
/// swift-protobuf copies every `bytes` field while decoding, so decoding a 1 GB model would cost
/// another 1 GB. This walks the protobuf wire format along `ModelProto.graph (7)` →
/// `GraphProto.initializer (5)` → `TensorProto.raw_data (9)`, returns a copy of the model without
/// those fields (everything but the weights) and the location of each initializer's weights in
/// the original buffer, so tensors can point into the mapped file.
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
            guard let base = buf.baseAddress else { return nil }
            var ranges: [Range<Int>?] = []
            // Keeps every field but `skip`; `nested` rewrites one length-delimited field.
            func copy(_ message: UnsafeRawBufferPointer, skip: UInt64?, nested: UInt64?, _ rewrite: (UnsafeRawBufferPointer) -> Data?) -> Data? {
                var out = Data()
                var r = ProtobufWireReader(bytes: message)
                while !r.isAtEnd {
                    let start = r.offset
                    guard let (field, wire) = r.readTag() else { return nil }
                    if wire == 2 && (field == skip || field == nested) {
                        guard let payload = r.readLengthDelimited() else { return nil }
                        if field == skip {
                            ranges.append(payload.baseAddress.map { $0 - base } .map { $0 ..< $0 + payload.count } ?? 0 ..< 0)
                            continue
                        }
                        guard let inner = rewrite(payload) else { return nil }
                        appendVarint(&out, field << 3 | 2)
                        appendVarint(&out, UInt64(inner.count))
                        out.append(inner)
                    } else {
                        guard r.skip(wireType: wire) else { return nil }
                        out.append(contentsOf: r.bytes(from: start))
                    }
                }
                return out
            }
            return copy(buf, skip: nil, nested: 7) { graph in
                copy(graph, skip: nil, nested: 5) { tensor in
                    let before = ranges.count
                    let t = copy(tensor, skip: 9, nested: nil) { _ in nil }
                    if ranges.count == before { ranges.append(nil) }
                    return t
                }
            }.map { Result(stripped: $0, rawData: ranges) }
        }
    }

    private static func appendVarint(_ out: inout Data, _ value: UInt64) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
