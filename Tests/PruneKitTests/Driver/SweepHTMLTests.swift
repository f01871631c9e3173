import Foundation
import PruneTestSupport
import Testing

@testable import PruneKit

/// `SweepHTML.render` (the `report.html` of `prunec sweep`) on synthetic reports, checked by an
/// independent parser: Python's XML parser for well-formedness and its HTML parser for nesting.
@Suite struct SweepHTMLTests {
    /// Templates with the characters a page must escape or survive: braces, `$x`, `<`, `&`, quotes.
    static let templates = ["magnitude{sparsity=$x},fold-masks", "ld-pruner{target=$x,note=\"<a&b>\"},fold-masks"]
    static let amounts = [0.1, 0.2, 0.3, 0.4, 0.5]
    static let layers = ["encoder/layer.0/ffn", "encoder/layer.0/attn", "encoder/layer.1/ffn", "encoder/layer.1/attn"]

    /// 2 templates × 5 amounts, one run with a NaN cosine, 6 sensitivity entries, widths of 4 layers.
    static func report(ort: Bool = true) -> SweepReport {
        var runs: [SweepReport.Run] = []
        for (t, template) in templates.enumerated() {
            for a in amounts {
                let pipeline = template.replacingOccurrences(of: "$x", with: String(describing: a))
                let k = Double(t)
                let removed: Double = a * (0.7 + 0.1 * k)
                let cosine: Double = t == 1 && a == 0.3 ? .nan : 1 - a * a * (0.3 + 0.2 * k)
                let widths = zip(layers, [3072, 768, 3072, 768]).map { layer, before in
                    SweepReport.LayerWidth(layer: layer, before: before, after: Int(Double(before) * (1 - a)))
                }
                let output = "run-\(t)-\(a).onnx"
                let params = Int(1_000_000 * (1 - removed)), macs = Int(5_000_000 * (1 - removed))
                let relL2: Double = a * (0.2 + 0.1 * k)
                let top1: Double? = t == 0 ? 1 - a / 4 : nil
                let latency: Double = 12 * (1 - a / 2)
                let ortLatency: Double? = ort ? 3 * (1 - a / 3) : nil
                let command = "prunec bert.onnx --pass '\(pipeline)' -o \(output)"
                runs.append(SweepReport.Run(
                    template: template, pipeline: pipeline, amount: a, command: command, output: output, params: params, macs: macs,
                    paramsRemoved: removed, macsRemoved: removed * 1.1, cosine: cosine, relL2: relL2, top1: top1, perplexity: nil,
                    latencyMs: latency, ortLatencyMs: ortLatency, seconds: 1.5 + a, widths: widths))
            }
        }
        let sensitivity = (0 ..< 6).map { (i: Int) -> SweepReport.Sensitivity in
            let heads = i % 2 == 0
            let group = "encoder/layer.\(i / 2)/" + (heads ? "attn&heads" : "ffn<neurons>")
            let share = 1 / Double(i + 1)
            return SweepReport.Sensitivity(group: group, kind: heads ? "heads" : "neurons", amount: 0.3, relL2: 0.4 * share, cosine: 1 - 0.05 * share)
        }
        return SweepReport(model: "bert.onnx", calibration: "bert.calib.npz", templates: templates, amounts: amounts,
                           baseline: .init(params: 1_000_000, macs: 5_000_000, latencyMs: 12, ortLatencyMs: ort ? 3 : nil),
                           runs: runs, sensitivity: sensitivity, sensitivityAmount: 0.3)
    }

    @Test func pageIsWellFormedAndPlotsEveryFiniteRun() throws {
        let report = Self.report()
        let html = SweepHTML.render(report)
        try expectSelfContained(html)
        guard let page = try parse(html) else { return }
        #expect(page.errors.isEmpty, "\(page.errors)")
        // Three Pareto charts, the sensitivity bars, and one widths chart per template (10 runs are many).
        #expect(page.svgs.map(\.id) == ["pareto-params", "pareto-latency", "pareto-ort", "sensitivity", "widths-1", "widths-2"])
        #expect(page.svg == 6 && page.texts >= 12)
        for svg in page.svgs { #expect(svg.texts >= 2, "\(svg.id) has \(svg.texts) texts") }

        let finite = report.runs.filter { $0.cosine.isFinite }
        #expect(finite.count == 9)
        func plotted(_ id: String) -> Set<String> {
            Set(page.svgs.first { $0.id == id }?.circles.map { "\($0.pipeline)|\($0.amount)|\($0.x)|\($0.y)" } ?? [])
        }
        func expected(_ x: (SweepReport.Run) -> Double?) -> Set<String> {
            Set(finite.map { "\($0.pipeline)|\(String(describing: $0.amount))|\(String(describing: x($0)!))|\(String(describing: $0.cosine))" })
        }
        for id in ["pareto-params", "pareto-latency", "pareto-ort"] {
            #expect(page.svgs.first { $0.id == id }?.circles.count == finite.count, "\(id)")
        }
        #expect(plotted("pareto-params") == expected { $0.paramsRemoved })
        #expect(plotted("pareto-latency") == expected { $0.latencyMs })
        #expect(plotted("pareto-ort") == expected { $0.ortLatencyMs })
        #expect(page.circles == 3 * finite.count)

        // Sensitivity: one bar per group, most sensitive first, named in the sentence.
        let bars = page.svgs.first { $0.id == "sensitivity" }?.bars ?? []
        #expect(bars.map(\.group) == report.sensitivity.map(\.group))
        #expect(bars.map(\.relL2) == report.sensitivity.map { String(describing: $0.relL2) })
        #expect(page.bars == 6)
        #expect(html.contains("most sensitive is <strong>\(SweepHTML.esc(report.sensitivity[0].group))</strong>"))
        #expect(html.contains("least sensitive <strong>\(SweepHTML.esc(report.sensitivity[5].group))</strong>"))

        // Widths: a before and an after bar per layer.
        for id in ["widths-1", "widths-2"] {
            #expect(page.svgs.first { $0.id == id }?.layers == Self.layers.flatMap { [$0, $0] }, "\(id)")
        }
        #expect(html.contains("data-layer=\"encoder/layer.0/ffn\" data-before=\"3072\" data-after=\"1536\""))

        // Legend and table hold the texts as given (the parser unescaped them), escaped in the source.
        #expect(page.legend == Array(repeating: Self.templates, count: 3).flatMap { $0 })
        #expect(page.pipelines == ["original"] + report.runs.map(\.pipeline))
        #expect(page.commands == report.runs.map(\.command))
        for t in Self.templates { #expect(html.contains(SweepHTML.esc(t))) }
        #expect(html.contains("note=&quot;&lt;a&amp;b&gt;&quot;"))
        #expect(!html.contains("<a&b>"))
        // Counts grouped by thousands; the NaN run is listed.
        #expect(html.contains("1,000,000") && html.contains("5,000,000"))
        #expect(html.contains(">nan<"))
    }

    @Test func degenerateReportStaysFinite() throws {
        // One template whose runs change nothing, one whose cosines are all NaN, no ORT, no
        // sensitivity and no widths: ranges collapse to a point and charts may have no points.
        let same = SweepReport.Run(template: "noop{x=$x}", pipeline: "noop{x=0.5}", amount: 0.5, command: "prunec m.onnx --pass 'noop{x=0.5}'",
                                   output: "a.onnx", params: 10, macs: nil, paramsRemoved: 0, macsRemoved: nil, cosine: 1, relL2: 0,
                                   top1: nil, perplexity: nil, latencyMs: 2, ortLatencyMs: nil, seconds: 0, widths: [])
        var broken = same
        (broken.template, broken.pipeline, broken.cosine, broken.relL2) = ("nan{x=$x}", "nan{x=0.5}", .nan, .nan)
        let report = SweepReport(model: "m.onnx", calibration: nil, templates: ["noop{x=$x}", "nan{x=$x}"], amounts: [0.5],
                                 baseline: .init(params: 10, macs: nil, latencyMs: 2), runs: [same, broken], sensitivity: [], sensitivityAmount: 0.3)
        let html = SweepHTML.render(report)
        try expectSelfContained(html)
        #expect(html.contains("<p>No sensitivity analysis"))
        #expect(html.contains("No run recorded its layer widths"))
        guard let page = try parse(html) else { return }
        #expect(page.errors.isEmpty, "\(page.errors)")
        #expect(page.svgs.map(\.id) == ["pareto-params", "pareto-latency"])
        for svg in page.svgs {
            #expect(svg.texts >= 2, "\(svg.id)")
            #expect(svg.circles.map(\.pipeline) == ["noop{x=0.5}"], "\(svg.id)")
        }
        #expect(page.pipelines == ["original", "noop{x=0.5}", "nan{x=0.5}"])
    }

    /// (d): nothing that loads from elsewhere or runs.
    func expectSelfContained(_ html: String) throws {
        #expect(html.hasPrefix("<!DOCTYPE html>\n"))
        #expect(html.contains("<meta charset=\"utf-8\"/>"))
        for banned in ["http://", "https://", "src=", "<script", "url(", "@import", "xmlns"] {
            #expect(!html.lowercased().contains(banned), "\(banned)")
        }
    }

    /// What the oracle script reports on a page.
    struct Page: Decodable {
        struct SVG: Decodable {
            var id: String
            var texts: Int
            var circles: [Circle]
            var bars: [Bar]
            var layers: [String]
        }

        struct Circle: Decodable {
            var x: String
            var y: String
            var pipeline: String
            var amount: String
        }

        struct Bar: Decodable {
            var group: String
            var relL2: String
        }

        var errors: [String]
        var svg: Int
        var circles: Int
        var bars: Int
        var texts: Int
        var svgs: [SVG]
        var legend: [String]
        var pipelines: [String]
        var commands: [String]
    }

    /// Parses `html` with the oracle's Python (`PRUNEC_ORACLE_PYTHON`, else the repository's
    /// `.venv`); nil, with an issue recorded, when there is none.
    func parse(_ html: String) throws -> Page? {
        let configured = ProcessInfo.processInfo.environment["PRUNEC_ORACLE_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        let python = configured ?? TestPaths.repoRoot.appendingPathComponent(".venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            Issue.record("oracle venv missing: run `make test`")
            return nil
        }
        let dir = try TestPaths.temporaryDirectory("sweep-html")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("report.html")
        try Data(html.utf8).write(to: file)
        let r = try TestProcess.run(URL(fileURLWithPath: python), ["-c", Self.script, file.path])
        try #require(r.status == 0, "the oracle failed: \(r.stderr)")
        return try JSONDecoder().decode(Page.self, from: Data(r.stdout.utf8))
    }

    /// The oracle: the page must parse as XML (minus its doctype line) and nest as HTML; it prints
    /// what the charts, the legend and the table hold, as JSON.
    static let script = #"""
    import json, math, sys
    import xml.etree.ElementTree as ET
    from html.parser import HTMLParser

    text = open(sys.argv[1], encoding="utf-8").read()
    errors = []
    first, _, rest = text.partition("\n")
    if first != "<!DOCTYPE html>":
        errors.append("the first line is not <!DOCTYPE html>: %r" % first)
    root = ET.fromstring(rest)  # raises (exit 1) when not well-formed

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    class Nesting(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.stack = []

        def handle_starttag(self, tag, attrs):
            if tag not in VOID:
                self.stack.append(tag)

        def handle_startendtag(self, tag, attrs):
            pass  # <x/> closes itself

        def handle_endtag(self, tag):
            if self.stack and self.stack[-1] == tag:
                self.stack.pop()
            else:
                errors.append("</%s> closes %r" % (tag, self.stack[-1:]))

    nesting = Nesting()
    nesting.feed(text)
    nesting.close()
    if nesting.stack:
        errors.append("unclosed: %r" % nesting.stack)

    def text_of(e):
        return "".join(e.itertext())

    COORDS = {"x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "width", "height"}
    svgs = []
    for svg in root.iter("svg"):
        for e in svg.iter():
            for k, v in e.attrib.items():
                values = v.replace(",", " ").split() if k == "points" else [v] if k in COORDS else []
                for s in values:
                    try:
                        ok = math.isfinite(float(s))
                    except ValueError:
                        ok = False
                    if not ok:
                        errors.append("%s %s=%r" % (e.tag, k, v))
        svgs.append({
            "id": svg.get("id", ""),
            "texts": sum(1 for _ in svg.iter("text")),
            "circles": [{"x": c.get("data-x"), "y": c.get("data-y"), "pipeline": c.get("data-pipeline"), "amount": c.get("data-amount")}
                        for c in svg.iter("circle") if c.get("data-x") is not None],
            "bars": [{"group": r.get("data-group"), "relL2": r.get("data-rel-l2")} for r in svg.iter("rect") if r.get("data-group") is not None],
            "layers": [r.get("data-layer") for r in svg.iter("rect") if r.get("data-layer") is not None],
        })

    json.dump({
        "errors": errors,
        "svg": len(svgs),
        "circles": sum(len(s["circles"]) for s in svgs),
        "bars": sum(len(s["bars"]) for s in svgs),
        "texts": sum(s["texts"] for s in svgs),
        "svgs": svgs,
        "legend": [text_of(li) for ul in root.iter("ul") if ul.get("class") == "legend" for li in ul.iter("li")],
        "pipelines": [text_of(td) for td in root.iter("td") if td.get("class") == "pipeline"],
        "commands": [text_of(c) for td in root.iter("td") for c in td.iter("code")],
    }, sys.stdout)
    """#
}
