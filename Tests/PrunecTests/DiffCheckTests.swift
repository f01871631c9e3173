import Foundation
import PruneIR
import PruneRuntime
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

/// `prunec diff` and `prunec check` end to end, on a 2-layer MLP and copies of it built here.
@Suite struct DiffCheckTests {
    /// x [1, 8] → fc1 = Gemm(W1 [h, 8], b1 [h], transB) → Relu → fc2 = MatMul(W2 [h, 4]) → Add(b2 [4]).
    ///
    /// The full model has h = 32; `hidden: 16` keeps the first 16 units (rows of W1 and b1, rows of
    /// W2), as pruning them would. `deadTail` zeroes W2's rows 16–31, so those units do not matter.
    /// Params: 32·8 + 32 + 32·4 + 4 = 420 at h = 32, 16·8 + 16 + 16·4 + 4 = 212 at h = 16.
    /// MACs: 8h + 4h = 384 at h = 32, 192 at h = 16.
    static func mlp(hidden: Int = 32, deadTail: Bool = false, extraLayer: Bool = false) -> Model {
        func w1(_ i: Int, _ j: Int) -> Float { Float(((i * 7 + j * 3) % 11) - 5) / 8 }
        func w2(_ i: Int, _ j: Int) -> Float { deadTail && i >= 16 ? 0 : Float(((i * 5 + j) % 9) - 4) / 6 }
        let b = GraphBuilder(name: "mlp")
        let x = b.input("x", .float, [1, 8])
        let W1 = b.initializer("W1", Tensor(floats: (0..<hidden).flatMap { i in (0..<8).map { w1(i, $0) } }, shape: [hidden, 8]))
        let b1 = b.initializer("b1", Tensor(floats: (0..<hidden).map { Float($0 % 3) / 10 }, shape: [hidden]))
        let W2 = b.initializer("W2", Tensor(floats: (0..<hidden).flatMap { i in (0..<4).map { w2(i, $0) } }, shape: [hidden, 4]))
        let b2 = b.initializer("b2", Tensor(floats: [0.1, -0.2, 0.3, 0], shape: [4]))
        let h = b.add(.relu, [b.add(.gemm, [x, W1, b1], attributes: [("transB", .int(1))], name: "fc1")], name: "act")
        var y = b.add(.add, [b.add(.matMul, [h, W2], name: "fc2"), b2], name: "out")
        if extraLayer {
            let W3 = b.initializer("W3", Tensor(floats: (0..<16).map { Float($0) / 16 }, shape: [4, 4]))
            y = b.add(.matMul, [y, W3], name: "fc3")
        }
        b.output(y)
        return b.model()
    }

    /// A folder with mlp.onnx (h 32), sliced.onnx (h 16), dead.onnx (h 32, units 16–31 unused), deeper.onnx.
    static func models() throws -> URL {
        let dir = try CLI.temporaryDirectory("diff-check")
        try ModelExporter.write(mlp(), to: dir.appendingPathComponent("mlp.onnx"))
        try ModelExporter.write(mlp(hidden: 16), to: dir.appendingPathComponent("sliced.onnx"))
        try ModelExporter.write(mlp(deadTail: true), to: dir.appendingPathComponent("dead.onnx"))
        try ModelExporter.write(mlp(hidden: 16, extraLayer: true), to: dir.appendingPathComponent("deeper.onnx"))
        return dir
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    static func size(_ url: URL) throws -> Int {
        try #require(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
    }

    // MARK: diff

    @Test func diffJSONGivesPerLayerAndTotalShrinkage() throws {
        let dir = try Self.models()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["diff", "mlp.onnx", "sliced.onnx", "--json"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let j = try Self.json(r.stdout)
        #expect(j["a"] as? String == "mlp.onnx" && j["b"] as? String == "sliced.onnx")
        let layers = try #require(j["layers"] as? [[String: Any]])
        #expect(layers.map { $0["name"] as? String } == ["fc1", "fc2"])
        #expect(layers.map { $0["op"] as? String } == ["Gemm", "MatMul"])
        #expect(layers.allSatisfy { $0["status"] as? String == "changed" })
        let fc1a = try #require(layers[0]["a"] as? [String: Any]), fc1b = try #require(layers[0]["b"] as? [String: Any])
        #expect(fc1a["weight_shape"] as? [Int] == [32, 8] && fc1b["weight_shape"] as? [Int] == [16, 8])
        #expect(fc1a["params"] as? Int == 288 && fc1b["params"] as? Int == 144)  // weight + bias
        #expect(fc1a["macs"] as? Int == 256 && fc1b["macs"] as? Int == 128)
        #expect(layers[0]["macs_reduction"] as? Double == 0.5 && layers[0]["params_reduction"] as? Double == 0.5)
        let fc2a = try #require(layers[1]["a"] as? [String: Any]), fc2b = try #require(layers[1]["b"] as? [String: Any])
        #expect(fc2a["weight_shape"] as? [Int] == [32, 4] && fc2b["weight_shape"] as? [Int] == [16, 4])
        #expect(fc2a["params"] as? Int == 128 && fc2b["params"] as? Int == 64)

        let totals = try #require(j["totals"] as? [String: [String: Any]])
        #expect(totals["params"]?["a"] as? Int == 420 && totals["params"]?["b"] as? Int == 212)
        #expect(abs((totals["params"]?["reduction"] as? Double ?? 0) - 208.0 / 420.0) < 1e-12)
        #expect(totals["macs"]?["a"] as? Int == 384 && totals["macs"]?["b"] as? Int == 192)
        #expect(totals["nodes"]?["a"] as? Int == 4 && totals["nodes"]?["b"] as? Int == 4)
        #expect(totals["file_bytes"]?["a"] as? Int == (try Self.size(dir.appendingPathComponent("mlp.onnx"))))
        #expect(totals["file_bytes"]?["b"] as? Int == (try Self.size(dir.appendingPathComponent("sliced.onnx"))))
        // Sorted keys: the text starts with "a".
        #expect(r.stdout.hasPrefix(#"{"a":"mlp.onnx","b":"sliced.onnx","layers":[{"a":{"macs":256,"params":288,"weight_shape":[32,8]}"#), "\(r.stdout)")
    }

    @Test func diffTextListsRemovedAndAddedLayers() throws {
        let dir = try Self.models()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["diff", "mlp.onnx", "deeper.onnx"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let fc1 = try #require(lines.first { $0.hasPrefix("fc1 ") })
        for s in ["Gemm", "[32,8] → [16,8]", "288 → 144", "256 → 128", "50.0%"] { #expect(fc1.contains(s), "\(fc1)") }
        let fc3 = try #require(lines.first { $0.hasPrefix("fc3 ") })
        #expect(fc3.contains("— → [4,4]") && fc3.hasSuffix("added"), "\(fc3)")
        let params = try #require(lines.first { $0.hasPrefix("params ") })
        #expect(params.contains("420") && params.contains("228"), "\(params)")  // 212 + 16 for W3
        #expect(r.stdout.contains("3 layers: 2 changed, 0 unchanged, 0 removed, 1 added"), "\(r.stdout)")

        let back = try Self.json(try CLI.run(["diff", "deeper.onnx", "mlp.onnx", "--json"], in: dir).stdout)
        let layers = try #require(back["layers"] as? [[String: Any]])
        let removed = try #require(layers.first { $0["name"] as? String == "fc3" })
        #expect(removed["status"] as? String == "removed" && removed["b"] is NSNull)
    }

    @Test func diffOfAMissingModelNamesIt() throws {
        let dir = try Self.models()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["diff", "mlp.onnx", "nope.onnx"], in: dir)
        #expect(r.status == 65 && r.stderr.contains("nope.onnx"), "\(r.stderr)")
    }

    // MARK: check

    @Test func checkJSONHasTheContractKeysAndNumbers() throws {
        let dir = try Self.models()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["check", "sliced.onnx", "--baseline", "mlp.onnx", "--min-param-reduction", "20%", "--max-params", "300",
                             "--max-macs", "192", "--format", "json", "--threads", "1"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let j = try Self.json(r.stdout)
        #expect(Set(j.keys).isSuperset(of: ["checks", "passed", "baseline", "model", "params", "macs", "drift"]))
        #expect(j["passed"] as? Bool == true && j["model"] as? String == "sliced.onnx" && j["baseline"] as? String == "mlp.onnx")
        let params = try #require(j["params"] as? [String: Any])
        #expect(params["baseline"] as? Int == 420 && params["model"] as? Int == 212)
        let macs = try #require(j["macs"] as? [String: Any])
        #expect(macs["baseline"] as? Int == 384 && macs["model"] as? Int == 192 && macs["reduction"] as? Double == 0.5)
        let checks = try #require(j["checks"] as? [[String: Any]])
        #expect(checks.map { $0["name"] as? String } == ["min-param-reduction", "max-params", "max-macs"])
        #expect(checks.allSatisfy { $0["passed"] as? Bool == true })
        #expect(abs((checks[0]["measured"] as? Double ?? 0) - 208.0 / 420.0) < 1e-12 && checks[0]["limit"] as? Double == 0.2)
        let drift = try #require(j["drift"] as? [[String: Any]])
        #expect(drift.count == 1 && drift[0]["name"] as? String == "out_out")
        for key in ["max_abs", "rel_l2", "cosine"] { #expect(drift[0][key] is Double, "\(key)") }
        #expect(r.stdout.hasPrefix(#"{"baseline":"mlp.onnx","checks":["#))
    }

    @Test func exitCodesFollowTheThresholds() throws {
        let dir = try Self.models()
        defer { try? FileManager.default.removeItem(at: dir) }
        func status(_ args: [String]) throws -> CLI.Result {
            try CLI.run(["check", "sliced.onnx", "--baseline", "mlp.onnx", "--threads", "1"] + args, in: dir)
        }
        // Report only: no thresholds, exit 0 whatever the numbers.
        let report = try status([])
        #expect(report.status == 0 && report.stdout.contains("no thresholds given"), "\(report.stdout)\(report.stderr)")
        #expect(try status(["--min-param-reduction", "0.2"]).status == 0)
        let failed = try status(["--min-param-reduction", "60%", "--max-params", "1000"])
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(failed.stdout.contains("FAIL") && failed.stdout.contains("FAILED (1 of 2 checks)"), "\(failed.stdout)")
        #expect(try status(["--max-macs", "191"]).status == 1)
        // Usage errors: 64.
        for bad in [["--min-param-reduction", "lots"], ["--min-param-reduction", "120%"], ["--format", "yaml"], ["--max-drift", "-1"]] {
            let r = try status(bad)
            #expect(r.status == 64, "\(bad): \(r.stderr)")
        }
        // A missing baseline is bad input (65), named.
        let missing = try CLI.run(["check", "sliced.onnx", "--baseline", "gone.onnx"], in: dir)
        #expect(missing.status == 65 && missing.stderr.contains("gone.onnx"), "\(missing.stderr)")
    }

    @Test func maxDriftComparesTheWorstRelativeL2() throws {
        let dir = try Self.models()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Against the baseline whose units 16–31 are dead, slicing them changes nothing.
        let same = try CLI.run(["check", "sliced.onnx", "--baseline", "dead.onnx", "--max-drift", "1e-6", "--format", "json"], in: dir)
        #expect(same.status == 0, "\(same.stdout)\(same.stderr)")
        let sameDrift = try #require((try Self.json(same.stdout)["drift"] as? [[String: Any]])?.first)
        #expect((sameDrift["rel_l2"] as? Double ?? 1) < 1e-6 && (sameDrift["cosine"] as? Double ?? 0) > 0.999999)
        // Against the full model those units did matter: drift above a tight limit fails, below a loose one passes.
        let drifted = try CLI.run(["check", "sliced.onnx", "--baseline", "mlp.onnx", "--max-drift", "1e-3", "--format", "json"], in: dir)
        #expect(drifted.status == 1, "\(drifted.stdout)\(drifted.stderr)")
        let check = try #require((try Self.json(drifted.stdout)["checks"] as? [[String: Any]])?.first)
        let measured = try #require(check["measured"] as? Double)
        #expect(check["name"] as? String == "max-drift" && check["passed"] as? Bool == false && measured > 1e-3)
        let loose = try CLI.run(["check", "sliced.onnx", "--baseline", "mlp.onnx", "--max-drift", String(measured * 1.01)], in: dir)
        #expect(loose.status == 0, "\(loose.stdout)\(loose.stderr)")
    }

    @Test func markdownIsATableAReviewerReads() throws {
        let dir = try Self.models()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["check", "sliced.onnx", "--baseline", "mlp.onnx", "--min-param-reduction", "20%", "--max-drift", "1e-3",
                             "--format", "markdown"], in: dir)
        #expect(r.status == 1)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("### ❌ prunec check: FAILED (1 of 2 checks)") == true, "\(r.stdout)")
        #expect(lines.contains("| params | 420 | 212 | −49.5% |"), "\(r.stdout)")
        #expect(lines.contains("| check | measured | limit | result |") && lines.contains("|---|---:|---:|:---:|"))
        #expect(lines.contains("| `min-param-reduction` | 49.5% | ≥ 20.0% | ✅ pass |"), "\(r.stdout)")
        #expect(lines.contains { $0.hasPrefix("| `max-drift` |") && $0.hasSuffix("| ≤ 0.001 | ❌ **fail** |") }, "\(r.stdout)")
        // Every table row has as many cells as its header.
        for line in lines where line.hasPrefix("|") {
            #expect(line.filter { $0 == "|" }.count == 5, "\(line)")
        }
    }

    @Test func junitHasOneTestcasePerCheckAndAFailureForEachThatFailed() throws {
        let dir = try Self.models()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["check", "sliced.onnx", "--baseline", "mlp.onnx", "--min-param-reduction", "60%", "--max-params", "212",
                             "--max-drift", "1e-3", "--format", "junit", "--output", "report.xml"], in: dir)
        #expect(r.status == 1, "\(r.stderr)")
        let written = try String(contentsOf: dir.appendingPathComponent("report.xml"), encoding: .utf8)
        #expect(written == r.stdout)
        #expect(r.stdout.components(separatedBy: "<testcase ").count - 1 == 3)
        #expect(r.stdout.components(separatedBy: "<failure ").count - 1 == 2)
        #expect(r.stdout.contains(#"<testsuite name="prunec check" tests="3" failures="2""#))
        #if canImport(FoundationXML)
        let doc = try XMLDocument(data: Data(r.stdout.utf8))
        let suite = try #require(doc.rootElement())
        #expect(suite.name == "testsuite")
        let cases = suite.elements(forName: "testcase")
        #expect(cases.map { $0.attribute(forName: "name")?.stringValue } == ["min-param-reduction", "max-params", "max-drift"])
        #expect(cases.map { $0.elements(forName: "failure").count } == [1, 0, 1])
        #endif
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        #expect(left.isEmpty, "temporary files left: \(left)")
    }

    @Test func checkRunsOnEverySetOfTheData() throws {
        let dir = try Self.models()
        defer { try? FileManager.default.removeItem(at: dir) }
        let x0 = NDArray((0..<8).map { Float($0) / 4 }, shape: [1, 8]), x1 = NDArray((0..<8).map { Float(-$0) / 3 }, shape: [1, 8])
        try NPZ.write([("x", x0), ("set1.x", x1), ("set2.in.x", x0)], to: dir.appendingPathComponent("calib.npz"))
        let r = try CLI.run(["check", "sliced.onnx", "--baseline", "dead.onnx", "--inputs", "calib.npz", "--format", "json"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let inputs = try #require(try Self.json(r.stdout)["inputs"] as? [String: Any])
        #expect(inputs["sets"] as? Int == 3 && inputs["source"] as? String == "calib.npz")

        try NPZ.write([("x", x0), ("set1.x", NDArray([Int64](repeating: 1, count: 8), shape: [1, 8]))], to: dir.appendingPathComponent("bad.npz"))
        let bad = try CLI.run(["check", "sliced.onnx", "--baseline", "dead.onnx", "--inputs", "bad.npz"], in: dir)
        #expect(bad.status == 65 && bad.stderr.contains("bad.npz") && bad.stderr.contains("set1.x"), "\(bad.stderr)")
    }
}
