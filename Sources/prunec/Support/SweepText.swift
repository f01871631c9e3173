import Foundation
import PruneKit

/// The summary `prunec sweep` prints on stdout (the full report is report.html/json/csv).
enum SweepText {
    static func render(_ r: SweepReport) -> String {
        func pct(_ x: Double?) -> String { x.map { String(format: "%.1f%%", 100 * $0) } ?? "?" }
        func num(_ x: Double?) -> String { x.map { String(format: "%.4g", $0) } ?? "-" }
        var out = "\(r.model): \(r.runs.count) runs (\(r.templates.count) pipeline\(r.templates.count == 1 ? "" : "s") × \(r.amounts.count) amounts)\n\n"
        let quality = r.runs.contains { $0.perplexity != nil } ? "perplexity" : r.runs.contains { $0.top1 != nil } ? "top-1" : nil
        let ort = r.runs.contains { $0.ortLatencyMs != nil }
        var header = ["pipeline", "params removed", "MACs removed", "cosine", "rel L2", "latency ms"] + (ort ? ["ORT ms"] : [])
        if let quality { header.insert(quality, at: 5) }
        let rows = r.runs.map { run -> [String] in
            var row = [run.pipeline, pct(run.paramsRemoved), pct(run.macsRemoved), String(format: "%.4f", run.cosine), num(run.relL2),
                       String(format: "%.3f", run.latencyMs)] + (ort ? [run.ortLatencyMs.map { String(format: "%.3f", $0) } ?? "-"] : [])
            if quality != nil { row.insert(num(run.perplexity ?? run.top1), at: 5) }
            return row
        }
        out += TextTable.table(header, rows, rightAligned: Set(1..<header.count))
        out += "original: \(TextTable.grouped(r.baseline.params)) params, \(String(format: "%.3f", r.baseline.latencyMs)) ms"
            + (r.baseline.ortLatencyMs.map { String(format: " (onnxruntime %.3f ms)", $0) } ?? "")
            + (r.baseline.perplexity.map { String(format: ", perplexity %.4g", $0) } ?? "") + "\n"
        for s in r.skipped ?? [] { out += "skipped \(s.pipeline): \(s.reason)\n" }
        if let most = r.sensitivity.first, let least = r.sensitivity.last {
            out += "sensitivity at \(pct(r.sensitivityAmount)) of one group: most \(most.group) (rel L2 \(num(most.relL2))), least \(least.group) (rel L2 \(num(least.relL2)))\n"
        }
        out += "report: report.html, report.json, report.csv in the output folder\n"
        return out
    }
}
