/// A bounds-checked cursor over protobuf wire-format bytes.
///
/// Used where decoding a whole message would cost too much: reading a model's header for libonnx,
/// and lifting weights out of a model before decoding it (``RawDataStripper``). Every read checks
/// the remaining length and returns `nil`/`false` instead of trapping, since the bytes come from a
/// model file.
struct ProtobufWireReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { offset >= bytes.count }

    mutating func readVarint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    mutating func readTag() -> (field: UInt64, wireType: UInt64)? {
        guard let tag = readVarint(), tag >> 3 != 0 else { return nil }
        return (tag >> 3, tag & 7)
    }

    /// The payload of a length-delimited field, as a view into the same memory.
    mutating func readLengthDelimited() -> UnsafeRawBufferPointer? {
        guard let length = readVarint(), length <= UInt64(bytes.count - offset) else { return nil }
        let start = offset
        offset += Int(length)
        return UnsafeRawBufferPointer(rebasing: bytes[start ..< offset])
    }

    /// The bytes from `start` to the current offset (a whole field, for copying it unchanged).
    func bytes(from start: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[start ..< offset])
    }

    mutating func skip(wireType: UInt64) -> Bool {
        switch wireType {
        case 0: return readVarint() != nil
        case 1: return advance(8)
        case 2: return readLengthDelimited() != nil
        case 5: return advance(4)
        default: return false  // groups (3, 4) are not used by onnx.proto; 6, 7 are invalid
        }
    }

    private mutating func advance(_ count: Int) -> Bool {
        guard bytes.count - offset >= count else { return false }
        offset += count
        return true
    }
}
