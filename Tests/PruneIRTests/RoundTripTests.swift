import Foundation
import ONNXProto
import PruneTestSupport
import Testing

@testable import PruneIR

/// Import → export must give the same bytes, or at least the same canonical model.
@Suite struct RoundTripTests {
    @Test func exampleModelsRoundTripByteIdentical() throws {
        let models = TestPaths.exampleModels
        #expect(models.count >= 10, "examples/models should hold 5 models in 2 exports each")
        for url in models {
            let original = try Data(contentsOf: url)
            let model = try ModelImporter.load(contentsOf: url)
            try Verifier().verify(model)
            let written = try ModelExporter.serialize(model)
            #expect(written == original, "\(url.lastPathComponent) did not round-trip byte-identical")
        }
    }

    @Test func exampleModelsWriteAtomicallyToDisk() throws {
        let dir = try TestPaths.temporaryDirectory("rt")
        defer { try? FileManager.default.removeItem(at: dir) }
        for url in TestPaths.exampleModels {
            let model = try ModelImporter.load(contentsOf: url)
            let out = dir.appendingPathComponent(url.lastPathComponent)
            try ModelExporter.write(model, to: out)
            #expect(try Data(contentsOf: out) == Data(contentsOf: url))
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "temporary files left behind: \(leftovers)")
    }

    /// Every model of the official ONNX node tests imports, verifies and re-exports to the same
    /// bytes or the same canonical model.
    @Test func onnxNodeTestModelsRoundTrip() throws {
        guard let root = TestPaths.nodeTests else {
            Issue.record("ONNX node tests not found: run `make test` (or scripts/fetch-node-tests.sh) first")
            return
        }
        let dirs = try FileManager.default.contentsOfDirectory(at: root, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        var identical = 0
        var canonical = 0
        var failures: [String] = []
        for dir in dirs {
            let url = dir.appendingPathComponent("model.onnx")
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            do {
                let original = try Data(contentsOf: url)
                let model = try ModelImporter.load(contentsOf: url)
                try Verifier().verify(model)
                let written = try ModelExporter.serialize(model)
                if written == original {
                    identical += 1
                } else if try Onnx_ModelProto(serializedBytes: written) == Onnx_ModelProto(serializedBytes: original) {
                    canonical += 1
                } else {
                    failures.append("\(dir.lastPathComponent): exported model differs")
                }
            } catch {
                failures.append("\(dir.lastPathComponent): \(error)")
            }
        }
        print("node-test round trip: \(identical) byte-identical, \(canonical) canonical-equal, \(failures.count) failed")
        #expect(identical + canonical >= 1000, "expected the full node-test corpus, found \(identical + canonical)")
        #expect(failures.isEmpty, "\(failures.prefix(20).joined(separator: "\n"))")
    }

    @Test func unknownFieldsAreKept() throws {
        var m = Onnx_ModelProto(irVersion: 8, opset: 13)
        var g = Onnx_GraphProto()
        g.name = "g"
        var x = Onnx_ValueInfoProto()
        x.name = "x"
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1
        x.type.tensorType = t
        g.input = [x]
        var n = Onnx_NodeProto()
        n.opType = "Relu"
        n.input = ["x"]
        n.output = ["y"]
        g.node = [n]
        var y = Onnx_ValueInfoProto()
        y.name = "y"
        g.output = [y]
        m.graph = g
        var bytes = try m.serializedBytes() as Data
        // Field 99 (varint 7) is unknown to onnx.proto: it must survive.
        bytes.append(contentsOf: [0x98, 0x06, 0x07])
        let model = try ModelImporter.load(serialized: bytes, file: "mem.onnx", baseDirectory: nil)
        #expect(try ModelExporter.serialize(model) == bytes)
    }
}
