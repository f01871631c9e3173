import Foundation
import PruneTestSupport
import Testing

/// Runs the built `prunec` binary and captures what it says.
enum CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `prunec` executable next to the test bundle (SwiftPM builds it because this test target
    /// depends on it), or `PRUNEC_BIN`.
    static var binary: URL {
        if let p = ProcessInfo.processInfo.environment["PRUNEC_BIN"], !p.isEmpty { return URL(fileURLWithPath: p) }
        var dir = Bundle.main.bundleURL
        for _ in 0 ..< 4 {
            let candidate = dir.appendingPathComponent("prunec")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL.appendingPathComponent("prunec")
    }

    /// Runs prunec with `arguments` in `directory` (default: the repository root).
    static func run(_ arguments: [String], in directory: URL? = nil) throws -> Result {
        try exec(binary, arguments, in: directory)
    }

    /// Runs any executable (the oracle's Python, say) with `arguments` in `directory`.
    static func exec(_ executable: URL, _ arguments: [String], in directory: URL? = nil) throws -> Result {
        let r = try TestProcess.run(executable, arguments, in: directory ?? repoRoot)
        return Result(status: r.status, stdout: r.stdout, stderr: r.stderr)
    }

    static func temporaryDirectory(_ label: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prunec-cli-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// One example model and the options a pass runs with on it (a parameterized test's argument).
struct PassCase: CustomStringConvertible, Sendable {
    let model: String
    let options: String
    var description: String { model }
}

/// The oracle of a pruned model whose outputs differ from the original by design: onnx.checker
/// (full check) accepts it and onnxruntime runs it on the calibration data (`prune_check.py` with
/// an unbounded tolerance).
func expectValidAndRunsInOnnxruntime(_ reference: String, _ pruned: String, _ calib: String) throws {
    guard let python = OracleTests.python else {
        Issue.record("oracle venv missing: run `make test`")
        return
    }
    let c = try CLI.exec(URL(fileURLWithPath: python),
                         [CLI.repoRoot.appendingPathComponent("scripts/oracle/prune_check.py").path, reference, pruned, calib, "--atol", "1e9"])
    #expect(c.status == 0, "\(c.stdout) \(c.stderr)")
}

/// Figures of a compile `--report`: the result's worst relative L2 drift and each `--compare`
/// baseline's, in the order given.
struct ReportDrift {
    let result: Double
    let baselines: [Double]

    init(_ report: [String: Any]) {
        func worst(_ d: Any?) -> Double {
            ((d as? [String: [String: Any]]) ?? [:]).values.compactMap { $0["rel_l2"] as? Double }.max() ?? .nan
        }
        result = worst(report["drift"])
        baselines = ((report["compare"] as? [[String: Any]]) ?? []).map { worst($0["drift"]) }
    }
}

/// Runs a corpus oracle script (`scripts/oracle/corpus_check.py` or `diffusion_check.py`) on one
/// model with `--json` and expects each of its checks (at least 8) to pass.
func expectOracleChecksPass(script: String, model: String) throws {
    guard let python = OracleTests.python else {
        Issue.record("oracle venv missing: run `make test` (or scripts/setup-venv.sh)")
        return
    }
    let dir = try CLI.temporaryDirectory("oracle-checks")
    defer { try? FileManager.default.removeItem(at: dir) }
    let r = try CLI.exec(URL(fileURLWithPath: python), [
        CLI.repoRoot.appendingPathComponent(script).path, "--prunec", CLI.binary.path, "--model", model, "--work", dir.path, "--json",
    ], in: CLI.repoRoot)
    let line = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
    let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(model): \(r.stderr)")
    let checks = try #require(json["checks"] as? [[String: Any]])
    #expect(checks.count >= 8, "\(model): only \(checks.count) checks ran")
    for c in checks {
        let name = c["check"] as? String ?? "?", ok = c["ok"] as? Bool ?? false, detail = c["detail"] as? String ?? ""
        #expect(ok, "\(model): \(name): \(detail)")
    }
}
