import Foundation
import PruneIR
import PruneKit

/// Where `distill` compares intermediate features of teacher and student (BK-SDM's feature-level
/// distillation, one point per surviving block).
///
/// The rule: a feature point is the output of one of the teacher's residual blocks (the `Add`
/// that joins skip and branch, found by ``ResidualBlock/find(in:)``) that the student still
/// computes under the same value name and, where both shapes are known, the same shape. After
/// `depth` the removed blocks' outputs are gone and the surviving ones keep their names; after
/// `fold-masks` the residual stream keeps its width, so every block output still matches. Graph
/// outputs are left out (they are distilled as outputs). Points whose arrays turn out to differ
/// in shape at run time are dropped with a note.
public enum FeatureMatching {
    /// The matched value names, in the teacher's graph order.
    public static func points(teacher: Model, student: Model) -> [String] {
        let outputs = Set(teacher.graph.outputs.map(\.name)).union(student.graph.outputs.map(\.name))
        var produced: [String: Value] = [:]
        for node in student.graph.nodes {
            for v in node.outputs where !v.isOmitted { produced[v.name] = v }
        }
        var seen = Set<String>()
        var out: [String] = []
        for block in ResidualBlock.find(in: teacher) {
            guard let t = block.add.outputs.first, !t.isOmitted, !outputs.contains(t.name), !seen.contains(t.name),
                let s = produced[t.name], sameShape(t, s)
            else { continue }
            seen.insert(t.name)
            out.append(t.name)
        }
        return out
    }

    /// Whether two values' shapes agree where both are known (and their element types, when known).
    static func sameShape(_ a: Value, _ b: Value) -> Bool {
        if let ta = a.type?.elementType, let tb = b.type?.elementType, ta != tb { return false }
        guard let sa = a.type?.shape, let sb = b.type?.shape else { return true }
        guard sa.rank == sb.rank else { return false }
        return zip(sa.dims, sb.dims).allSatisfy { x, y in x.value == nil || y.value == nil || x.value == y.value }
    }
}
