import Foundation
import ONNXProto
import PruneIR
import PruneTestSupport
import Testing

/// A model with more than 2 GB of weights in external data loads, inspects in little memory and
/// re-exports with its data intact.
@Suite struct ExternalDataTests {
    static let tensorBytes = 768 << 20  // three of these: 2.25 GiB
    static let markers: [(tensor: Int, offset: Int, value: UInt8)] = [(0, 0, 11), (1, 12345, 22), (2, (768 << 20) - 1, 33)]

    /// Writes big.onnx + big.bin (sparse, with a few marker bytes) into `dir`.
    static func makeBigModel(in dir: URL) throws {
        let data = dir.appendingPathComponent("big.bin")
        _ = FileManager.default.createFile(atPath: data.path, contents: nil)
        let h = try FileHandle(forWritingTo: data)
        try h.truncate(atOffset: UInt64(3 * tensorBytes))
        for m in markers {
            try h.seek(toOffset: UInt64(m.tensor * tensorBytes + m.offset))
            try h.write(contentsOf: Data([m.value]))
        }
        try h.close()

        var g = Onnx_GraphProto()
        g.name = "big"
        var outputs: [Onnx_ValueInfoProto] = []
        for i in 0 ..< 3 {
            var t = Onnx_TensorProto()
            t.name = "w\(i)"
            t.dataType = 1
            t.dims = [Int64(tensorBytes / 4)]
            t.dataLocation = .external
            t.externalData = Onnx_StringStringEntryProto.entries([("location", "big.bin"), ("offset", String(i * tensorBytes)), ("length", String(tensorBytes))])
            g.initializer.append(t)
            g.node.append(Onnx_NodeProto("Identity", ["w\(i)"], ["y\(i)"], name: "id\(i)"))
            outputs.append(.tensor("y\(i)", dims: [.value(Int64(tensorBytes / 4))]))
        }
        g.output = outputs
        var m = Onnx_ModelProto(irVersion: 8, opset: 17)
        m.graph = g
        try (m.serializedBytes() as Data).write(to: dir.appendingPathComponent("big.onnx"))
    }

    @Test func overTwoGigabytesLoadsInspectsAndReexports() throws {
        let dir = try CLI.temporaryDirectory("big")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.makeBigModel(in: dir)

        // inspect maps the weights and never reads them.
        let inspect = try CLI.run(["inspect", "big.onnx", "--report-peak-rss"], in: dir)
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let rssLine = inspect.stderr.split(separator: "\n").first { $0.hasPrefix("peak-rss-bytes: ") }
        let rss = rssLine.flatMap { Int($0.dropFirst("peak-rss-bytes: ".count)) } ?? .max
        print("inspect of a 2.25 GiB external-data model: peak RSS \(rss / 1_048_576) MiB")
        #expect(rss < 200 << 20, "peak RSS \(rss) bytes")

        // Round trip through the CLI into another folder: data goes to out.onnx.data, 4096-aligned.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("out"), withIntermediateDirectories: true)
        let rt = try CLI.run(["big.onnx", "-o", "out/big.onnx"], in: dir)
        #expect(rt.status == 0, "\(rt.stderr)")
        let written = try Onnx_ModelProto(serializedBytes: Data(contentsOf: dir.appendingPathComponent("out/big.onnx")))
        #expect(written.graph.initializer.count == 3)
        for t in written.graph.initializer {
            let entries = Dictionary(uniqueKeysWithValues: t.externalData.map { ($0.key, $0.value) })
            #expect(entries["location"] == "big.onnx.data")
            #expect((Int(entries["offset"] ?? "") ?? 1) % 4096 == 0)
            #expect(Int(entries["length"] ?? "") == Self.tensorBytes)
        }
        let reloaded = try ModelImporter.load(contentsOf: dir.appendingPathComponent("out/big.onnx"))
        for m in Self.markers {
            let bytes = try #require(reloaded.graph.initializers[m.tensor].initializer).rawBytes
            #expect(bytes.count == Self.tensorBytes)
            #expect(bytes[bytes.startIndex + m.offset] == m.value)
        }
        let dataSize = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("out/big.onnx.data").path)[.size] as? Int
        #expect((dataSize ?? 0) >= 3 * Self.tensorBytes)
    }
}
