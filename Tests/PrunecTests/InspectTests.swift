import Foundation
import Testing

/// `prunec inspect` reports the numbers scripts rely on.
@Suite struct InspectTests {
    static func json(_ args: [String]) throws -> [String: Any] {
        let r = try CLI.run(["inspect"] + args + ["--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        return try #require(obj as? [String: Any])
    }

    @Test func resnetJSONHasTheContractKeysAndNumbers() throws {
        let d = try Self.json(["examples/models/resnet.onnx"])
        for key in ["ir_version", "opsets", "inputs", "outputs", "nodes", "ops", "params", "macs"] {
            #expect(d[key] != nil, "missing key \(key)")
        }
        #expect(d["ir_version"] as? Int == 8)
        #expect((d["opsets"] as? [String: Int])?["ai.onnx"] == 17)
        #expect(d["nodes"] as? Int == 45)
        #expect((d["ops"] as? [String: Int])?["Conv"] == 13)
        #expect((d["ops"] as? [String: Int])?["BatchNormalization"] == 13)
        // Matches examples/models/manifest.json and onnx's own shape inference (Conv + Gemm MACs).
        #expect(d["params"] as? Int == 102_138)
        #expect(d["macs"] as? Int == 21_938_816)
        let inputs = try #require(d["inputs"] as? [[String: Any]])
        #expect(inputs.first?["name"] as? String == "input")
        #expect(inputs.first?["shape"] as? [String] == ["1", "3", "32", "32"])
        let check = try #require(d["check"] as? [String: Any])
        #expect(check["status"] as? String == "passed")
        // Per-node MACs add up to the total.
        let perNode = try #require(d["per_node"] as? [[String: Any]])
        #expect(perNode.count == 45)
        #expect(perNode.compactMap { $0["macs"] as? Int }.reduce(0, +) == 21_938_816)
    }

    @Test func dynamicInputsNeedShapesForMACs() throws {
        let unbound = try Self.json(["examples/models/bert.onnx"])
        #expect(unbound["macs"] is NSNull, "MACs of a dynamic model are unknown until shapes are bound")
        let bound = try Self.json(["examples/models/bert.onnx", "--shape", "input_ids=1x16", "--shape", "attention_mask=1x16"])
        // 2 layers: Q,K,V,O (16·64·64 each), FFN up+down (2·16·64·128), attention (2·4·16·16·16), pooler (64·64).
        let perLayer = 4 * 16 * 64 * 64 + 2 * 16 * 64 * 128 + 2 * 4 * 16 * 16 * 16
        #expect(bound["macs"] as? Int == 2 * perLayer + 64 * 64)
    }

    @Test func dynamoExportsAreCountedTheSameAsLegacyOnes() throws {
        for name in ["resnet", "llama", "unet", "dit"] {
            let legacy = try Self.json(["examples/models/\(name).onnx"])
            let dynamo = try Self.json(["examples/models/\(name).dynamo.onnx"])
            #expect(legacy["macs"] as? Int != nil)
            #expect(legacy["macs"] as? Int == dynamo["macs"] as? Int, "\(name): exporters disagree on MACs")
            // libonnx (IR 8) cannot judge the IR 10 dynamo exports: reported as skipped, not failed.
            #expect((dynamo["check"] as? [String: Any])?["status"] as? String == "skipped")
        }
    }

    @Test func humanTableNamesTheEssentials() throws {
        let r = try CLI.run(["inspect", "examples/models/unet.onnx"])
        #expect(r.status == 0)
        for s in ["ir        8", "MACs      ", "libonnx   passed", "sample", "out_sample", "largest tensors"] {
            #expect(r.stdout.contains(s), "missing '\(s)' in:\n\(r.stdout)")
        }
    }

    @Test func badShapeOptionsAreUsageErrors() throws {
        let unknown = try CLI.run(["inspect", "examples/models/bert.onnx", "--shape", "nope=1x2"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("'nope'"))
        let malformed = try CLI.run(["inspect", "examples/models/bert.onnx", "--shape", "input_ids=1xq"])
        #expect(malformed.status == 64)
        #expect(malformed.stderr.contains("'q' is not a dimension"))
    }

    @Test func helpDescribesEveryOption() throws {
        let r = try CLI.run(["inspect", "--help"])
        #expect(r.status == 0)
        for s in ["--shape", "--json", "--all-nodes", "--no-check", "<model>"] { #expect(r.stdout.contains(s)) }
        let root = try CLI.run(["--help"])
        for s in ["compile", "inspect", "Exit codes"] { #expect(root.stdout.contains(s)) }
        let compile = try CLI.run(["compile", "--help"])
        for s in ["--output", "--external-data", "--data-file"] { #expect(compile.stdout.contains(s)) }
    }
}
