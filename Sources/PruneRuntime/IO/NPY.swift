import Foundation
import PruneIR

/// An error reading or writing a tensor data file (`.npy`, `.npz`, a test data folder).
///
/// The description names the file and, inside an `.npz`, the member:
/// `data.npz: member 'x.npy': unsupported dtype '<c8'`.
public struct TensorDataError: Error, CustomStringConvertible, Equatable {
    /// The file as the user named it.
    public var file: String
    /// The archive member (`x.npy`), if the problem is inside one.
    public var member: String?
    /// What is wrong.
    public var reason: String

    /// An error about `file` (and `member` inside it).
    public init(file: String, member: String? = nil, reason: String) {
        self.file = file
        self.member = member
        self.reason = reason
    }

    public var description: String {
        if let member { return "\(file): member '\(member)': \(reason)" }
        return "\(file): \(reason)"
    }
}

/// NumPy's `.npy` format: a magic string, a version, a Python-dict header, then the raw elements.
///
/// Reads versions 1.0, 2.0 and 3.0 of C-ordered arrays of little-endian (or single-byte) numbers
/// and booleans; writes version 1.0 (2.0 when the header is too long for 1.0).
public enum NPY {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    /// The parsed header: element type, dimensions, and where the elements start.
    struct Header {
        var dtype: DType
        var shape: [Int]
        var dataOffset: Int
        var byteCount: Int { NDArray.byteCount(dtype, shape.reduce(1, *)) }
    }

    /// Reads an `.npy` file.
    public static func read(contentsOf url: URL, displayName: String? = nil) throws -> NDArray {
        let file = displayName ?? url.relativePath
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw TensorDataError(file: file, reason: FileManager.default.fileExists(atPath: url.path) ? "cannot read: \(error.localizedDescription)" : "no such file")
        }
        return try decode(data, file: file)
    }

    /// Decodes a whole `.npy` image. Errors name `file` and `member`.
    public static func decode(_ data: Data, file: String, member: String? = nil) throws -> NDArray {
        let header = try parseHeader(data, file: file, member: member)
        let need = header.byteCount
        guard data.count - header.dataOffset >= need else {
            throw TensorDataError(file: file, member: member,
                                  reason: "truncated: shape \(header.shape) of \(npyName(header.dtype)) needs \(need) bytes of data, the file has \(data.count - header.dataOffset)")
        }
        if data.count - header.dataOffset > need {
            throw TensorDataError(file: file, member: member,
                                  reason: "\(data.count - header.dataOffset - need) unexpected bytes after the data of shape \(header.shape)")
        }
        let array = NDArray(uninitialized: header.dtype, shape: header.shape)
        data.withUnsafeBytes { raw in
            if need > 0 { array.rawPointer.copyMemory(from: raw.baseAddress! + header.dataOffset, byteCount: need) }
        }
        if header.dtype == .bool { normalizeBools(array) }
        return array
    }

    /// Parses the magic, version and header dictionary at the start of `data`.
    static func parseHeader(_ data: Data, file: String, member: String?) throws -> Header {
        func fail(_ reason: String) -> TensorDataError { TensorDataError(file: file, member: member, reason: reason) }
        guard data.count >= 10, data.prefix(6).elementsEqual(magic) else {
            throw fail("not an .npy file (no \\x93NUMPY magic)")
        }
        let base = data.startIndex
        let major = data[base + 6]
        let minor = data[base + 7]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(data[base + 8]) | Int(data[base + 9]) << 8
            headerStart = 10
        case 2, 3:
            guard data.count >= 12 else { throw fail("truncated header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(data[base + 8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw fail("unsupported .npy format version \(major).\(minor) (1.0, 2.0 and 3.0 are supported)")
        }
        guard data.count >= headerStart + headerLength else {
            throw fail("truncated header: it declares \(headerLength) bytes, the file has \(data.count - headerStart)")
        }
        let bytes = data[(base + headerStart)..<(base + headerStart + headerLength)]
        // Versions 1 and 2 are latin-1, version 3 is UTF-8; the keys and values we accept are ASCII.
        let text = major == 3 ? String(decoding: bytes, as: UTF8.self) : String(bytes.map { Character(Unicode.Scalar($0)) })
        let dict: [String: HeaderValue]
        do {
            var parser = HeaderParser(text)
            dict = try parser.parseDict()
        } catch let e as HeaderParser.Failure {
            throw fail("malformed header \(text.trimmingCharacters(in: .whitespacesAndNewlines).debugDescription): \(e.reason)")
        }
        guard case .string(let descr)? = dict["descr"] else {
            throw fail("header has no 'descr' string (structured dtypes are not supported)")
        }
        guard case .bool(let fortran)? = dict["fortran_order"] else { throw fail("header has no 'fortran_order' flag") }
        guard case .tuple(let shape)? = dict["shape"] else { throw fail("header has no 'shape' tuple") }
        if fortran {
            throw fail("fortran_order is True: only C-ordered arrays are supported (save np.ascontiguousarray(a))")
        }
        guard let dtype = dtype(descr) else {
            throw fail("unsupported dtype '\(descr)' (supported: <f2 <f4 <f8 <i1..<i8 <u1..<u8 |b1, little-endian)")
        }
        guard shape.allSatisfy({ $0 >= 0 }), let count = Shape.product(shape) else { throw fail("invalid shape \(shape)") }
        // The byte count must be representable before anything compares or allocates it.
        guard dtype == .bool || !count.multipliedReportingOverflow(by: max(1, dtype.bitWidth)).overflow else {
            throw fail("shape \(shape) of \(npyName(dtype)) is too large to exist")
        }
        return Header(dtype: dtype, shape: shape, dataOffset: headerStart + headerLength)
    }

    /// The element type of a NumPy type string such as `<f4` or `|b1`.
    static func dtype(_ descr: String) -> DType? {
        guard descr.count >= 3 else { return nil }
        let order = descr.first!
        let code = String(descr.dropFirst())
        let single: [String: DType] = ["b1": .bool, "i1": .int8, "u1": .uint8]
        let multi: [String: DType] = [
            "f2": .float16, "f4": .float, "f8": .double, "i2": .int16, "i4": .int32, "i8": .int64,
            "u2": .uint16, "u4": .uint32, "u8": .uint64,
        ]
        if let t = single[code] { return "|<>=".contains(order) ? t : nil }
        // '=' is native order, little-endian on every platform prunec runs on.
        if let t = multi[code], order == "<" || order == "=" { return t }
        return nil
    }

    /// The NumPy type string for `dtype`, or `nil` when NumPy has no such type (bfloat16).
    public static func npyName(_ dtype: DType) -> String? {
        switch dtype {
        case .bool: return "|b1"
        case .int8: return "|i1"
        case .uint8: return "|u1"
        case .float16: return "<f2"
        case .float: return "<f4"
        case .double: return "<f8"
        case .int16: return "<i2"
        case .int32: return "<i4"
        case .int64: return "<i8"
        case .uint16: return "<u2"
        case .uint32: return "<u4"
        case .uint64: return "<u8"
        default: return nil
        }
    }

    private static func npyName(_ dtype: DType) -> String { npyName(dtype) ?? "\(dtype)" }

    /// Swift's `Bool` must hold 0 or 1; NumPy booleans should, but a hand-made file may not.
    static func normalizeBools(_ a: NDArray) {
        let p = a.pointer(as: UInt8.self)
        for i in 0..<a.count where p[i] > 1 { p[i] = 1 }
    }

    /// The header bytes (magic through padding) for an array of `dtype` and `shape`.
    static func header(dtype: DType, shape: [Int], file: String, member: String? = nil) throws -> Data {
        guard let descr = npyName(dtype) else {
            throw TensorDataError(file: file, member: member, reason: "element type \(dtype) has no .npy equivalent")
        }
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dims), }"
        // Version 1.0 has a 2-byte length; the whole header (with the newline) is padded to 64 bytes.
        func padded(_ prefix: Int) -> Int { (prefix + dict.utf8.count + 1 + 63) / 64 * 64 }
        let v1 = padded(10) - 10 <= 65535
        let prefix = v1 ? 10 : 12
        let total = padded(prefix)
        dict += String(repeating: " ", count: total - prefix - dict.utf8.count - 1) + "\n"
        var out = Data(magic)
        let length = dict.utf8.count
        if v1 {
            out += [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)]
        } else {
            out += [2, 0] + (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) }
        }
        out += Data(dict.utf8)
        return out
    }

    /// The complete `.npy` image of `array`.
    public static func encode(_ array: NDArray, file: String, member: String? = nil) throws -> Data {
        var out = try header(dtype: array.dtype, shape: array.shape, file: file, member: member)
        out.append(Data(bytesNoCopy: array.rawPointer, count: array.byteCount, deallocator: .none))
        return out
    }

    /// Writes `array` as an `.npy` file, atomically (temporary file, then rename).
    public static func write(_ array: NDArray, to url: URL, displayName: String? = nil) throws {
        let file = displayName ?? url.relativePath
        let head = try header(dtype: array.dtype, shape: array.shape, file: file)
        do {
            try AtomicFile.write(to: url, displayName: file) { handle in
                try handle.write(contentsOf: head)
                try handle.write(contentsOf: Data(bytesNoCopy: array.rawPointer, count: array.byteCount, deallocator: .none))
            }
        } catch let e as AtomicFileError {
            throw TensorDataError(file: e.file, reason: "cannot write: \(e.reason)")
        }
    }
}

/// A value in an `.npy` header dictionary.
enum HeaderValue: Equatable {
    case string(String)
    case bool(Bool)
    case tuple([Int])
}

/// A parser for the Python dict literal in an `.npy` header, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
struct HeaderParser {
    struct Failure: Error { var reason: String }

    private let chars: [Character]
    private var i = 0

    init(_ text: String) { chars = Array(text) }

    mutating func parseDict() throws -> [String: HeaderValue] {
        skipSpace()
        try expect("{")
        var out: [String: HeaderValue] = [:]
        while true {
            skipSpace()
            if peek == "}" { i += 1; break }
            let key = try parseString()
            skipSpace()
            try expect(":")
            skipSpace()
            out[key] = try parseValue()
            skipSpace()
            if peek == "," { i += 1; continue }
            try expect("}")
            break
        }
        skipSpace()
        guard i == chars.count else { throw Failure(reason: "unexpected text after the dictionary") }
        return out
    }

    private var peek: Character? { i < chars.count ? chars[i] : nil }

    private mutating func skipSpace() {
        while let c = peek, c.isWhitespace { i += 1 }
    }

    private mutating func expect(_ c: Character) throws {
        guard peek == c else { throw Failure(reason: "expected '\(c)' at offset \(i)") }
        i += 1
    }

    private mutating func parseString() throws -> String {
        guard let q = peek, q == "'" || q == "\"" else { throw Failure(reason: "expected a quoted string at offset \(i)") }
        i += 1
        var s = ""
        while let c = peek, c != q {
            s.append(c)
            i += 1
        }
        try expect(q)
        return s
    }

    private mutating func parseValue() throws -> HeaderValue {
        switch peek {
        case "'", "\"": return .string(try parseString())
        case "(": return .tuple(try parseTuple())
        default:
            var word = ""
            while let c = peek, c.isLetter { word.append(c); i += 1 }
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            default: throw Failure(reason: "unexpected value at offset \(i - word.count)")
            }
        }
    }

    private mutating func parseTuple() throws -> [Int] {
        try expect("(")
        var dims: [Int] = []
        while true {
            skipSpace()
            if peek == ")" { i += 1; return dims }
            var digits = ""
            while let c = peek, c.isASCII, c.isNumber { digits.append(c); i += 1 }
            // Old NumPy on Windows wrote `3L`.
            if peek == "L" { i += 1 }
            guard let n = Int(digits) else { throw Failure(reason: "expected a dimension at offset \(i)") }
            dims.append(n)
            skipSpace()
            if peek == "," { i += 1; continue }
            try expect(")")
            return dims
        }
    }
}
