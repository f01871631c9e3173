import Foundation
import Testing

/// PaddleOCR's detector, recognizer and direction classifier as paddle2onnx converted them (the
/// rapidocr-onnxruntime wheel; `scripts/fetch-paddle-models.sh`, run by `make test`, puts them in
/// .cache/paddle/). They declare their inputs the way that converter does: `[N, 3, H, W]` with
/// `p2o.DynamicDimension.*` symbols, `dim_param: "?"` and `dim_value: -1`, so prunec must run them
/// at any size, group them, prune them without calibration data (validation then needs an image
/// size every layer accepts) and write models onnxruntime runs.
@Suite(.enabled(if: PaddleModels.present || PaddleModels.inCI, "PaddleOCR models not fetched: run scripts/fetch-paddle-models.sh"))
struct PaddleModelsTests {
    /// Each model with the input size of its use in PaddleOCR.
    static let cases: [PaddleModels.Case] = [
        .init(name: "det", shape: "1x3x640x640"),
        .init(name: "rec", shape: "1x3x48x320"),
        .init(name: "cls", shape: "1x3x48x192"),
    ]

    @Test(arguments: cases)
    func runsLikeOnnxruntime(_ c: PaddleModels.Case) throws {
        let model = try PaddleModels.path(c.name)
        let python = try #require(OracleTests.python, "oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
        let dir = try CLI.temporaryDirectory("paddle-run")
        defer { try? FileManager.default.removeItem(at: dir) }
        let inputs = try PaddleModels.inputs(model, shape: c.shape, in: dir)
        let out = dir.appendingPathComponent("out.npz").path
        let r = try CLI.run(["run", model, "--inputs", inputs, "-o", out])
        try #require(r.status == 0, "\(c.name): \(r.stderr)")
        let check = try CLI.exec(URL(fileURLWithPath: python), [InterpreterOracleTests.script, "check", model, inputs, out], in: CLI.repoRoot)
        #expect(check.status == 0, "\(c.name): \(check.stdout)\(check.stderr)")
    }

    /// The group analysis runs on every model and finds channel groups it can prune.
    @Test(arguments: cases)
    func inspectFindsGroups(_ c: PaddleModels.Case) throws {
        let model = try PaddleModels.path(c.name)
        let r = try CLI.run(["inspect", model, "--groups", "--no-check", "--json"])
        try #require(r.status == 0, "\(c.name): \(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let groups = try #require(json?["groups"] as? [[String: Any]], "\(c.name): no groups in \(r.stdout.prefix(300))")
        let prunable = groups.filter { $0["kind"] as? String == "channels" && $0["prunable"] as? Bool == true }
        #expect(prunable.count >= 3, "\(c.name): \(prunable.count) prunable channel groups of \(groups.count)")
        // The classifier adds its conv biases as Add(conv, Reshape(Constant)): they are weights of
        // the channel groups, which leaves only the groups that reach the output blocked.
        if c.name == "cls" { #expect(prunable.count >= 20, "cls: \(prunable.count) prunable channel groups of \(groups.count)") }
    }

    /// Without inputs, the synthesized image takes a size every layer accepts: the recognizer's
    /// neck concatenates a map of height 1, so 224x224 and 640x640 contradict it and 48x320 is
    /// taken; the detector and the classifier take 224x224.
    @Test func synthesizedInputsTakeASizeEveryLayerAccepts() throws {
        for (name, want) in [("rec", [1, 3, 48, 320]), ("det", [1, 3, 224, 224]), ("cls", [1, 3, 224, 224])] {
            let model = try PaddleModels.path(name)
            let r = try CLI.run(["bench", model, "--runs", "1", "--warmup", "0", "--threads", "1", "--json"])
            try #require(r.status == 0, "\(name): \(r.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            let shapes = json?["input_shapes"] as? [String: [Int]]
            #expect(shapes?["x"] == want, "\(name): \(String(describing: shapes))")
        }
    }

    /// The recognizer prunes without `--calib`: validation runs on a synthesized 48x320 line, the
    /// result is smaller, passes onnx.checker and runs in onnxruntime at the size PaddleOCR feeds.
    @Test func theRecognizerPrunesWithoutCalibration() throws {
        let model = try PaddleModels.path("rec")
        let dir = try CLI.temporaryDirectory("paddle-prune")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("rec.pruned.onnx").path
        let report = dir.appendingPathComponent("report.json")
        let r = try CLI.run([model, "--pass", "magnitude{sparsity=0.2}", "--pass", "fold-masks", "-o", out, "--report", report.path])
        try #require(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
        let before = (json["before"] as? [String: Any])?["params"] as? Int ?? 0
        let after = (json["after"] as? [String: Any])?["params"] as? Int ?? 0
        #expect(after > 0 && Double(after) < 0.9 * Double(before), "params \(before) → \(after)")
        #expect((json["drift"] as? [String: Any])?.isEmpty == false, "no drift measured: \(json)")
        let inputs = try PaddleModels.inputs(model, shape: "1x3x48x320", in: dir)
        try expectValidAndRunsInOnnxruntime(model, out, inputs)
    }
}

/// Where the fetched PaddleOCR models live and how the tests feed them.
enum PaddleModels {
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let shape: String
        var description: String { name }
    }

    static let folder = CLI.repoRoot.appendingPathComponent(".cache/paddle")

    static var present: Bool {
        ["det", "rec", "cls"].allSatisfy { FileManager.default.fileExists(atPath: folder.appendingPathComponent("\($0).onnx").path) }
    }

    /// In CI the models must be there (`make test` fetches them): their absence fails the tests.
    static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// The path of `name`.onnx, or a failure that says how to fetch it.
    static func path(_ name: String) throws -> String {
        let p = folder.appendingPathComponent("\(name).onnx").path
        try #require(FileManager.default.fileExists(atPath: p), "\(p) is missing: run scripts/fetch-paddle-models.sh (make test does)")
        return p
    }

    /// A seeded N(0, 1) input `x` of `shape` (`1x3x48x320`) for `model`, written as an .npz in `dir`.
    static func inputs(_ model: String, shape: String, in dir: URL) throws -> String {
        let python = try #require(OracleTests.python, "oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
        let out = dir.appendingPathComponent("in.\(shape).npz").path
        let r = try CLI.exec(URL(fileURLWithPath: python), [InterpreterOracleTests.script, "inputs", model, out, "--shape", "x=\(shape)"], in: CLI.repoRoot)
        try #require(r.status == 0, "\(r.stderr)")
        return out
    }
}
