import Foundation
import ONNXProto
import PruneTestSupport
import Testing

@testable import PruneIR

/// Element types, tensor storage forms and conversions, and typed-field import.
@Suite struct TensorTests {
    // MARK: - Helpers

    /// A `TensorProto` with name, type and dims set and no data.
    private static func tensorProto(_ name: String, _ dtype: DType, _ dims: [Int64]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = dtype.rawValue
        t.dims = dims
        return t
    }

    /// Imports a minimal model whose graph holds `tensors` as initializers, and returns them by name.
    private static func importInitializers(_ tensors: [Onnx_TensorProto]) throws -> [String: Tensor] {
        var g = Onnx_GraphProto()
        g.name = "tensors"
        g.initializer = tensors
        var m = Onnx_ModelProto(irVersion: 8, opset: 17)
        m.graph = g
        let model = try ModelImporter.load(serialized: try m.serializedBytes(), file: "tensors.onnx", baseDirectory: nil)
        var out: [String: Tensor] = [:]
        for v in model.graph.initializers {
            out[v.name] = v.initializer
        }
        return out
    }

    private static func importInitializer(_ tensor: Onnx_TensorProto) throws -> Tensor {
        try #require(try importInitializers([tensor])[tensor.name])
    }

    private static func isFieldsStorage(_ t: Tensor) -> Bool {
        if case .fields = t.storage { return true }
        return false
    }

    private static func littleEndian<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    }

    // MARK: - DType

    @Test func dtypeNumbersFollowOnnx() {
        #expect(DType(onnx: 0) == nil)
        #expect(DType(onnx: 1) == .float)
        #expect(DType(onnx: 7) == .int64)
        #expect(DType(onnx: 10) == .float16)
        #expect(DType(onnx: 22) == .int4)
        #expect(DType(onnx: 26) == .int2)
        #expect(DType(onnx: 28) == .float6e3m2)
        #expect(DType(onnx: 29) == nil)
        #expect(DType(onnx: -1) == nil)
        #expect(DType.allCases.count == 28)
        #expect(DType.allCases.map(\.rawValue) == Array(1 ... 28))
        #expect(DType.float8e4m3fn.description == "float8e4m3fn")
        #expect(DType.bool.description == "bool")
    }

    @Test func dtypeBitWidths() {
        #expect(DType.float.bitWidth == 32)
        #expect(DType.double.bitWidth == 64)
        #expect(DType.float16.bitWidth == 16)
        #expect(DType.bfloat16.bitWidth == 16)
        #expect(DType.bool.bitWidth == 8)
        #expect(DType.complex64.bitWidth == 64)
        #expect(DType.complex128.bitWidth == 128)
        #expect(DType.float8e5m2.bitWidth == 8)
        #expect(DType.int4.bitWidth == 4)
        #expect(DType.uint4.bitWidth == 4)
        #expect(DType.float4e2m1.bitWidth == 4)
        #expect(DType.int2.bitWidth == 2)
        #expect(DType.uint2.bitWidth == 2)
        #expect(DType.float6e2m3.bitWidth == 6)
        #expect(DType.string.bitWidth == 0)
    }

    @Test func dtypeByteCounts() {
        #expect(DType.float.byteCount(elements: 3) == 12)
        #expect(DType.int64.byteCount(elements: 0) == 0)
        #expect(DType.bool.byteCount(elements: 3) == 3)
        #expect(DType.float16.byteCount(elements: 5) == 10)
        #expect(DType.complex128.byteCount(elements: 2) == 32)
        // Sub-byte types round up to whole bytes.
        #expect(DType.int4.byteCount(elements: 3) == 2)
        #expect(DType.int4.byteCount(elements: 4) == 2)
        #expect(DType.uint4.byteCount(elements: 1) == 1)
        #expect(DType.float4e2m1.byteCount(elements: 7) == 4)
        #expect(DType.int2.byteCount(elements: 5) == 2)
        #expect(DType.uint2.byteCount(elements: 4) == 1)
        #expect(DType.int2.byteCount(elements: 9) == 3)
        #expect(DType.float6e2m3.byteCount(elements: 4) == 3)
        #expect(DType.float6e3m2.byteCount(elements: 5) == 4)
        // Strings have no fixed size.
        #expect(DType.string.byteCount(elements: 5) == 0)
        #expect(DType.float.byteCount(elements: -1) == nil)
    }

    @Test func dtypeByteCountOverflowReturnsNil() {
        #expect(DType.float.byteCount(elements: Int.max) == nil)
        #expect(DType.int64.byteCount(elements: Int.max / 8 + 1) == nil)
        #expect(DType.bool.byteCount(elements: Int.max) == nil)
        #expect(DType.int4.byteCount(elements: Int.max) == nil)
        #expect(DType.int2.byteCount(elements: Int.max) == nil)
        #expect(DType.complex128.byteCount(elements: Int.max / 100) == nil)
        // The largest counts that fit.
        #expect(DType.int64.byteCount(elements: Int.max / 64) == (Int.max / 64) * 8)
        #expect(DType.bool.byteCount(elements: Int.max / 8) == Int.max / 8)
    }

    /// `count * bitWidth` fits in `Int` but rounding up to whole bytes (`bits + 7`) overflows for
    /// sub-byte types; the importer reaches this with untrusted dims such as `int4[2^61 - 1]`.
    @Test func subByteByteCountRoundingDoesNotTrap() {
        // 2^61 - 1 int4 elements are 2^63 - 4 bits: 2^60 bytes once rounded up, without overflow.
        #expect(DType.int4.byteCount(elements: Int.max / 4) == 1 << 60)
        #expect(DType.int2.byteCount(elements: Int.max / 2) == 1 << 60)
    }

    // MARK: - Tensors built in code

    @Test func floatTensorRoundTrips() throws {
        let values: [Float] = [0, -1.5, 3.25, .greatestFiniteMagnitude, -0.0, 1e-30]
        let t = Tensor(name: "f", floats: values, shape: [2, 3])
        #expect(t.dtype == .float)
        #expect(t.shape == [2, 3])
        #expect(t.elementCount == 6)
        #expect(t.byteCount == 24)
        #expect(t.rawBytes.count == 24)
        #expect(try t.floats() == values)
        #expect(Array(t.rawBytes.prefix(8)) == [0, 0, 0, 0, 0, 0, 0xC0, 0xBF], "little-endian IEEE 754")
        #expect(t.external == nil)
        #expect(throws: IRError.unsupportedConversion(tensor: "f", from: .float, to: .int64)) { try t.int64s() }
    }

    @Test func int64TensorRoundTrips() throws {
        let values: [Int64] = [Int64.min, -1, 0, 1, Int64.max]
        let t = Tensor(name: "i", int64s: values, shape: [5])
        #expect(t.dtype == .int64)
        #expect(t.byteCount == 40)
        #expect(try t.int64s() == values)
        #expect(try Tensor(int64s: [-3, 4], shape: [2]).floats() == [-3, 4])
        let i32 = Tensor(int32s: [-7, Int32.max], shape: [2])
        #expect(i32.dtype == .int32 && i32.byteCount == 8)
        #expect(try i32.int64s() == [-7, Int64(Int32.max)])
    }

    @Test func scalars() throws {
        let f = Tensor.scalar(Float(2.5), name: "s")
        #expect(f.shape == [] && f.elementCount == 1 && f.byteCount == 4 && f.name == "s")
        #expect(try f.floats() == [2.5])
        let i = Tensor.scalar(Int64(-9))
        #expect(i.dtype == .int64 && i.shape == [] && i.elementCount == 1)
        #expect(try i.int64s() == [-9])
        let empty = Tensor(floats: [], shape: [0, 3])
        #expect(empty.elementCount == 0 && empty.byteCount == 0)
        #expect(try empty.floats() == [])
    }

    @Test func packedBytesForOtherTypes() throws {
        let h = Tensor(dtype: .float16, shape: [2], bytes: Data(Self.littleEndian([Float16(1).bitPattern, Float16(-0.5).bitPattern])))
        #expect(try h.floats() == [1, -0.5])
        let bf = Tensor(dtype: .bfloat16, shape: [2], bytes: Data(Self.littleEndian([UInt16(0x3F80), UInt16(0xC040)])))
        #expect(try bf.floats() == [1, -3])
        let d = Tensor(dtype: .double, shape: [1], bytes: Data(Self.littleEndian([Double(0.25).bitPattern])))
        #expect(try d.floats() == [0.25])
        let u8 = Tensor(dtype: .uint8, shape: [3], bytes: Data([0, 128, 255]))
        #expect(try u8.int64s() == [0, 128, 255])
        #expect(try u8.floats() == [0, 128, 255])
        let i8 = Tensor(dtype: .int8, shape: [3], bytes: Data([0xFF, 0x80, 0x7F]))
        #expect(try i8.int64s() == [-1, -128, 127])
        let u32 = Tensor(dtype: .uint32, shape: [1], bytes: Data(Self.littleEndian([UInt32.max])))
        #expect(try u32.int64s() == [Int64(UInt32.max)])
        let b = Tensor(dtype: .bool, shape: [2], bytes: Data([1, 0]))
        #expect(try b.int64s() == [1, 0])
        let i4 = Tensor(dtype: .int4, shape: [3], bytes: Data([0x21, 0x03]))
        #expect(i4.byteCount == 2)
        #expect(throws: IRError.unsupportedConversion(tensor: "", from: .int4, to: .int64)) { try i4.int64s() }
        let s = Tensor(strings: ["a"], shape: [1])
        #expect(throws: IRError.unsupportedConversion(tensor: "", from: .string, to: .int64)) { try s.floats() }
    }

    // MARK: - Typed fields imported

    @Test func floatDataImportsAsFields() throws {
        var p = Self.tensorProto("f", .float, [3])
        p.floatData = [1.5, -2, 3.25]
        let t = try Self.importInitializer(p)
        #expect(Self.isFieldsStorage(t))
        #expect(t.rawBytes == Tensor(floats: [1.5, -2, 3.25], shape: [3]).rawBytes)
        #expect(try t.floats() == [1.5, -2, 3.25])
        #expect(t.byteCount == 12)
    }

    @Test func int32DataForNarrowIntegerTypes() throws {
        var i8 = Self.tensorProto("i8", .int8, [4])
        i8.int32Data = [-1, 127, -128, 0]
        var u8 = Self.tensorProto("u8", .uint8, [3])
        u8.int32Data = [0, 200, 255]
        var i16 = Self.tensorProto("i16", .int16, [2])
        i16.int32Data = [-2, 300]
        var u16 = Self.tensorProto("u16", .uint16, [1])
        u16.int32Data = [65535]
        var i32 = Self.tensorProto("i32", .int32, [2])
        i32.int32Data = [-7, 1 << 30]
        var b = Self.tensorProto("b", .bool, [3])
        b.int32Data = [1, 0, 1]
        let ts = try Self.importInitializers([i8, u8, i16, u16, i32, b])

        let ti8 = try #require(ts["i8"])
        #expect(Self.isFieldsStorage(ti8))
        #expect(Array(ti8.rawBytes) == [0xFF, 0x7F, 0x80, 0x00])
        #expect(try ti8.int64s() == [-1, 127, -128, 0])

        let tu8 = try #require(ts["u8"])
        #expect(Array(tu8.rawBytes) == [0, 200, 255])
        #expect(try tu8.int64s() == [0, 200, 255])

        let ti16 = try #require(ts["i16"])
        #expect(Array(ti16.rawBytes) == [0xFE, 0xFF, 0x2C, 0x01])
        #expect(try ti16.int64s() == [-2, 300])

        let tu16 = try #require(ts["u16"])
        #expect(Array(tu16.rawBytes) == [0xFF, 0xFF])
        #expect(try tu16.int64s() == [65535])

        let ti32 = try #require(ts["i32"])
        #expect(Array(ti32.rawBytes) == Self.littleEndian([Int32(-7), Int32(1 << 30)]))
        #expect(try ti32.int64s() == [-7, 1 << 30])

        let tb = try #require(ts["b"])
        #expect(Array(tb.rawBytes) == [1, 0, 1])
        #expect(try tb.int64s() == [1, 0, 1])
    }

    @Test func float16InInt32DataConvertsViaFloats() throws {
        let values: [Float16] = [1, -2.5, 0.5, 65504]
        var p = Self.tensorProto("h", .float16, [2, 2])
        p.int32Data = values.map { Int32($0.bitPattern) }
        let t = try Self.importInitializer(p)
        #expect(Self.isFieldsStorage(t))
        #expect(Array(t.rawBytes) == [0x00, 0x3C, 0x00, 0xC1, 0x00, 0x38, 0xFF, 0x7B])
        #expect(try t.floats() == [1, -2.5, 0.5, 65504])
        #expect(throws: IRError.unsupportedConversion(tensor: "h", from: .float16, to: .int64)) { try t.int64s() }

        var bf = Self.tensorProto("bf", .bfloat16, [2])
        bf.int32Data = [0x3F80, 0xC040]
        #expect(try Self.importInitializer(bf).floats() == [1, -3])
    }

    @Test func int64AndUInt64Data() throws {
        var i64 = Self.tensorProto("i64", .int64, [3])
        i64.int64Data = [Int64.min, 0, 42]
        var u32 = Self.tensorProto("u32", .uint32, [3])
        u32.uint64Data = [0, 4_000_000_000, 7]
        var u64 = Self.tensorProto("u64", .uint64, [2])
        u64.uint64Data = [UInt64.max, 5]
        let ts = try Self.importInitializers([i64, u32, u64])

        let ti64 = try #require(ts["i64"])
        #expect(ti64.rawBytes == Tensor(int64s: [Int64.min, 0, 42], shape: [3]).rawBytes)
        #expect(try ti64.int64s() == [Int64.min, 0, 42])

        let tu32 = try #require(ts["u32"])
        #expect(tu32.rawBytes.count == 12, "uint32 packs to 4 bytes an element")
        #expect(Array(tu32.rawBytes) == Self.littleEndian([UInt32(0), 4_000_000_000, 7]))
        #expect(try tu32.int64s() == [0, 4_000_000_000, 7])

        let tu64 = try #require(ts["u64"])
        #expect(Array(tu64.rawBytes) == Self.littleEndian([UInt64.max, 5]))
        #expect(try tu64.int64s() == [-1, 5])
    }

    @Test func doubleData() throws {
        var p = Self.tensorProto("d", .double, [2])
        p.doubleData = [0.1, -3]
        let t = try Self.importInitializer(p)
        #expect(Array(t.rawBytes) == Self.littleEndian([Double(0.1).bitPattern, Double(-3).bitPattern]))
        #expect(try t.floats() == [Float(0.1), -3])
    }

    @Test func subByteTypesInInt32Data() throws {
        // int4: two elements per entry, low nibble first; 3 elements take 2 entries.
        var i4 = Self.tensorProto("i4", .int4, [3])
        i4.int32Data = [0x21, 0x03]
        // uint2: four elements per entry; 5 elements take 2 entries.
        var u2 = Self.tensorProto("u2", .uint2, [5])
        u2.int32Data = [0b11_10_01_00, 0b01]
        let ts = try Self.importInitializers([i4, u2])
        #expect(Array(try #require(ts["i4"]).rawBytes) == [0x21, 0x03])
        #expect(Array(try #require(ts["u2"]).rawBytes) == [0xE4, 0x01])
    }

    /// ONNX stores each float6 element in its own `int32_data` entry (bits 0-5) and packs
    /// `raw_data` as a 6-bit LSB-first bitstream (4 elements in 3 bytes).
    @Test func float6InInt32DataIsOneEntryPerElement() throws {
        var p = Self.tensorProto("f6", .float6e2m3, [4])
        p.int32Data = [0x01, 0x02, 0x03, 0x3F]
        let t = try Self.importInitializer(p)
        // byte0 = x0 | (x1 & 3) << 6; byte1 = x1 >> 2 | (x2 & 0xF) << 4; byte2 = x2 >> 4 | x3 << 2
        #expect(Array(t.rawBytes) == [0x81, 0x30, 0xFC])
    }

    @Test func fieldCountMismatchIsAnImportError() throws {
        var p = Self.tensorProto("f", .float, [3])
        p.floatData = [1, 2]
        #expect(throws: ONNXImportError.tensorData(file: "tensors.onnx", tensor: "f", reason: "float_data holds 2 values, float[3] needs 3")) {
            _ = try Self.importInitializer(p)
        }
        var u = Self.tensorProto("u", .uint32, [2])
        u.int32Data = [1, 2]
        #expect(throws: ONNXImportError.tensorData(file: "tensors.onnx", tensor: "u", reason: "uint64_data holds 0 values, uint32[2] needs 2")) {
            _ = try Self.importInitializer(u)
        }
        var r = Self.tensorProto("r", .float, [2])
        r.rawData = Data([1, 2, 3])
        #expect(throws: ONNXImportError.tensorData(file: "tensors.onnx", tensor: "r", reason: "raw_data holds 3 bytes, float[2] needs 8")) {
            _ = try Self.importInitializer(r)
        }
    }

    @Test func typedFieldsExportBackUnchanged() throws {
        var p = Self.tensorProto("f", .float, [2])
        p.floatData = [1, 2]
        p.docString = "kept"
        let t = try Self.importInitializer(p)
        #expect(t.extras.docString == "kept")
        let out = ModelExporter.inlineTensorProto(t)
        #expect(out == p, "typed fields and unmodelled fields are written back as imported")
    }

    // MARK: - Equality

    @Test func equalityIgnoresTheStorageForm() throws {
        var fields = Self.tensorProto("w", .float, [2, 2])
        fields.floatData = [1, 2, 3, 4]
        var raw = Self.tensorProto("w", .float, [2, 2])
        raw.rawData = Tensor(floats: [1, 2, 3, 4], shape: [4]).rawBytes
        let fromFields = try Self.importInitializer(fields)
        let fromRaw = try Self.importInitializer(raw)
        let built = Tensor(name: "w", floats: [1, 2, 3, 4], shape: [2, 2])
        #expect(Self.isFieldsStorage(fromFields))
        #expect(!Self.isFieldsStorage(fromRaw))
        #expect(fromFields == fromRaw)
        #expect(fromFields == built)
        #expect(fromRaw == built)

        #expect(built != Tensor(name: "w", floats: [1, 2, 3, 5], shape: [2, 2]), "data differs")
        #expect(built != Tensor(name: "v", floats: [1, 2, 3, 4], shape: [2, 2]), "name differs")
        #expect(built != Tensor(name: "w", floats: [1, 2, 3, 4], shape: [4]), "shape differs")
        #expect(built != Tensor(name: "w", dtype: .int32, shape: [2, 2], bytes: built.rawBytes), "type differs")

        var h = Self.tensorProto("h", .float16, [1])
        h.int32Data = [Int32(Float16(1).bitPattern)]
        let builtH = Tensor(name: "h", dtype: .float16, shape: [1], bytes: Data([0x00, 0x3C]))
        #expect(try Self.importInitializer(h) == builtH)
    }

    // MARK: - Strings

    @Test func stringTensorRoundTripsThroughExportAndImport() throws {
        let strings = ["alpha", "", "héllo wörld", "🙂"]
        let b = GraphBuilder(name: "s")
        let x = b.input("x", .int64, [2])
        let table = b.initializer("table", Tensor(strings: strings, shape: [2, 2]))
        b.output(b.add(.gather, [table, x], name: "lookup"))
        let original = try #require(table.initializer)
        #expect(original.dtype == .string)
        #expect(original.stringElements.map { String(decoding: $0, as: UTF8.self) } == strings)
        #expect(original.byteCount == strings.reduce(0) { $0 + $1.utf8.count })
        #expect(original.rawBytes.isEmpty)

        let bytes = try ModelExporter.serialize(b.model())
        let proto = try Onnx_ModelProto(serializedBytes: bytes)
        #expect(proto.graph.initializer[0].stringData.map { String(decoding: $0, as: UTF8.self) } == strings)
        #expect(proto.graph.initializer[0].dataType == DType.string.rawValue)
        #expect(!proto.graph.initializer[0].hasRawData)

        let m = try ModelImporter.load(serialized: bytes, file: "s.onnx", baseDirectory: nil)
        let t = try #require(m.graph.value(named: "table")?.initializer)
        #expect(t == original)
        #expect(t.shape == [2, 2])
        #expect(t.stringElements.map { String(decoding: $0, as: UTF8.self) } == strings)
        #expect(t != Tensor(name: "table", strings: ["alpha", "", "hello", "🙂"], shape: [2, 2]))
    }

    @Test func stringTensorStaysInlineWithExternalData() throws {
        let dir = try TestPaths.temporaryDirectory("tensor-strings")
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = GraphBuilder(name: "s")
        let long = String(repeating: "x", count: 5000)
        let table = b.initializer("table", Tensor(strings: [long, "b"], shape: [2]))
        b.output(b.add(.identity, [table], name: "id"))
        let url = dir.appendingPathComponent("s.onnx")
        try ModelExporter.write(b.model(), to: url, options: ExportOptions(externalData: .all(threshold: 0)))
        let proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: url))
        #expect(proto.graph.initializer[0].stringData.count == 2)
        #expect(!proto.graph.initializer[0].hasDataLocation)
        #expect(proto.graph.initializer[0].externalData.isEmpty)
        let m = try ModelImporter.load(contentsOf: url)
        #expect(m.graph.value(named: "table")?.initializer == table.initializer)
    }
}
