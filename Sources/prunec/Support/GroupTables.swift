import Foundation
import PruneIR
import PruneKit

/// `prunec inspect --groups`: the pruning groups, their size and cost, and why some are blocked.
enum GroupTables {
    static func rows(_ a: PruningGroups) -> [[String: Any]] {
        var rows: [[String: Any]] = []
        for g in (a.groups + a.blocked).sorted(by: { $0.id < $1.id }) {
            var r: [String: Any] = [
                "id": g.id, "kind": g.kind.rawValue, "name": g.name, "units": g.unitCount, "params": g.params,
                "macs": Int(g.macs.rounded()), "prunable": g.isPrunable, "gates": g.gateSites.count,
            ]
            if let reason = g.blockedReason { r["blocked"] = reason }
            if let h = g.queryHeads { r["query_heads"] = h }
            if let m = g.maskValues { r["masked_units"] = m.filter { $0 == 0 }.count }
            rows.append(r)
        }
        for b in a.blocks {
            rows.append(["kind": "blocks", "name": b.name, "units": 1, "params": b.params, "macs": b.macs, "prunable": true, "nodes": b.branch.count])
        }
        return rows
    }

    /// "9 heads" or, for grouped-query attention, "3 kv groups of 3 heads".
    static func units(_ g: PruningGroup) -> String {
        if g.kind == .queryHeads { return "\(g.unitCount) query heads" }
        guard g.kind == .heads, let h = g.queryHeads else { return String(g.unitCount) }
        return g.unitsAreKVGroups ? "\(g.unitCount) kv groups of \(h / g.unitCount) heads" : "\(g.unitCount) heads"
    }

    static func render(_ a: PruningGroups) -> String {
        var out = ""
        let prunable = a.groups
        out += "pruning groups: \(prunable.count) prunable (\(GroupKind.allCases.compactMap { k in let n = prunable.filter { $0.kind == k }.count; return n > 0 ? "\(n) \(k)" : nil }.joined(separator: ", "))), \(a.blocked.count) blocked, \(a.blocks.count) residual blocks\n\n"
        if !prunable.isEmpty {
            out += TextTable.table(
                ["group", "kind", "units", "params", "MACs", "gates", "first layer"],
                prunable.map { g in
                    [String(g.id), g.kind.rawValue, units(g) + (g.maskValues.map { " (\($0.filter { $0 == 0 }.count) masked)" } ?? ""),
                     TextTable.grouped(g.params), TextTable.grouped(Int(g.macs.rounded())), String(g.gateSites.count), g.name]
                }, rightAligned: [0, 2, 3, 4, 5])
            out += "\n"
        }
        if !a.blocks.isEmpty {
            out += TextTable.table(
                ["residual block", "nodes", "params", "MACs"],
                a.blocks.map { [$0.name, String($0.branch.count), TextTable.grouped($0.params), TextTable.grouped($0.macs)] },
                rightAligned: [1, 2, 3])
            out += "\n"
        }
        if !a.blocked.isEmpty {
            out += TextTable.table(
                ["blocked", "kind", "units", "first layer", "reason"],
                a.blocked.map { [String($0.id), $0.kind.rawValue, units($0), $0.name, $0.blockedReason ?? ""] },
                rightAligned: [0, 2])
        }
        return out
    }
}
