import ArgumentParser
import Foundation
import PruneKit

/// `prunec check --sweep report.json --min-cosine 0.95 --min-removed 20%`: gating on a sweep.
struct SweepGateOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Check a `prunec sweep` report instead of a model.", valueName: "report.json"))
    var sweep: String?

    @Option(name: .customLong("min-cosine"), help: ArgumentHelp("With --sweep: the quality floor (mean cosine to the original).", valueName: "x"))
    var minCosine: Double?

    @Option(name: .customLong("min-removed"), help: ArgumentHelp("With --sweep: the parameters each pipeline must remove above the floor (20% or 0.2).", valueName: "fraction"))
    var minRemoved: String?

    @Option(name: .customLong("pipeline"), help: ArgumentHelp("With --sweep: gate only these pipelines (as given to sweep; repeatable).", valueName: "template"))
    var pipelines: [String] = []

    func removed() throws -> Double {
        guard let minRemoved, let v = Double(fractionText: minRemoved), (0...1).contains(v) else {
            throw ValidationError("--min-removed expects a fraction (0.2 or 20%), got '\(minRemoved ?? "")'")
        }
        return v
    }

    func check() throws {
        guard let minCosine, minCosine.isFinite, (-1...1).contains(minCosine) else { throw ValidationError("--sweep needs --min-cosine between -1 and 1") }
        _ = try removed()
    }

    /// Prints one line per pipeline and throws exit 1 when any misses the bar.
    func run(_ path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw ModelRunError(file: path, reason: "cannot read: \(error.localizedDescription)") }
        let report: SweepReport
        do { report = try SweepReport.read(data) } catch { throw ModelRunError(file: path, reason: "not a prunec sweep report: \(error)") }
        let results = try report.gate(minCosine: minCosine ?? 1, minRemoved: removed(), templates: pipelines.isEmpty ? nil : pipelines)
        for r in results { print("\(r.passed ? "PASS" : "FAIL")  \(r.message)") }
        if !results.allSatisfy(\.passed) { throw ExitCode(1) }
    }
}
