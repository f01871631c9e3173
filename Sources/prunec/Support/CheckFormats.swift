import ArgumentParser
import Foundation
import PruneKit

/// The output formats of `prunec check`.
enum CheckFormat: String, CaseIterable, ExpressibleByArgument {
    case text, json, markdown, junit

    /// `report` in this format, ending with a newline.
    func render(_ report: CheckReport) throws -> String {
        switch self {
        case .text: return CheckText.render(report)
        case .json: return try report.json() + "\n"
        case .markdown: return CheckMarkdown.render(report)
        case .junit: return CheckJUnit.render(report)
        }
    }
}

/// Shared cell formats.
private enum Cells {
    static func count(_ n: Int?) -> String { n.map(TextTable.grouped) ?? "unknown" }
    static func change(_ r: Double?) -> String {
        guard let r else { return "" }
        // A reduction is shown as the change: −30.5% when the model is smaller.
        return String(format: "%@%.1f%%", r > 0 ? "−" : (r < 0 ? "+" : ""), 100 * abs(r))
    }
    static func verdict(_ r: CheckReport) -> String {
        if r.checks.isEmpty { return "no thresholds given (report only)" }
        let failed = r.checks.filter { !$0.passed }.count
        return failed == 0 ? "passed (\(r.checks.count) of \(r.checks.count) checks)" : "FAILED (\(failed) of \(r.checks.count) checks)"
    }
    static func limit(_ c: CheckResult) -> String {
        let shown: String
        switch c.name {
        case "min-param-reduction", "min-mac-reduction": shown = String(format: "%.1f%%", 100 * c.limit)
        case "max-params", "max-macs": shown = TextTable.grouped(Int(c.limit))
        default: shown = CheckReport.number(c.limit)
        }
        return (c.comparison == "at_least" ? "≥ " : "≤ ") + shown
    }
    static func measured(_ c: CheckResult) -> String {
        guard let m = c.measured else { return "unknown" }
        switch c.name {
        case "min-param-reduction", "min-mac-reduction": return String(format: "%.1f%%", 100 * m)
        case "max-params", "max-macs": return TextTable.grouped(Int(m))
        default: return CheckReport.number(m)
        }
    }
}

/// Plain tables for a terminal.
enum CheckText {
    static func render(_ r: CheckReport) -> String {
        var out = "model     \(r.model)\nbaseline  \(r.baseline)\ninputs    \(r.inputs.phrase)\n\n"
        out += TextTable.table(
            ["", "baseline", "model", "change"],
            [["params", Cells.count(r.params.baseline), Cells.count(r.params.model), Cells.change(r.params.reduction)],
             ["MACs", Cells.count(r.macs.baseline), Cells.count(r.macs.model), Cells.change(r.macs.reduction)]],
            rightAligned: [1, 2, 3])
        out += "\n"
        out += TextTable.table(
            ["output", "max abs", "rel L2", "cosine"],
            r.drift.map { [$0.name, CheckReport.number($0.maxAbs), CheckReport.number($0.relL2), CheckReport.number($0.cosine)] },
            rightAligned: [1, 2, 3])
        if !r.checks.isEmpty {
            out += "\n"
            out += TextTable.table(
                ["check", "measured", "limit", "result"],
                r.checks.map { [$0.name, Cells.measured($0), Cells.limit($0), $0.passed ? "pass" : "FAIL"] },
                rightAligned: [1, 2])
        }
        out += "\n\(Cells.verdict(r))\n"
        return out
    }
}

/// GitHub-flavoured Markdown for a pull-request comment or a job summary.
enum CheckMarkdown {
    static func render(_ r: CheckReport) -> String {
        let icon = r.checks.isEmpty ? "ℹ️" : (r.passed ? "✅" : "❌")
        var out = "### \(icon) prunec check: \(Cells.verdict(r))\n\n"
        out += "`\(code(r.model))` against the baseline `\(code(r.baseline))`; drift on \(r.inputs.phrase).\n\n"
        out += "| | baseline | model | change |\n|---|---:|---:|---:|\n"
        out += "| params | \(Cells.count(r.params.baseline)) | \(Cells.count(r.params.model)) | \(Cells.change(r.params.reduction)) |\n"
        out += "| MACs | \(Cells.count(r.macs.baseline)) | \(Cells.count(r.macs.model)) | \(Cells.change(r.macs.reduction)) |\n"
        if !r.checks.isEmpty {
            out += "\n| check | measured | limit | result |\n|---|---:|---:|:---:|\n"
            for c in r.checks {
                out += "| `\(c.name)` | \(Cells.measured(c)) | \(Cells.limit(c)) | \(c.passed ? "✅ pass" : "❌ **fail**") |\n"
            }
        }
        if !r.drift.isEmpty {
            out += "\n<details><summary>Drift per output</summary>\n\n"
            out += "| output | max abs | rel L2 | cosine |\n|---|---:|---:|---:|\n"
            for d in r.drift {
                out += "| \(cell(d.name)) | \(CheckReport.number(d.maxAbs)) | \(CheckReport.number(d.relL2)) | \(CheckReport.number(d.cosine)) |\n"
            }
            out += "\n</details>\n"
        }
        return out
    }

    /// Text safe inside a table cell: pipes escaped, no line breaks.
    static func cell(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    /// Text safe inside inline code in a table-free line (backticks would end it).
    static func code(_ s: String) -> String {
        s.replacingOccurrences(of: "`", with: "'").replacingOccurrences(of: "\n", with: " ")
    }
}

/// JUnit XML: one `<testsuite>`, one `<testcase>` per check, `<failure>` for each that failed.
enum CheckJUnit {
    static func render(_ r: CheckReport) -> String {
        let failures = r.checks.filter { !$0.passed }.count
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuite name=\"prunec check\" tests=\"\(r.checks.count)\" failures=\"\(failures)\" errors=\"0\" skipped=\"0\">\n"
        out += "  <properties>\n"
        for (name, value) in [("model", r.model), ("baseline", r.baseline), ("inputs", r.inputs.source),
                              ("params", Cells.count(r.params.model)), ("macs", Cells.count(r.macs.model))] {
            out += "    <property name=\"\(Format.xml(name))\" value=\"\(Format.xml(value))\"/>\n"
        }
        out += "  </properties>\n"
        for c in r.checks {
            let head = "  <testcase classname=\"prunec.check\" name=\"\(Format.xml(c.name))\""
            if c.passed {
                out += head + "/>\n"
            } else {
                out += head + ">\n"
                out += "    <failure type=\"threshold\" message=\"\(Format.xml(c.message))\">\(Format.xml(c.message))</failure>\n"
                out += "  </testcase>\n"
            }
        }
        out += "</testsuite>\n"
        return out
    }
}
