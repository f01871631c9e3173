import ArgumentParser
import Foundation
import PruneIR
import PruneRuntime

/// `--shape name=1x3x224x224` options, shared by the subcommands that bind input shapes.
enum InputShapes {
    /// Parses `name=DIMS` specs (numbers joined by `x`). Shapes of inputs that will be
    /// `synthesized` must fit in memory (8 bytes an element, the widest input type); shapes only
    /// used for counting MACs (inspect, diff) just must not overflow.
    static func parse(_ specs: [String], synthesized: Bool = true) throws -> [String: Shape] {
        var out: [String: Shape] = [:]
        for s in specs {
            let parts = s.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--shape expects name=DIMS such as input=1x3x224x224, got '\(s)'")
            }
            var dims: [Dim] = []
            for d in parts[1].split(separator: "x", omittingEmptySubsequences: false) {
                if let v = Int(d), v >= 0 {
                    dims.append(.known(v))
                } else {
                    throw ValidationError("--shape \(s): '\(d)' is not a dimension (write numbers joined by 'x')")
                }
            }
            let values = dims.map { $0.value ?? 0 }
            if values.reduce((1, false), { acc, d in acc.1 ? acc : acc.0.multipliedReportingOverflow(by: d) }).1 {
                throw ValidationError("--shape \(s): the dimensions multiply past the largest array size")
            }
            if synthesized {
                do {
                    _ = try NDArray.checkedByteCount(.double, values)
                } catch {
                    throw ValidationError("--shape \(s): an input of this shape does not fit in memory")
                }
            }
            out[String(parts[0])] = Shape(dims)
        }
        return out
    }
}
