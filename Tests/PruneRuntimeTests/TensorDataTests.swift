import Foundation
import ONNXProto
import PruneIR
import PruneRuntime
import PruneTestSupport
import Testing

/// `.npy` / `.npz` reading and writing, and how data keys bind to a model's inputs.
@Suite struct TensorDataTests {
    /// One array of every element type NumPy and the runtime share, with awkward shapes.
    static func sampleArrays() -> [(name: String, array: NDArray)] {
        [
            ("f32", NDArray([1.5, -2, 3.25, .infinity, -0.0, 7] as [Float], shape: [2, 3])),
            ("f64", NDArray([1e-300, -2.5] as [Double], shape: [2])),
            ("f16", NDArray([0.5, -1, 65504] as [Float16], shape: [3, 1])),
            ("i8", NDArray([-128, 0, 127] as [Int8], shape: [3])),
            ("i16", NDArray([-32768, 5] as [Int16], shape: [1, 2])),
            ("i32", NDArray([Int32.min, Int32.max] as [Int32], shape: [2])),
            ("i64", NDArray([Int64.min, 0, Int64.max, 42] as [Int64], shape: [2, 1, 2])),
            ("u8", NDArray([0, 255] as [UInt8], shape: [2])),
            ("u16", NDArray([65535] as [UInt16], shape: [1])),
            ("u32", NDArray([UInt32.max, 1] as [UInt32], shape: [2])),
            ("u64", NDArray([UInt64.max] as [UInt64], shape: [1, 1])),
            ("b", NDArray([true, false, true] as [Bool], shape: [3])),
            ("scalar", NDArray(scalar: Float(3.5))),
            ("empty", NDArray([] as [Float], shape: [0, 4])),
        ]
    }

    static func same(_ a: NDArray, _ b: NDArray) -> Bool {
        a.dtype == b.dtype && a.shape == b.shape
            && memcmp(a.rawPointer, b.rawPointer, a.byteCount) == 0
    }

    static var python: String? {
        let p = ProcessInfo.processInfo.environment["PRUNEC_ORACLE_PYTHON"]
            ?? TestPaths.repoRoot.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: p) ? p : nil
    }

    /// Runs a Python snippet (with numpy) in `dir`.
    static func runPython(_ code: String, in dir: URL) throws {
        guard let python else {
            Issue.record("python venv missing: run `make test` (or set PRUNEC_ORACLE_PYTHON)")
            return
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", code]
        p.currentDirectoryURL = dir
        let err = Pipe()
        p.standardError = err
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "python failed: \(String(decoding: e, as: UTF8.self))")
    }

    /// Files in `dir` that start with a dot (left-over temporary files).
    static func hidden(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
    }

    @Test func npyRoundTripsEveryType() throws {
        let dir = try TestPaths.temporaryDirectory("npy")
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, a) in Self.sampleArrays() {
            let url = dir.appendingPathComponent("\(name).npy")
            try NPY.write(a, to: url)
            let b = try NPY.read(contentsOf: url)
            #expect(Self.same(a, b), "\(name): \(a.shape) \(a.dtype) came back as \(b.shape) \(b.dtype)")
            // The header is padded so the data starts on a 64-byte boundary, as NumPy does.
            let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int
            #expect((size - a.byteCount) % 64 == 0)
        }
        #expect(try Self.hidden(dir).isEmpty)
    }

    @Test func npzRoundTripKeepsOrderAndIsStored() throws {
        let dir = try TestPaths.temporaryDirectory("npz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("all.npz")
        let arrays = Self.sampleArrays()
        try NPZ.write(arrays, to: url)
        let back = try NPZ.read(contentsOf: url)
        #expect(back.map(\.name) == arrays.map(\.name))
        for (a, b) in zip(arrays, back) { #expect(Self.same(a.array, b.array), "\(a.name)") }
        // Overwriting an existing file replaces it and leaves no temporary file behind.
        try NPZ.write([("only", NDArray([1, 2] as [Int64], shape: [2]))], to: url)
        #expect(try NPZ.read(contentsOf: url).map(\.name) == ["only"])
        #expect(try Self.hidden(dir).isEmpty)
    }

    @Test func numpyReadsWhatWeWrite() throws {
        guard Self.python != nil else { return }
        let dir = try TestPaths.temporaryDirectory("npz-numpy")
        defer { try? FileManager.default.removeItem(at: dir) }
        try NPZ.write(Self.sampleArrays(), to: dir.appendingPathComponent("ours.npz"))
        try NPY.write(NDArray([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3]), to: dir.appendingPathComponent("ours.npy"))
        try Self.runPython("""
            import numpy as np
            z = np.load('ours.npz')
            assert z.files[:3] == ['f32', 'f64', 'f16'], z.files
            assert z['f32'].dtype == np.float32 and z['f32'].shape == (2, 3) and z['f32'][0, 2] == 3.25
            assert z['i64'].tolist() == [[[-2**63, 0]], [[2**63 - 1, 42]]]
            assert z['b'].dtype == np.bool_ and z['b'].tolist() == [True, False, True]
            assert z['scalar'].shape == () and z['empty'].shape == (0, 4)
            assert np.load('ours.npy').tolist() == [[1, 2, 3], [4, 5, 6]]
            """, in: dir)
    }

    @Test func readsNumpyFilesDeflatedAndAllHeaderVersions() throws {
        guard Self.python != nil else { return }
        let dir = try TestPaths.temporaryDirectory("npz-deflate")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.runPython("""
            import numpy as np
            a = np.arange(12, dtype=np.float32).reshape(3, 4) / 4
            ids = np.arange(1000, dtype=np.int64).reshape(10, 100) % 7
            np.savez_compressed('packed.npz', a=a, ids=ids, mask=ids > 3, h=a.astype(np.float16))
            for v in [(1, 0), (2, 0), (3, 0)]:
                with open('v%d.npy' % v[0], 'wb') as f:
                    np.lib.format.write_array(f, a, version=v)
            np.save('fortran.npy', np.asfortranarray(a))
            np.save('big_endian.npy', a.astype('>f4'))
            np.save('complex.npy', a.astype(np.complex64))
            """, in: dir)
        let packed = try NPZ.read(contentsOf: dir.appendingPathComponent("packed.npz"))
        #expect(packed.map(\.name) == ["a", "ids", "mask", "h"])
        let a = packed[0].array
        #expect(a.dtype == .float && a.shape == [3, 4])
        #expect(a.scalars(as: Float.self) == (0..<12).map { Float($0) / 4 })
        #expect(packed[1].array.scalars(as: Int64.self) == (0..<1000).map { Int64($0 % 7) })
        #expect(packed[2].array.scalars(as: Bool.self) == (0..<1000).map { $0 % 7 > 3 })
        #expect(packed[3].array.dtype == .float16 && packed[3].array.element(at: 5) == 1.25)
        for v in 1...3 {
            let b = try NPY.read(contentsOf: dir.appendingPathComponent("v\(v).npy"))
            #expect(Self.same(a, b), "version \(v).0")
        }
        let cases = [("fortran.npy", "fortran_order"), ("big_endian.npy", ">f4"), ("complex.npy", "<c8")]
        for (file, mention) in cases {
            let url = dir.appendingPathComponent(file)
            #expect {
                _ = try TensorData.load(url, displayName: file)
            } throws: { e in
                "\(e)".hasPrefix("\(file): ") && "\(e)".contains(mention)
            }
        }
    }

    @Test func readsTheExampleCalibrationFiles() throws {
        let entries = try TensorData.load(TestPaths.examples.appendingPathComponent("resnet.calib.npz"))
        #expect(entries.map(\.name) == ["input"] + (1...7).map { "set\($0).input" })
        for e in entries { #expect(e.array.dtype == .float && e.array.shape == [1, 3, 32, 32]) }
        let bert = try TensorData.load(TestPaths.examples.appendingPathComponent("bert.calib.npz"))
        let ids = try #require(bert.first { $0.name == "input_ids" }).array
        #expect(ids.dtype == .int64 && ids.shape == [1, 16] && ids.ints().allSatisfy { (0..<1000).contains($0) })
    }

    /// Writes `bytes` as `name` and expects loading it to fail with a message naming the file and
    /// mentioning every string of `mentions`.
    func expectMalformed(_ bytes: Data, name: String, mentions: [String], in dir: URL) throws {
        let url = dir.appendingPathComponent(name)
        try bytes.write(to: url)
        #expect {
            _ = try TensorData.load(url, displayName: name)
        } throws: { e in
            let text = "\(e)"
            guard e is TensorDataError, text.hasPrefix("\(name): ") else { return false }
            return mentions.allSatisfy { text.contains($0) }
        }
    }

    @Test func malformedFilesNameTheFileAndMember() throws {
        let dir = try TestPaths.temporaryDirectory("npy-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.npy")
        try NPY.write(NDArray([1, 2, 3, 4] as [Float], shape: [4]), to: good)
        let npy = try Data(contentsOf: good)
        let headerEnd = npy.count - 16

        try expectMalformed(Data("hello world, not numpy".utf8), name: "text.npy", mentions: ["magic"], in: dir)
        try expectMalformed(npy.prefix(npy.count - 3), name: "short.npy", mentions: ["truncated"], in: dir)
        try expectMalformed(npy.prefix(20), name: "header.npy", mentions: ["truncated header"], in: dir)
        try expectMalformed(npy + Data([0]), name: "long.npy", mentions: ["unexpected bytes"], in: dir)
        var v9 = npy
        v9[6] = 9
        try expectMalformed(v9, name: "v9.npy", mentions: ["version 9.0"], in: dir)
        func patched(_ from: String, _ to: String) -> Data {
            var d = npy
            if let r = d.range(of: Data(from.utf8), in: 0..<headerEnd) { d.replaceSubrange(r, with: Data(to.utf8)) }
            return d
        }
        try expectMalformed(patched("'shape': (4,)", "'shape': [4] "), name: "list.npy", mentions: ["malformed header"], in: dir)
        try expectMalformed(patched("'descr': '<f4'", "'descr': '<U1'"), name: "str.npy", mentions: ["unsupported dtype '<U1'"], in: dir)
        try expectMalformed(patched("False", "True "), name: "fortran.npy", mentions: ["fortran_order"], in: dir)

        try expectMalformed(Data("PK garbage".utf8), name: "junk.npz", mentions: ["not a valid .npz"], in: dir)
        // An .npz whose member is broken names the member.
        let zipped = dir.appendingPathComponent("src.npz")
        try NPZ.write([("x", NDArray([1, 2, 3, 4] as [Float], shape: [4])), ("y", NDArray([5] as [Int64], shape: [1]))], to: zipped)
        var zip = try Data(contentsOf: zipped)
        // Flip a data byte of the first member (stored, so its bytes appear verbatim): a CRC error.
        let marker = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59])
        let at = try #require(zip.range(of: marker)).lowerBound
        let dataStart = try #require(zip.range(of: Data("\n".utf8), in: at..<zip.count)).upperBound
        zip[dataStart + 2] ^= 0xFF
        try expectMalformed(zip, name: "crc.npz", mentions: ["member 'x.npy'", "CRC"], in: dir)
        // A member whose npy header is garbage.
        var badHeader = try Data(contentsOf: zipped)
        let second = try #require(badHeader.range(of: marker, in: (at + 1)..<badHeader.count)).lowerBound
        badHeader.replaceSubrange((second + 10)..<(second + 17), with: Data("{'desc'".utf8))
        try expectMalformed(badHeader, name: "member.npz", mentions: ["member 'y.npy'"], in: dir)
        try expectMalformed(Data(), name: "data.bin", mentions: ["unknown data file type"], in: dir)
        #expect(throws: TensorDataError(file: "nope.npz", reason: "no such file")) {
            _ = try TensorData.load(dir.appendingPathComponent("nope.npz"), displayName: "nope.npz")
        }
    }

    // MARK: Binding to a model

    /// x (float [2]) and ids (int64 [N]) pass through Identity nodes.
    static func identityModel() -> Model {
        let b = GraphBuilder(name: "pass")
        let x = b.input("x", .float, [2])
        let ids = b.input("ids", .int64, [.symbol("N")])
        b.output(b.add(.identity, [x], name: "idx"), b.add(.identity, [ids], name: "idids"))
        return b.model(opset: 17)
    }

    @Test func bindsPlainPrefixedAndSetKeys() throws {
        let model = Self.identityModel()
        let x = NDArray([1, 2] as [Float], shape: [2])
        let x3 = NDArray([3, 4] as [Float], shape: [2])
        let ids = NDArray([7, 8, 9] as [Int64], shape: [3])
        var notes: [String] = []
        let entries: [TensorData.Entry] = [("in.x", x), ("ids", ids), ("out.idx", x), ("set3.x", x3), ("set3.in.ids", ids)]
        let bound = try TensorData.bind(entries, to: model.graph, file: "d.npz") { notes.append($0) }
        #expect(Set(bound.keys) == ["x", "ids"])
        #expect(Self.same(try #require(bound["x"]), x))
        #expect(notes == ["d.npz: ignoring 3 keys that name no input of the model: out.idx, set3.x, set3.in.ids"])

        notes = []
        let set3 = try TensorData.bind(entries, to: model.graph, set: 3, file: "d.npz") { notes.append($0) }
        #expect(Self.same(try #require(set3["x"]), x3))
        #expect(Self.same(try #require(set3["ids"]), ids))
        #expect(notes.isEmpty)

        let out = try TensorData.run(try Interpreter(model: model), on: set3, file: "d.npz")
        #expect(Self.same(try #require(out[model.graph.outputs[0].name]), x3))
    }

    @Test func bindingErrorsNameTheInputAndTheFile() throws {
        let model = Self.identityModel()
        let x = NDArray([1, 2] as [Float], shape: [2])
        let ids = NDArray([7] as [Int64], shape: [1])
        let quiet: (String) -> Void = { _ in }
        func message(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            return "no error"
        }
        let missing = message { _ = try TensorData.bind([("x", x)], to: model.graph, file: "d.npz", note: quiet) }
        #expect(missing.hasPrefix("d.npz: missing input 'ids'"), "\(missing)")
        let twice = message { _ = try TensorData.bind([("x", x), ("in.x", x), ("ids", ids)], to: model.graph, file: "d.npz", note: quiet) }
        #expect(twice.contains("'x' is given twice"), "\(twice)")
        let noSet = message { _ = try TensorData.bind([("x", x), ("set1.x", x)], to: model.graph, set: 2, file: "d.npz", note: quiet) }
        #expect(noSet.contains("no keys prefixed 'set2.'") && noSet.contains("sets in the file: 1"), "\(noSet)")

        let interpreter = try Interpreter(model: model)
        let wrongType = message { _ = try TensorData.run(interpreter, on: ["x": x, "ids": NDArray([7] as [Int32], shape: [1])], file: "d.npz") }
        #expect(wrongType.hasPrefix("d.npz: input 'ids'") && wrongType.contains("int32"), "\(wrongType)")
        let wrongRank = message { _ = try TensorData.run(interpreter, on: ["x": x.reshaped([1, 2]), "ids": ids], file: "d.npz") }
        #expect(wrongRank.hasPrefix("d.npz: input 'x'") && wrongRank.contains("rank"), "\(wrongRank)")
    }

    @Test func readsOnnxTestDataFolders() throws {
        guard let root = TestPaths.nodeTests else { return }
        let set = root.appendingPathComponent("test_identity/test_data_set_0")
        guard FileManager.default.fileExists(atPath: set.path) else { return }
        let entries = try TensorData.load(set, inputNames: ["x"])
        #expect(entries.count == 1 && entries[0].name == "x" && entries[0].array.dtype == .float)

        // Unnamed TensorProtos bind by position.
        let dir = try TestPaths.temporaryDirectory("pb")
        defer { try? FileManager.default.removeItem(at: dir) }
        for (k, type) in [Int32(1), 7].enumerated() {
            var t = Onnx_TensorProto()
            t.dataType = type
            t.dims = [1]
            t.rawData = Data(count: type == 1 ? 4 : 8)
            let bytes: Data = try t.serializedBytes()
            try bytes.write(to: dir.appendingPathComponent("input_\(k).pb"))
        }
        let byOrder = try TensorData.load(dir, inputNames: ["x", "ids"])
        #expect(byOrder.map(\.name) == ["x", "ids"])
    }
}
