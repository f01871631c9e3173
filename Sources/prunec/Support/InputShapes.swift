import ArgumentParser
import Foundation
import PruneIR

/// `--shape name=1x3x224x224` options, shared by the subcommands that bind input shapes.
enum InputShapes {
    /// Parses `name=DIMS` specs (numbers joined by `x`).
    static func parse(_ specs: [String]) throws -> [String: Shape] {
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
            out[String(parts[0])] = Shape(dims)
        }
        return out
    }
}
