import Foundation

/// Plain-text tables for the reports on stdout (`prunec inspect`, `diff`, `check`, the compile report).
public enum TextTable {
    /// `1,234,567`: digits grouped by thousands.
    public static func grouped(_ n: Int) -> String {
        let s = String(n.magnitude)
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// Columns padded to their widest cell, two spaces apart, the header first; `rightAligned`
    /// columns (numbers) are padded on the left.
    public static func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.indices.map { i in
                let pad = String(repeating: " ", count: widths[i] - r[i].count)
                return rightAligned.contains(i) ? pad + r[i] : r[i] + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        return all.map(line).joined(separator: "\n") + "\n"
    }
}

/// Human number formats.
public enum Format {
    /// `1.5 MiB`-style sizes.
    public static func bytes(_ b: Int) -> String {
        let (v, unit) = scaled(b, by: 1024, units: ["B", "KiB", "MiB", "GiB", "TiB"])
        return unit == "B" ? "\(b) B" : String(format: "%.1f %@", v, unit)
    }

    /// `21.94 M`-style counts.
    public static func si(_ n: Int) -> String {
        let (v, unit) = scaled(n, by: 1000, units: ["", "K", "M", "G", "T"])
        return unit.isEmpty ? "\(n)" : String(format: "%.2f %@", v, unit)
    }

    /// Text safe in XML (and well-formed HTML) attributes and content: the five markup characters
    /// as entities, tab and newlines as character references, other control characters dropped
    /// (XML 1.0 does not allow them at all).
    public static func xml(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out += "&#\(u.value);"
            default:
                if u.value >= 0x20 { out.unicodeScalars.append(u) }
            }
        }
        return out
    }

    private static func scaled(_ n: Int, by base: Double, units: [String]) -> (Double, String) {
        var v = Double(n)
        var u = 0
        while v >= base && u < units.count - 1 {
            v /= base
            u += 1
        }
        return (v, units[u])
    }
}
