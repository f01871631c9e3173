import Foundation

/// The `report.html` of `prunec sweep`: one self-contained page (inline CSS and SVG, no script, no
/// external resource) with the Pareto fronts, the per-group sensitivity, a table of every run and
/// the widths each pipeline left per layer.
///
/// The markup is well-formed XML as well as HTML5 (every element closed, attributes quoted, only the
/// five XML entities), so the page can be checked, or scraped, with an XML parser. Every plotted
/// point carries its figures as `data-*` attributes with the JSON's values.
public enum SweepHTML {
    /// The page for `report`.
    public static func render(_ report: SweepReport) -> String {
        let colours = Colours(report)
        var out = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title>prunec sweep: \(esc(report.model))</title>
        <style>\(style)</style>
        </head>
        <body>
        <h1>prunec sweep: \(esc(report.model))</h1>

        """
        out += summary(report)
        out += pareto(report, colours)
        out += sensitivity(report)
        out += table(report, colours)
        out += widths(report, colours)
        out += "</body>\n</html>\n"
        return out
    }

    // MARK: Sections

    private static func summary(_ r: SweepReport) -> String {
        let b = r.baseline
        var items = ["<strong>model</strong> \(esc(r.model))"]
        items.append("<strong>calibration</strong> \(esc(r.calibration ?? "none"))")
        items.append("<strong>amounts</strong> \(esc(r.amounts.map(number).joined(separator: ", ")))")
        var original = "\(TextTable.grouped(b.params)) params"
        if let m = b.macs { original += ", \(TextTable.grouped(m)) MACs" }
        original += ", latency \(ms(b.latencyMs))"
        if let o = b.ortLatencyMs { original += ", onnxruntime \(ms(o))" }
        if let p = b.perplexity { original += ", perplexity \(fixed(p, 3))" }
        items.append("<strong>original</strong> \(original)")
        return "<p class=\"summary\">\(items.joined(separator: " · "))</p>\n"
    }

    private static func pareto(_ r: SweepReport, _ colours: Colours) -> String {
        var out = "<h2>Pareto fronts</h2>\n"
        let unplotted = r.runs.filter { !$0.cosine.isFinite }.count
        if unplotted > 0 {
            out += "<p class=\"note\">\(unplotted) run\(unplotted == 1 ? "" : "s") with a non-finite cosine "
                + "\(unplotted == 1 ? "is" : "are") not plotted; see the table.</p>\n"
        }
        let legend = self.legend(colours)
        out += "<h3>Parameters removed against cosine</h3>\n"
        out += chart(r, colours, id: "pareto-params", xTitle: "parameters removed (%)", scale: 100, origin: 0) { $0.paramsRemoved }
        out += legend
        out += "<h3>Interpreter latency against cosine</h3>\n"
        out += chart(r, colours, id: "pareto-latency", xTitle: "interpreter latency (ms)", scale: 1, origin: r.baseline.latencyMs) {
            $0.latencyMs
        }
        out += legend
        if r.runs.contains(where: { $0.ortLatencyMs != nil }) {
            out += "<h3>onnxruntime latency against cosine</h3>\n"
            out += chart(r, colours, id: "pareto-ort", xTitle: "onnxruntime latency (ms)", scale: 1, origin: r.baseline.ortLatencyMs) {
                $0.ortLatencyMs
            }
            out += legend
        }
        return out
    }

    private static func legend(_ colours: Colours) -> String {
        var out = "<ul class=\"legend\">\n"
        for t in colours.templates {
            out += "<li><span class=\"swatch\" style=\"background:\(colours[t])\"></span>\(esc(t))</li>\n"
        }
        return out + "</ul>\n"
    }

    /// One Pareto chart: `x` of each run (in JSON units; the axis shows it times `scale`) against its
    /// cosine, a line per template from the original at (`origin`, 1) when the original's x is known.
    private static func chart(_ r: SweepReport, _ colours: Colours, id: String, xTitle: String, scale: Double, origin: Double?,
                              x: (SweepReport.Run) -> Double?) -> String {
        // Non-finite points cannot be placed; the table still lists them.
        let series: [(String, [(Double, SweepReport.Run)])] = colours.templates.map { t in
            (t, r.runs(of: t).compactMap { run -> (Double, SweepReport.Run)? in
                guard let v = x(run), v.isFinite, run.cosine.isFinite else { return nil }
                return (v, run)
            })
        }
        let start: Double? = origin.flatMap { $0.isFinite ? $0 * scale : nil }
        let xs: [Double] = series.flatMap { $0.1.map { $0.0 * scale } } + (start.map { [$0] } ?? [])
        let ys: [Double] = series.flatMap { $0.1.map { $0.1.cosine } } + [1]
        let frame = Frame(width: 640, height: 380, left: 64, right: 20, top: 16, bottom: 52)
        let ax = Axis(xs), ay = Axis(ys)
        func px(_ v: Double) -> Double { frame.x(v, ax) }
        func py(_ v: Double) -> Double { frame.y(v, ay) }
        var out = frame.open(id: id, label: "\(xTitle) against cosine to the original")
        out += frame.axes(ax, ay, xTitle: xTitle, yTitle: "cosine to the original")
        for (t, points) in series where !points.isEmpty {
            let colour = colours[t]
            let line = (start.map { [(px($0), py(1))] } ?? []) + points.map { (px($0.0 * scale), py($0.1.cosine)) }
            let coordinates = line.map { "\(f1($0.0)),\(f1($0.1))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(coordinates)\"/>\n"
            for (v, run) in points {
                out += "<circle cx=\"\(f1(px(v * scale)))\" cy=\"\(f1(py(run.cosine)))\" r=\"4\" fill=\"\(colour)\""
                out += " data-x=\"\(String(describing: v))\" data-y=\"\(String(describing: run.cosine))\""
                out += " data-pipeline=\"\(esc(run.pipeline))\" data-amount=\"\(String(describing: run.amount))\">"
                out += "<title>\(esc(run.pipeline)): \(esc(xTitle)) \(number(v * scale)), cosine \(fixed(run.cosine, 4))</title></circle>\n"
            }
        }
        if let s = start {
            // The original: no data attributes, so it is never mistaken for a run.
            out += "<circle class=\"origin\" cx=\"\(f1(px(s)))\" cy=\"\(f1(py(1)))\" r=\"5\" fill=\"#fff\" stroke=\"#000\" stroke-width=\"2\">"
            out += "<title>the original: cosine 1</title></circle>\n"
        }
        return out + "</svg>\n"
    }

    private static func sensitivity(_ r: SweepReport) -> String {
        var out = "<h2>Sensitivity per group</h2>\n"
        guard let most = r.sensitivity.first, let least = r.sensitivity.last else {
            return out + "<p>No sensitivity analysis: the sweep measured no pruning group.</p>\n"
        }
        out += "<p>Each group alone loses \(pct(r.sensitivityAmount)) of its units (lowest weight norm first). "
        out += "The most sensitive is <strong>\(esc(most.group))</strong> (rel L2 \(sig(most.relL2))), "
        out += "the least sensitive <strong>\(esc(least.group))</strong> (rel L2 \(sig(least.relL2))).</p>\n"
        let bars = HBars(labels: r.sensitivity.map(\.group), maximum: r.sensitivity.map(\.relL2).max() ?? 0)
        var svg = bars.open(id: "sensitivity", label: "relative L2 drift per group")
        svg += bars.axes(xTitle: "relative L2 drift with \(pct(r.sensitivityAmount)) of the group removed", yTitle: "group")
        for (i, s) in r.sensitivity.enumerated() {
            let data = "data-group=\"\(esc(s.group))\" data-rel-l2=\"\(String(describing: s.relL2))\""
            let tip = "<title>\(esc(s.group)) (\(esc(s.kind))): rel L2 \(sig(s.relL2)), cosine \(fixed(s.cosine, 4))</title>"
            svg += bars.bar(i, s.relL2, fill: "#c44e52", attributes: data, tip: tip)
            svg += bars.value(i, bars.length(s.relL2), sig(s.relL2))
        }
        return out + svg + "</svg>\n"
    }

    private static func table(_ r: SweepReport, _ colours: Colours) -> String {
        let top1 = r.runs.contains { $0.top1 != nil }
        let ppl = r.baseline.perplexity != nil || r.runs.contains { $0.perplexity != nil }
        let ort = r.baseline.ortLatencyMs != nil || r.runs.contains { $0.ortLatencyMs != nil }
        var head = ["pipeline", "amount", "params", "MACs", "cosine", "rel L2"]
        if top1 { head.append("top-1") }
        if ppl { head.append("perplexity") }
        head.append("latency")
        if ort { head.append("onnxruntime") }
        head += ["seconds", "output", "command"]
        var out = "<h2>Runs</h2>\n<table>\n<thead><tr>\(head.map { "<th>\($0)</th>" }.joined())</tr></thead>\n<tbody>\n"
        func num(_ s: String) -> String { "<td class=\"num\">\(s)</td>" }
        func removed(_ n: Int, _ fraction: Double?) -> String {
            num(TextTable.grouped(n) + (fraction.map { " <span class=\"removed\">(−\(pct($0)))</span>" } ?? ""))
        }
        let b = r.baseline
        var first = ["<td class=\"pipeline\">original</td>", num("—"), num(TextTable.grouped(b.params)), num(b.macs.map(TextTable.grouped) ?? "—"),
                     num("1"), num("0")]
        if top1 { first.append(num("—")) }
        if ppl { first.append(num(b.perplexity.map { fixed($0, 3) } ?? "—")) }
        first.append(num(ms(b.latencyMs)))
        if ort { first.append(num(b.ortLatencyMs.map(ms) ?? "—")) }
        first += [num("—"), "<td></td>", "<td></td>"]
        out += "<tr class=\"baseline\">" + first.joined() + "</tr>\n"
        for run in r.runs {
            var cells = ["<td class=\"pipeline\"><span class=\"swatch\" style=\"background:\(colours[run.template])\"></span>\(esc(run.pipeline))</td>",
                         num(number(run.amount)), removed(run.params, run.paramsRemoved),
                         run.macs.map { removed($0, run.macsRemoved) } ?? num("—"), num(fixed(run.cosine, 4)), num(sig(run.relL2))]
            if top1 { cells.append(num(run.top1.map(pct) ?? "—")) }
            if ppl { cells.append(num(run.perplexity.map { fixed($0, 3) } ?? "—")) }
            cells.append(num(ms(run.latencyMs)))
            if ort { cells.append(num(run.ortLatencyMs.map(ms) ?? "—")) }
            cells += [num(fixed(run.seconds, 1)), "<td>\(esc(run.output))</td>", "<td><code>\(esc(run.command))</code></td>"]
            out += "<tr>" + cells.joined() + "</tr>\n"
        }
        out += "</tbody>\n</table>\n"
        if let skipped = r.skipped, !skipped.isEmpty {
            out += "<p class=\"note\">Not run, the target is beyond what the model's prunable groups allow:</p>\n<ul class=\"skipped\">\n"
            out += skipped.map { "<li><code>\(esc($0.pipeline))</code>: \(esc($0.reason))</li>\n" }.joined()
            out += "</ul>\n"
        }
        return out
    }

    private static func widths(_ r: SweepReport, _ colours: Colours) -> String {
        var out = "<h2>Pruned width per layer</h2>\n"
        let measured = r.runs.filter { !$0.widths.isEmpty }
        // A few runs are all shown; otherwise each template's strongest pruning stands for it.
        let shown = measured.count <= 6 ? measured : colours.templates.compactMap { t in
            measured.filter { $0.template == t }.max { $0.amount < $1.amount }
        }
        guard !shown.isEmpty else { return out + "<p>No run recorded its layer widths.</p>\n" }
        out += "<p>Output features of each layer: grey the original, coloured what the run kept.</p>\n"
        for (i, run) in shown.enumerated() {
            out += "<h3><span class=\"swatch\" style=\"background:\(colours[run.template])\"></span>\(esc(run.pipeline))</h3>\n"
            let bars = HBars(labels: run.widths.map(\.layer), maximum: Double(run.widths.map(\.before).max() ?? 0))
            out += bars.open(id: "widths-\(i + 1)", label: "layer widths after \(run.pipeline)")
            out += bars.axes(xTitle: "output features", yTitle: "layer")
            for (j, w) in run.widths.enumerated() {
                let data = "data-layer=\"\(esc(w.layer))\" data-before=\"\(w.before)\" data-after=\"\(w.after)\""
                let tip = "<title>\(esc(w.layer)): \(TextTable.grouped(w.after)) of \(TextTable.grouped(w.before)) kept</title>"
                out += bars.bar(j, Double(w.before), fill: "#c8c8c8", attributes: "class=\"before\" " + data, tip: tip)
                out += bars.bar(j, Double(w.after), thin: true, fill: colours[run.template], attributes: "class=\"after\" " + data, tip: tip)
                out += bars.value(j, bars.length(Double(w.before)), "\(TextTable.grouped(w.after)) / \(TextTable.grouped(w.before))")
            }
            out += "</svg>\n"
        }
        return out
    }

    // MARK: Charts

    /// A fixed colour per template, in the order given (templates only runs name come last).
    private struct Colours {
        static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
        let templates: [String]

        init(_ r: SweepReport) {
            var seen: [String] = []
            for t in r.templates + r.runs.map(\.template) where !seen.contains(t) { seen.append(t) }
            templates = seen
        }

        subscript(template: String) -> String {
            Self.palette[(templates.firstIndex(of: template) ?? 0) % Self.palette.count]
        }
    }

    /// A value range with round ticks; a degenerate range (one value, or none) is widened so that
    /// every value maps to a finite position.
    private struct Axis {
        let lo: Double, hi: Double, ticks: [Double], decimals: Int

        init(_ values: [Double], fromZero: Bool = false) {
            let finite = values.filter(\.isFinite) + (fromZero ? [0] : [])
            var lo = finite.min() ?? 0, hi = finite.max() ?? 1
            if !(hi - lo > 1e-12 * max(abs(lo), abs(hi), 1)) {
                if lo == 0 { hi = 1 } else { (lo, hi) = (lo - abs(lo) * 0.1, hi + abs(hi) * 0.1) }
            }
            let raw = (hi - lo) / 5
            let magnitude = pow(10, floor(log10(raw)))
            let f = raw / magnitude
            let step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude
            let first = floor(lo / step + 1e-9) * step, last = ceil(hi / step - 1e-9) * step
            let n = Int(((last - first) / step).rounded())
            (self.lo, self.hi) = (first, last)
            ticks = (0 ... n).map { first + Double($0) * step }
            decimals = max(0, Int(-floor(log10(step) + 1e-9)))
        }

        func label(_ t: Double) -> String {
            let s = String(format: "%.\(decimals)f", t)
            return Double(s) == 0 ? String(format: "%.\(decimals)f", 0.0) : s  // no "-0.0"
        }
    }

    /// A chart's size and plot margins, in SVG units.
    private struct Frame {
        let width: Double, height: Double, left: Double, right: Double, top: Double, bottom: Double

        func x(_ v: Double, _ a: Axis) -> Double { left + (v - a.lo) / (a.hi - a.lo) * (width - left - right) }
        func y(_ v: Double, _ a: Axis) -> Double { height - bottom - (v - a.lo) / (a.hi - a.lo) * (height - top - bottom) }

        func open(id: String, label: String) -> String {
            "<svg id=\"\(id)\" class=\"chart\" role=\"img\" aria-label=\"\(esc(label))\" viewBox=\"0 0 \(f1(width)) \(f1(height))\""
                + " width=\"\(f1(width))\" height=\"\(f1(height))\">\n"
        }

        /// Axis lines, gridlines with tick labels (`y` may be nil: category rows label themselves)
        /// and the two axis titles.
        func axes(_ ax: Axis, _ ay: Axis?, xTitle: String, yTitle: String) -> String {
            let (x0, x1, y0, y1) = (left, width - right, height - bottom, top)
            var out = "<g class=\"axes\">\n"
            for t in ax.ticks {
                let p = f1(x(t, ax))
                out += "<line class=\"grid\" stroke=\"#e6e6e6\" x1=\"\(p)\" y1=\"\(f1(y1))\" x2=\"\(p)\" y2=\"\(f1(y0))\"/>"
                out += "<text x=\"\(p)\" y=\"\(f1(y0 + 16))\" text-anchor=\"middle\">\(ax.label(t))</text>\n"
            }
            for t in ay?.ticks ?? [] {
                guard let ay else { break }
                let p = f1(y(t, ay))
                out += "<line class=\"grid\" stroke=\"#e6e6e6\" x1=\"\(f1(x0))\" y1=\"\(p)\" x2=\"\(f1(x1))\" y2=\"\(p)\"/>"
                out += "<text x=\"\(f1(x0 - 6))\" y=\"\(p)\" dy=\"0.32em\" text-anchor=\"end\">\(ay.label(t))</text>\n"
            }
            out += "<line class=\"axis\" stroke=\"#444\" x1=\"\(f1(x0))\" y1=\"\(f1(y0))\" x2=\"\(f1(x1))\" y2=\"\(f1(y0))\"/>\n"
            out += "<line class=\"axis\" stroke=\"#444\" x1=\"\(f1(x0))\" y1=\"\(f1(y0))\" x2=\"\(f1(x0))\" y2=\"\(f1(y1))\"/>\n"
            out += "<text class=\"title\" x=\"\(f1((x0 + x1) / 2))\" y=\"\(f1(height - 8))\" text-anchor=\"middle\">\(esc(xTitle))</text>\n"
            let cy = f1((y0 + y1) / 2)
            out += "<text class=\"title\" x=\"14\" y=\"\(cy)\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(cy))\">\(esc(yTitle))</text>\n"
            return out + "</g>\n"
        }
    }

    /// A horizontal bar chart: one labelled row per category, lengths on a shared axis from zero.
    private struct HBars {
        static let row = 22.0
        let frame: Frame, axis: Axis, labels: [String]

        init(labels: [String], maximum: Double) {
            self.labels = labels.map { $0.count > 40 ? String($0.prefix(39)) + "…" : $0 }
            let widest = Double(self.labels.map(\.count).max() ?? 0)
            let left = min(300, 34 + 6.6 * widest)
            frame = Frame(width: 720, height: 16 + Self.row * Double(labels.count) + 52, left: left, right: 110, top: 16, bottom: 52)
            axis = Axis([maximum], fromZero: true)
        }

        func rowY(_ i: Int) -> Double { frame.top + Self.row * Double(i) + 4 }
        func length(_ v: Double) -> Double { v.isFinite ? max(0, frame.x(v, axis) - frame.left) : 0 }
        func open(id: String, label: String) -> String { frame.open(id: id, label: label) }

        func axes(xTitle: String, yTitle: String) -> String {
            var out = frame.axes(axis, nil, xTitle: xTitle, yTitle: yTitle)
            for (i, l) in labels.enumerated() {
                out += "<text class=\"label\" x=\"\(f1(frame.left - 6))\" y=\"\(f1(rowY(i) + 7))\" dy=\"0.32em\" text-anchor=\"end\">\(esc(l))</text>\n"
            }
            return out
        }

        /// Row `i`'s bar of `value` (a thin one sits inside a full one), with its data attributes
        /// and hover text.
        func bar(_ i: Int, _ value: Double, thin: Bool = false, fill: String, attributes: String, tip: String) -> String {
            "<rect x=\"\(f1(frame.left))\" y=\"\(f1(rowY(i) + (thin ? 3 : 0)))\" width=\"\(f1(length(value)))\" height=\"\(thin ? 8 : 14)\""
                + " fill=\"\(fill)\" \(attributes)>\(tip)</rect>\n"
        }

        /// The figure at the end of row `i`'s bar of length `w`.
        func value(_ i: Int, _ w: Double, _ text: String) -> String {
            "<text class=\"value\" x=\"\(f1(frame.left + w + 4))\" y=\"\(f1(rowY(i) + 7))\" dy=\"0.32em\">\(esc(text))</text>\n"
        }
    }

    // MARK: Text

    /// Text safe in element content and in quoted attribute values.
    static func esc(_ s: String) -> String { Format.xml(s) }

    private static func f1(_ v: Double) -> String { String(format: "%.1f", v) }
    private static func fixed(_ v: Double, _ digits: Int) -> String { v.isFinite ? String(format: "%.\(digits)f", v) : String(describing: v) }
    private static func sig(_ v: Double) -> String { v.isFinite ? String(format: "%.4g", v) : String(describing: v) }
    private static func number(_ v: Double) -> String { v.isFinite ? String(format: "%g", v) : String(describing: v) }
    private static func pct(_ v: Double) -> String { v.isFinite ? String(format: "%.1f%%", v * 100) : String(describing: v) }
    private static func ms(_ v: Double) -> String { fixed(v, 2) + " ms" }

    private static let style = """

    body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #222;
           max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
    h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; } h3 { font-size: 1em; }
    .summary { background: #f6f6f6; padding: 0.6em 0.8em; border-radius: 4px; }
    .note { color: #8a5a00; }
    svg.chart { max-width: 100%; height: auto; display: block; font-size: 12px; }
    svg text { fill: #333; } svg .title { font-size: 13px; fill: #000; }
    svg circle:hover, svg rect:hover { opacity: 0.7; }
    ul.legend { list-style: none; padding: 0; margin: 0.3em 0 1em; } ul.legend li { margin: 0.15em 0; }
    .swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; border-radius: 2px; vertical-align: baseline; }
    table { border-collapse: collapse; font-size: 13px; width: 100%; }
    th, td { border-bottom: 1px solid #e4e4e4; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
    th { background: #f2f2f2; } td.num { text-align: right; white-space: nowrap; } tr.baseline { background: #fafafa; font-style: italic; }
    .removed { color: #777; } code { font-size: 12px; word-break: break-all; }

    """
}
