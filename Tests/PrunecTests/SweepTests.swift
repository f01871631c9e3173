import Foundation
import PruneKit
import Testing

/// `prunec sweep` end to end on the example encoder: two pipelines over five amounts in one
/// command, scores computed once per pipeline, every model written and valid, the reports, and
/// `prunec check --sweep` gating on them.
@Suite("prunec sweep", .serialized)
struct SweepTests {
    static let templates = ["fluctuation{params=$x},reconstruct,fold-masks", "magnitude{params=$x},fold-masks"]

    @Test func twoPipelinesFiveAmountsAndTheGate() throws {
        let dir = try CLI.temporaryDirectory("sweep")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("sweep")
        var args = ["sweep", "examples/models/bert.onnx", "--calib", "examples/models/bert.calib.npz", "--at", "5%,0.1,0.15,0.2,0.3",
                    "-o", out.path, "--runs", "2", "--threads", "1"]
        for t in Self.templates { args += ["--pass", t] }
        if let python = OracleTests.python { args += ["--ort", python] }
        let r = try CLI.run(args)
        try #require(r.status == 0, "\(r.stderr.suffix(2000))")
        // Scores: the fluctuation statistics ran once, the other four runs reused them.
        #expect(r.stderr.contains("fluctuation{params=$x},reconstruct,fold-masks: scores computed 1 time, reused 4 times"), "\(r.stderr.suffix(3000))")
        #expect(r.stderr.components(separatedBy: "unit scores reused from an earlier run").count - 1 == 4)
        #expect(r.stderr.contains("magnitude{params=$x},fold-masks: scores computed 1 time, reused 4 times"))

        let report = try SweepReport.read(Data(contentsOf: out.appendingPathComponent("report.json")))
        #expect(report.runs.count == 10 && report.templates == Self.templates && report.amounts == [0.05, 0.1, 0.15, 0.2, 0.3])
        // Files are named as the user gave them: a report can be committed without machine paths.
        #expect(report.calibration == "examples/models/bert.calib.npz" && report.model == "examples/models/bert.onnx")
        #expect(report.runs.allSatisfy { $0.command.contains("--calib examples/models/bert.calib.npz") })
        for t in Self.templates {
            let runs = report.runs(of: t)
            #expect(runs.count == 5)
            // More removed, fewer parameters; every model written and measured.
            #expect(zip(runs, runs.dropFirst()).allSatisfy { $0.params >= $1.params }, "\(runs.map(\.params))")
            for run in runs {
                #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(run.output).path))
                #expect(run.cosine > 0.9 && run.cosine <= 1 && run.relL2 > 0 && run.latencyMs > 0 && run.paramsRemoved > 0.03)
                #expect(abs(run.paramsRemoved - run.amount) < 0.03, "\(run.pipeline) removed \(run.paramsRemoved)")
                #expect(run.widths.contains { $0.after < $0.before })
                if OracleTests.python != nil { #expect((run.ortLatencyMs ?? 0) > 0) }
            }
        }
        // With reconstruct the encoder drifts less than with magnitude alone, at every amount.
        for (a, b) in zip(report.runs(of: Self.templates[0]), report.runs(of: Self.templates[1])) {
            #expect(a.relL2 < b.relL2, "at \(a.amount): \(a.relL2) vs \(b.relL2)")
        }
        #expect(report.sensitivity.count == 4 && report.sensitivity.first!.relL2 >= report.sensitivity.last!.relL2)
        let csv = try String(contentsOf: out.appendingPathComponent("report.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 11)
        #expect(r.stdout.contains("sensitivity at 15.0% of one group: most"))

        // The written models run in onnxruntime and pass the checker.
        let last = out.appendingPathComponent(report.runs(of: Self.templates[0]).last!.output).path
        try expectValidAndRunsInOnnxruntime("examples/models/bert.onnx", last, "examples/models/bert.calib.npz")

        // The gate: fluctuation+reconstruct keeps cosine ≥ 0.9999 to 30%; magnitude does not.
        let gate = ["check", "--sweep", out.appendingPathComponent("report.json").path, "--min-cosine", "0.9999", "--min-removed", "20%"]
        let pass = try CLI.run(gate + ["--pipeline", Self.templates[0]])
        #expect(pass.status == 0 && pass.stdout.hasPrefix("PASS"), "\(pass.stdout)\(pass.stderr)")
        let fail = try CLI.run(gate)
        #expect(fail.status == 1 && fail.stdout.contains("FAIL  magnitude"), "\(fail.stdout)\(fail.stderr)")

        // The HTML report: well formed for an independent parser, one circle per run, no URL.
        let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"))
        for run in report.runs { #expect(html.contains(run.output)) }
        if let python = OracleTests.python {
            let parse = """
                import sys, html.parser
                class P(html.parser.HTMLParser):
                    VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source", "track", "embed", "param"}
                    def __init__(self):
                        super().__init__(); self.stack = []; self.svgs = 0
                    def handle_starttag(self, tag, attrs):
                        if tag == "svg": self.svgs += 1
                        if tag not in self.VOID: self.stack.append(tag)
                    def handle_startendtag(self, tag, attrs):
                        if tag == "svg": self.svgs += 1
                    def handle_endtag(self, tag):
                        if tag in self.VOID: return
                        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
                        self.stack.pop()
                p = P(); p.feed(open(sys.argv[1], encoding="utf-8").read()); p.close()
                assert not p.stack, f"unclosed: {p.stack}"
                print(p.svgs)
                """
            let c = try CLI.exec(URL(fileURLWithPath: python), ["-c", parse, out.appendingPathComponent("report.html").path])
            #expect(c.status == 0, "\(c.stderr)")
            #expect((Int(c.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 3, "svg charts: \(c.stdout)")
        }
    }

    @Test(arguments: [
        (["--pass", "magnitude{params=0.2},fold-masks"], "no $x placeholder"),
        (["--pass", "magnitude{params=$x}", "--at", "0.2,1.5"], "--at expects fractions"),
        (["--pass", "magnitud{params=$x}"], "unknown pass 'magnitud'"),
    ])
    func badSweepsAreUsageErrors(_ extra: [String], _ message: String) throws {
        let dir = try CLI.temporaryDirectory("sweep-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["sweep", "examples/models/bert.onnx", "-o", dir.appendingPathComponent("s").path] + extra)
        #expect(r.status == 64 && r.stderr.contains(message), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("s").path))
    }

    /// An amount beyond what the prunable groups allow is skipped and listed; the reachable ones run.
    @Test func unreachableAmountsAreSkippedAndListed() throws {
        let dir = try CLI.temporaryDirectory("sweep-skip")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("s")
        let base = ["sweep", "examples/models/bert.onnx", "--pass", "magnitude{params=$x},fold-masks", "-o", out.path, "--runs", "1"]
        let r = try CLI.run(base + ["--at", "0.1,0.45"])
        try #require(r.status == 0, "\(r.stderr.suffix(1500))")
        let report = try SweepReport.read(Data(contentsOf: out.appendingPathComponent("report.json")))
        #expect(report.runs.map(\.amount) == [0.1])
        #expect(report.skipped?.map(\.pipeline) == ["magnitude{params=0.45},fold-masks"])
        #expect(report.skipped?.first?.reason.contains("cannot be reached") == true)
        #expect(r.stdout.contains("skipped magnitude{params=0.45},fold-masks") && r.stderr.contains("warning: sweep: skipping"))
        let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("Not run") && html.contains("magnitude{params=0.45},fold-masks"))
        let none = try CLI.run(base + ["--at", "0.45,0.5", "-o", dir.appendingPathComponent("t").path])
        #expect(none.status == 65 && none.stderr.contains("no run of the sweep could be made"), "\(none.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("t/report.json").path))
    }
}
