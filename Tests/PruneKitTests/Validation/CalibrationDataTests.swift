import Foundation
import PruneIR
import PruneRuntime
import Testing

@testable import PruneKit

/// `CalibrationData.load`: every set of an .npz or of a folder of test_data_set_N, checked against the inputs.
@Suite struct CalibrationDataTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prunekit-calib-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// `y = Relu(x)` with x float [1, 2].
    static func model() -> Model {
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 2])
        b.output(b.add(.relu, [x]))
        return b.model()
    }

    @Test func bertCalibrationHasEightSets() throws {
        let bert = try ModelImporter.load(contentsOf: Self.root.appendingPathComponent("examples/models/bert.onnx"))
        let url = Self.root.appendingPathComponent("examples/models/bert.calib.npz")
        var notes: [String] = []
        let sets = try CalibrationData.load(url, for: bert, note: { notes.append($0) })
        #expect(sets.count == 8)
        for set in sets {
            #expect(Set(set.keys) == ["input_ids", "attention_mask"])
            #expect(set["input_ids"]?.shape == [1, 16] && set["input_ids"]?.dtype == .int64)
            #expect(set["attention_mask"]?.shape == [1, 16])
        }
        #expect(notes.isEmpty, "\(notes)")
        // Set k of the result is the file's set k (set 0: the plain keys).
        let entries = try TensorData.load(url)
        let set3 = try #require(entries.first { $0.name == "set3.input_ids" })
        #expect(sets[3]["input_ids"]!.ints() == set3.array.ints())
        let plain = try #require(entries.first { $0.name == "input_ids" })
        #expect(sets[0]["input_ids"]!.ints() == plain.array.ints())
        #expect(sets[0]["input_ids"]!.ints() != sets[3]["input_ids"]!.ints())
    }

    @Test func numberedSetsAloneAndInPrefixedKeys() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("d.npz")
        try NPZ.write([
            ("set2.x", NDArray([Float(3), 4], shape: [1, 2])),
            ("set1.in.x", NDArray([Float(1), 2], shape: [1, 2])),
            ("out.y", NDArray([Float(0)], shape: [1])),
        ], to: url)
        var notes: [String] = []
        let sets = try CalibrationData.load(url, for: Self.model(), note: { notes.append($0) })
        #expect(sets.map { $0["x"]!.doubles() } == [[1, 2], [3, 4]])
        #expect(notes.count == 1 && notes[0].contains("out.y"), "\(notes)")
    }

    @Test func wrongTypeRankOrMissingInputNamesTheFileAndKey() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func load(_ arrays: [(String, NDArray)]) -> String {
            let url = dir.appendingPathComponent("bad.npz")
            do {
                try NPZ.write(arrays.map { (name: $0.0, array: $0.1) }, to: url)
                let relative = URL(fileURLWithPath: "bad.npz", relativeTo: URL(fileURLWithPath: dir.path, isDirectory: true))
                _ = try CalibrationData.load(relative, for: Self.model(), note: { _ in })
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let wrongType = load([("x", NDArray([Float(1), 2], shape: [1, 2])), ("set1.x", NDArray([Int64(1), 2], shape: [1, 2]))])
        #expect(wrongType.hasPrefix("bad.npz: ") && wrongType.contains("key 'set1.x'") && wrongType.contains("int64"), "\(wrongType)")
        let wrongRank = load([("in.x", NDArray([Float(1), 2], shape: [2]))])
        #expect(wrongRank.contains("key 'in.x'") && wrongRank.contains("rank 1"), "\(wrongRank)")
        let wrongDim = load([("x", NDArray([Float(1), 2, 3], shape: [1, 3]))])
        #expect(wrongDim.contains("key 'x'") && wrongDim.contains("dimension 1 must be 2"), "\(wrongDim)")
        let missing = load([("x", NDArray([Float(1), 2], shape: [1, 2])), ("set1.y", NDArray([Float(1), 2], shape: [1, 2]))])
        #expect(missing.hasPrefix("bad.npz: ") && missing.contains("missing input 'x'") && missing.contains("set 1"), "\(missing)")
    }

    /// `Relu(x)` and `Identity(z)`, x float [x, 2] and z int64 [z, 3] with the given leading dimensions.
    static func twoInputs(_ x: Dim, _ z: Dim) -> Model {
        let b = GraphBuilder()
        let xv = b.input("x", .float, [x, .known(2)])
        let zv = b.input("z", .int64, [z, .known(3)])
        b.output(b.add(.relu, [xv]), b.add(.identity, [zv]))
        return b.model()
    }

    /// Loads `arrays` (written as an .npz) for `model`, with the notes.
    static func samples(_ arrays: [(String, NDArray)], for model: Model) throws -> (CalibrationData.Samples, [String]) {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("calib.npz")
        try NPZ.write(arrays.map { (name: $0.0, array: $0.1) }, to: url)
        var notes: [String] = []
        let s = try CalibrationData.loadSamples(url, for: model, note: { notes.append($0) })
        return (s, notes)
    }

    @Test func rowsOfABatchAreSamplesWhenTheBatchIsSymbolic() throws {
        let x = NDArray((0..<6).map(Float.init), shape: [3, 2]), z = NDArray((0..<9).map(Int64.init), shape: [3, 3])
        let one = NDArray([Float(10), 11], shape: [1, 2]), oneZ = NDArray([Int64(20), 21, 22], shape: [1, 3])
        let (s, notes) = try Self.samples([("x", x), ("z", z), ("set1.x", one), ("set1.z", oneZ)],
                                          for: Self.twoInputs(.symbol("batch"), .symbol("batch")))
        // Rows in order, x and z split together; the next set keeps its place.
        #expect(s.samples.map { $0["x"]!.doubles() } == [[0, 1], [2, 3], [4, 5], [10, 11]])
        #expect(s.samples.map { $0["z"]!.ints() } == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [20, 21, 22]])
        #expect(s.samples.allSatisfy { $0["x"]!.shape == [1, 2] && $0["z"]!.shape == [1, 3] })
        #expect(s.fileSet == [0, 0, 0, 1] && s.fileSets == 2)
        #expect(notes.count == 1 && notes[0].hasSuffix("calib.npz: 1 set of 3 rows → 4 samples (each row of a batch is one calibration sample)"),
                "\(notes)")
        // An unknown leading dimension, or one fixed at 1, is a batch as well.
        let unknown = try Self.samples([("x", x), ("z", z)], for: Self.twoInputs(.unknown, .known(1))).0
        #expect(unknown.samples.count == 3 && unknown.fileSet == [0, 0, 0])
        let fixedOne = try Self.samples([("x", x)], for: Self.model()).0
        #expect(fixedOne.samples.map { $0["x"]!.doubles() } == [[0, 1], [2, 3], [4, 5]])
    }

    @Test func batchesStayWholeWhenTheModelFixesThemOrTheLeadingSizesDiffer() throws {
        let x = NDArray((0..<6).map(Float.init), shape: [3, 2]), z = NDArray((0..<9).map(Int64.init), shape: [3, 3])
        // A batch fixed at 3: the model needs the three rows together.
        let (fixed, notes) = try Self.samples([("x", x), ("z", z)], for: Self.twoInputs(.known(3), .known(3)))
        #expect(fixed.samples.count == 1 && fixed.samples[0]["x"]!.shape == [3, 2] && notes.isEmpty, "\(notes)")
        // Leading sizes that differ (an input without a batch axis): left as it is.
        let z2 = NDArray((0..<6).map(Int64.init), shape: [2, 3])
        let mixed = try Self.samples([("x", x), ("z", z2)], for: Self.twoInputs(.symbol("b"), .symbol("n"))).0
        #expect(mixed.samples.count == 1 && mixed.samples[0]["z"]!.shape == [2, 3])
        // Different symbols, or a leading symbol named like a sequence (time-major), are not a batch.
        #expect(try Self.samples([("x", x), ("z", z)], for: Self.twoInputs(.symbol("b"), .symbol("n"))).0.samples.count == 1)
        #expect(try Self.samples([("x", x), ("z", z)], for: Self.twoInputs(.symbol("seq_len"), .symbol("seq_len"))).0.samples.count == 1)
        // A fixed batch of 3 still rejects a batch of 2.
        #expect(throws: TensorDataError.self) {
            _ = try Self.samples([("x", NDArray([Float](repeating: 0, count: 4), shape: [2, 2])), ("z", z2)],
                                 for: Self.twoInputs(.known(3), .known(3)))
        }
    }

    @Test func aHeldOutSplitThatWouldBeEmptyIsAnError() throws {
        #expect(try CalibrationData.heldOutCount(2, of: 8, pass: "depth") == 2)
        #expect(try CalibrationData.heldOutCount(2, of: 2, pass: "depth") == 1)
        #expect(try CalibrationData.heldOutCount(0, of: 1, pass: "depth") == 0)
        do {
            _ = try CalibrationData.heldOutCount(2, of: 1, pass: "depth")
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("holdout=2") && "\(error)".contains("1 sample") && "\(error)".contains("holdout=0"), "\(error)")
        }
    }

    @Test func foldersOfTestDataSets() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (n, values) in [(0, [Float(1), 2]), (1, [Float(5), 6]), (10, [Float(7), 8])] {
            let set = dir.appendingPathComponent("test_data_set_\(n)")
            try FileManager.default.createDirectory(at: set, withIntermediateDirectories: true)
            try Self.tensorProto(name: "x", dims: [1, 2], floats: values).write(to: set.appendingPathComponent("input_0.pb"))
        }
        let sets = try CalibrationData.load(dir, for: Self.model())
        #expect(sets.map { $0["x"]!.doubles() } == [[1, 2], [5, 6], [7, 8]])
        // One test_data_set folder is one set.
        let one = try CalibrationData.load(dir.appendingPathComponent("test_data_set_1"), for: Self.model())
        #expect(one.map { $0["x"]!.doubles() } == [[5, 6]])
    }

    /// An ONNX TensorProto, encoded by hand (this target does not link the generated bindings):
    /// dims (1), data_type (2) = FLOAT, name (8), raw_data (9).
    static func tensorProto(name: String, dims: [Int], floats: [Float]) -> Data {
        func varint(_ v: UInt64) -> [UInt8] {
            var v = v, out: [UInt8] = []
            while v >= 0x80 {
                out.append(UInt8(v & 0x7F) | 0x80)
                v >>= 7
            }
            return out + [UInt8(v)]
        }
        var bytes: [UInt8] = []
        for d in dims { bytes += [0x08] + varint(UInt64(d)) }
        bytes += [0x10, 0x01]
        bytes += [0x42] + varint(UInt64(name.utf8.count)) + Array(name.utf8)
        let raw = floats.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        bytes += [0x4A] + varint(UInt64(raw.count)) + raw
        return Data(bytes)
    }
}
