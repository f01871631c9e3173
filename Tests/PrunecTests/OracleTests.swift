import Foundation
import PruneIR
import Testing

/// The oracles of record: `onnx.checker.check_model(full_check=True)` of a current onnx wheel and
/// onnxruntime, run by scripts/oracle/roundtrip_check.py in the venv `make test` creates.
@Suite struct OracleTests {
    static var python: String? {
        let p = ProcessInfo.processInfo.environment["PRUNEC_ORACLE_PYTHON"]
            ?? CLI.repoRoot.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: p) ? p : nil
    }

    static var nodeTests: URL? {
        let p = ProcessInfo.processInfo.environment["PRUNEC_NODE_TESTS"]
            ?? CLI.repoRoot.appendingPathComponent(".cache/onnx-node-tests/node").path
        return FileManager.default.fileExists(atPath: p) ? URL(fileURLWithPath: p) : nil
    }

    /// Runs the oracle script on `pairs` and returns (passed, failed, output).
    static func runOracle(pairs: [(URL, URL)], in dir: URL) throws -> (Int, Int, String) {
        guard let python else {
            Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
            return (0, 0, "")
        }
        let tsv = dir.appendingPathComponent("pairs.tsv")
        try pairs.map { "\($0.0.path)\t\($0.1.path)" }.joined(separator: "\n").write(to: tsv, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [CLI.repoRoot.appendingPathComponent("scripts/oracle/roundtrip_check.py").path, "--pairs", tsv.path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let last = text.split(separator: "\n").last(where: { $0.contains("passed,") }) else { return (0, 0, text) }
        let nums = last.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        return (nums.first ?? 0, nums.dropFirst().first ?? 0, text)
    }

    @Test func exampleModelsExportedByTheCLIPassCheckerAndOnnxruntime() throws {
        let dir = try CLI.temporaryDirectory("oracle-examples")
        defer { try? FileManager.default.removeItem(at: dir) }
        let models = try FileManager.default.contentsOfDirectory(
            at: CLI.repoRoot.appendingPathComponent("examples/models"), includingPropertiesForKeys: nil
        ).filter { $0.pathExtension == "onnx" }
        var pairs: [(URL, URL)] = []
        for m in models {
            let out = dir.appendingPathComponent(m.lastPathComponent)
            let r = try CLI.run([m.path, "-o", out.path])
            #expect(r.status == 0, "\(m.lastPathComponent): \(r.stderr)")
            pairs.append((m, out))
        }
        let (passed, failed, text) = try Self.runOracle(pairs: pairs, in: dir)
        #expect(passed == models.count && failed == 0, "\(text)")
        // Every example runs in onnxruntime, so each line must say identical outputs.
        #expect(text.split(separator: "\n").filter { $0.contains("ort=identical") }.count == models.count, "\(text)")
    }

    @Test func nodeTestModelsPassCheckerAndOnnxruntime() throws {
        guard let root = Self.nodeTests else {
            Issue.record("ONNX node tests not found: run `make test` (or scripts/fetch-node-tests.sh)")
            return
        }
        let dir = try CLI.temporaryDirectory("oracle-node")
        defer { try? FileManager.default.removeItem(at: dir) }
        var pairs: [(URL, URL)] = []
        for test in try FileManager.default.contentsOfDirectory(at: root, includingPropertiesForKeys: nil) {
            let src = test.appendingPathComponent("model.onnx")
            guard FileManager.default.fileExists(atPath: src.path) else { continue }
            let model = try ModelImporter.load(contentsOf: src)
            let out = dir.appendingPathComponent(test.lastPathComponent + ".onnx")
            try ModelExporter.write(model, to: out)
            pairs.append((src, out))
        }
        let (passed, failed, text) = try Self.runOracle(pairs: pairs, in: dir)
        let failures = text.split(separator: "\n").filter { $0.hasPrefix("FAIL") }
        #expect(pairs.count >= 1000)
        #expect(failed == 0 && passed == pairs.count, "\(failures.prefix(20).joined(separator: "\n"))")
        let identical = text.split(separator: "\n").filter { $0.contains("ort=identical") }.count
        print("oracle: \(passed) passed, \(failed) failed; onnxruntime ran \(identical) with bit-identical outputs")
        #expect(identical >= 1000, "onnxruntime should run most node tests")
    }
}
