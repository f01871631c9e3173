import Foundation
import ONNXProto
import PruneIR
import PruneRuntime
import PruneTestSupport
import Testing

/// onnxruntime's contrib ops (`com.microsoft`) on the interpreter against onnxruntime itself.
///
/// The ONNX node tests do not cover these ops, so scripts/oracle/contrib_cases.py draws random
/// single-node models (shapes, attributes, optional inputs and outputs, mask forms, KV caches,
/// float16) from a seed, runs onnxruntime on random inputs, and writes each case as a node-test
/// folder. Every case must match to the tolerance the script records (rtol 1e-4 / atol 1e-5 for
/// float32, 2e-3 for float16); an expected NaN marks a value onnxruntime leaves undefined.
/// `PRUNEC_CONTRIB_SEED` draws other cases; `PRUNEC_CONTRIB_PER_OP` sets how many per op.
@Suite struct ContribOpsTests {
    static var python: String? {
        let p = ProcessInfo.processInfo.environment["PRUNEC_ORACLE_PYTHON"]
            ?? TestPaths.repoRoot.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: p) ? p : nil
    }

    static let ops = [
        "SkipLayerNormalization", "SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization",
        "SimplifiedLayerNormalization.ms", "EmbedLayerNormalization", "Gelu", "BiasGelu", "FastGelu", "QuickGelu",
        "BiasAdd", "RotaryEmbedding", "Attention", "MultiHeadAttention", "GroupQueryAttention",
    ]

    struct Case: Decodable {
        var name: String
        var op: String
        var dtype: String
        var rtol: Double
        var atol: Double
        var desc: String
    }

    @Test func randomizedCasesMatchOnnxruntime() throws {
        guard let python = ContribOpsTests.python else {
            Issue.record("oracle venv missing: set PRUNEC_ORACLE_PYTHON or run `make test` (scripts/setup-venv.sh)")
            return
        }
        let env = ProcessInfo.processInfo.environment
        let seed = env["PRUNEC_CONTRIB_SEED"] ?? "1"
        let perOp = env["PRUNEC_CONTRIB_PER_OP"] ?? "12"
        let dir = try TestPaths.temporaryDirectory("contrib")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = TestPaths.repoRoot.appendingPathComponent("scripts/oracle/contrib_cases.py").path
        let gen = try TestProcess.run(URL(fileURLWithPath: python), [script, dir.path, "--seed", seed, "--per-op", perOp], timeout: 600)
        try #require(gen.status == 0, "contrib_cases.py failed:\n\(gen.stderr)")
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: dir.appendingPathComponent("cases.json")))

        var passed: [String: Int] = [:]
        var worst: [String: (abs: Double, rel: Double)] = [:]
        var failures: [String] = []
        for c in cases {
            do {
                let errs = try ContribOpsTests.check(dir.appendingPathComponent(c.name), rtol: c.rtol, atol: c.atol)
                let key = "\(c.op) \(c.dtype)"
                let w = worst[key] ?? (0, 0)
                worst[key] = (max(w.abs, errs.abs), max(w.rel, errs.rel))
                passed[c.op, default: 0] += 1
            } catch {
                failures.append("\(c.name) [\(c.desc)]: \(error)")
            }
        }
        var report = "contrib ops (seed \(seed)): \(cases.count - failures.count) of \(cases.count) cases match onnxruntime\n"
        for (k, w) in worst.sorted(by: { $0.key < $1.key }) {
            report += "  \(k): max abs error \(String(format: "%.2e", w.abs)), max rel error \(String(format: "%.2e", w.rel))\n"
        }
        print(report, terminator: "")
        for f in failures { Issue.record(Comment(rawValue: f)) }
        for op in ContribOpsTests.ops {
            #expect(passed[op, default: 0] > 0, "no passing case for \(op)")
        }
    }

    struct Mismatch: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs one case folder and compares every output; returns the largest errors seen (over compared
    /// elements), throws on a mismatch.
    static func check(_ dir: URL, rtol: Double, atol: Double) throws -> (abs: Double, rel: Double) {
        let model = try ModelImporter.load(contentsOf: dir.appendingPathComponent("model.onnx"))
        let interpreter = try Interpreter(model: model)
        let set = dir.appendingPathComponent("test_data_set_0")
        var feeds: [String: NDArray] = [:]
        for (i, v) in model.graph.inputs.filter({ $0.initializer == nil }).enumerated() {
            feeds[v.name] = try NDArray(tensor: ModelImporter.loadTensor(contentsOf: set.appendingPathComponent("input_\(i).pb")))
        }
        let outputs = try interpreter.runOrdered(feeds)
        var worstAbs = 0.0, worstRel = 0.0
        for (i, got) in outputs.enumerated() {
            let want = try NDArray(tensor: ModelImporter.loadTensor(contentsOf: set.appendingPathComponent("output_\(i).pb")))
            let name = model.graph.outputs[i].name
            guard got.dtype == want.dtype, got.shape == want.shape else {
                throw Mismatch(description: "output \(name): \(got.dtype)\(got.shape), expected \(want.dtype)\(want.shape)")
            }
            var bad = 0, first = ""
            for j in 0..<got.count {
                let a = got.element(at: j), b = want.element(at: j)
                if b.isNaN { continue }  // undefined in onnxruntime
                let err = abs(a - b)
                if !(err <= atol + rtol * abs(b)) {
                    if bad == 0 { first = "element \(j): \(a) vs expected \(b)" }
                    bad += 1
                }
                if err.isFinite {
                    worstAbs = max(worstAbs, err)
                    worstRel = max(worstRel, err / max(abs(b), 1e-3))
                } else {
                    worstAbs = .infinity
                }
            }
            if bad > 0 { throw Mismatch(description: "output \(name): \(bad) of \(got.count) elements differ; first \(first)") }
        }
        // Shape inference must agree with what ran: the element type always, the shape where it is static.
        _ = ShapeInference().run(on: model)
        for (i, got) in outputs.enumerated() {
            let v = model.graph.outputs[i]
            if v.type?.elementType != got.dtype {
                throw Mismatch(description: "shape inference: output \(v.name) is \(String(describing: v.type)), ran as \(got.dtype)\(got.shape)")
            }
            if let dims = v.type?.shape?.dims, dims.allSatisfy({ $0.value != nil }), dims.map({ $0.value! }) != got.shape {
                throw Mismatch(description: "shape inference: output \(v.name) is \(dims), ran as \(got.shape)")
            }
        }
        return (worstAbs, worstRel)
    }

    // MARK: - Refusals: unsupported forms fail with the node's name and a reason, never a crash.

    /// A one-node com.microsoft model over float inputs of the given shapes.
    static func model(_ op: String, inputs: [(String, [Int64], Int32)], outputs: [String],
                      attributes: [Onnx_AttributeProto] = []) throws -> Model {
        var node = Onnx_NodeProto(op, inputs.map(\.0), outputs, name: "contrib_node")
        node.domain = "com.microsoft"
        node.attribute = attributes
        var graph = Onnx_GraphProto()
        graph.name = "g"
        graph.node = [node]
        graph.input = inputs.filter { !$0.0.isEmpty }.map { .tensor($0.0, elemType: $0.2, dims: $0.1.map { .value($0) }) }
        graph.output = outputs.filter { !$0.isEmpty }.map { .tensor($0, elemType: 1) }
        var proto = Onnx_ModelProto(irVersion: 10, opset: 17, graph: graph)
        var ms = Onnx_OperatorSetIdProto()
        ms.domain = "com.microsoft"
        ms.version = 1
        proto.opsetImport.append(ms)
        return try ModelImporter.load(proto: proto, file: "contrib.onnx", baseDirectory: nil)
    }

    static func intAttribute(_ name: String, _ value: Int64) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = value
        return a
    }

    @Test func unsupportedAttributeIsReportedWithTheNode() throws {
        let m = try ContribOpsTests.model(
            "GroupQueryAttention",
            inputs: [("q", [1, 2, 16], 1), ("k", [1, 2, 8], 1), ("v", [1, 2, 8], 1), ("", [], 1), ("", [], 1),
                     ("seqlens", [1], 6), ("total", [], 6)],
            outputs: ["y", "pk", "pv"],
            attributes: [ContribOpsTests.intAttribute("num_heads", 2), ContribOpsTests.intAttribute("kv_num_heads", 1), ContribOpsTests.intAttribute("smooth_softmax", 1)])
        #expect {
            _ = try Interpreter(model: m)
        } throws: { error in
            guard case RuntimeError.unsupportedNodes(let nodes) = error else { return false }
            return nodes.first?.node == "contrib_node" && nodes.first?.reason.contains("smooth_softmax") == true
        }
    }

    @Test func unsupportedMaskFormIsAKernelError() throws {
        let m = try ContribOpsTests.model(
            "Attention",
            inputs: [("x", [1, 2, 4], 1), ("w", [4, 12], 1), ("b", [12], 1), ("mask", [1, 1, 2, 2], 6)],
            outputs: ["y"], attributes: [ContribOpsTests.intAttribute("num_heads", 2)])
        let interpreter = try Interpreter(model: m)
        let feeds: [String: NDArray] = [
            "x": NDArray([Float](repeating: 0.5, count: 8), shape: [1, 2, 4]),
            "w": NDArray([Float](repeating: 0.1, count: 48), shape: [4, 12]),
            "b": NDArray([Float](repeating: 0, count: 12), shape: [12]),
            "mask": NDArray([Int32](repeating: 1, count: 4), shape: [1, 1, 2, 2]),
        ]
        #expect {
            _ = try interpreter.runOrdered(feeds)
        } throws: { error in
            guard case RuntimeError.kernel(let node, _, let reason) = error else { return false }
            return node == "contrib_node" && reason.contains("mask_index")
        }
    }
}
