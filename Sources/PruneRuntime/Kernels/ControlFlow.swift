import Foundation
import PruneIR

// Control flow: If, Loop, Scan. The kernels run their body graphs through
// `KernelContext.run(subgraph:inputs:)`, which resolves values the bodies read from enclosing
// graphs; they only move arrays between iterations and stack scan outputs.
func registerControlFlowKernels(_ r: inout KernelRegistry) {
    // If-1/11/13/16/19/21/23 differ only in the types allowed for outputs.
    r.register("If", since: 1) { info in
        guard let thenBranch = try info.attribute("then_branch", as: Graph.self),
              let elseBranch = try info.attribute("else_branch", as: Graph.self)
        else { throw KernelError("If needs then_branch and else_branch") }
        return IfKernel(thenBranch: thenBranch, elseBranch: elseBranch)
    }
    // Loop-1/11/13/16/19/21/23: same semantics (later versions widen the types).
    r.register("Loop", since: 1) { info in
        guard let body = try info.attribute("body", as: Graph.self) else { throw KernelError("Loop needs a body") }
        return try LoopKernel(body: body, node: info.node)
    }
    // Scan-8 has a batch axis and sequence_lens; Scan-9 and later scan along chosen axes.
    r.register("Scan", since: 8) { info in
        guard let body = try info.attribute("body", as: Graph.self) else { throw KernelError("Scan needs a body") }
        return try ScanKernel(batched: true, body: body, info: info)
    }
    r.register("Scan", since: 9) { info in
        guard let body = try info.attribute("body", as: Graph.self) else { throw KernelError("Scan needs a body") }
        return try ScanKernel(batched: false, body: body, info: info)
    }
}

/// Runs one of two branch graphs depending on a boolean scalar.
final class IfKernel: Kernel {
    let thenBranch: Graph
    let elseBranch: Graph

    init(thenBranch: Graph, elseBranch: Graph) {
        self.thenBranch = thenBranch
        self.elseBranch = elseBranch
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let cond = try inputs.required(0)
        guard cond.count == 1 else { throw KernelError("If condition must hold one element, it has shape \(cond.shape)") }
        let branch = cond.element(at: 0) != 0 ? thenBranch : elseBranch
        return try context.run(subgraph: branch, inputs: []).map { $0 }
    }
}

/// The generic loop: trip count `M` and/or a condition, loop-carried values, and scan outputs
/// stacked along a new first axis.
final class LoopKernel: Kernel {
    let body: Graph
    /// Number of loop-carried values.
    let carried: Int
    /// Number of scan outputs.
    let scans: Int

    init(body: Graph, node: Node) throws {
        self.body = body
        carried = max(0, node.inputs.count - 2)
        guard body.inputs.count == carried + 2 else {
            throw KernelError("Loop body has \(body.inputs.count) inputs, expected \(carried + 2) (iteration, cond, \(carried) carried)")
        }
        scans = body.outputs.count - 1 - carried
        guard scans >= 0 else {
            throw KernelError("Loop body has \(body.outputs.count) outputs, expected at least \(carried + 1)")
        }
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let maxTrips: Int? = try inputs.optional(0).map { m in
            guard m.count == 1 else { throw KernelError("Loop trip count must be a scalar, it has shape \(m.shape)") }
            return m.ints()[0]
        }
        var cond = try inputs.optional(1).map { c -> Bool in
            guard c.count == 1 else { throw KernelError("Loop condition must be a scalar, it has shape \(c.shape)") }
            return c.element(at: 0) != 0
        } ?? true
        var state: [NDArray?] = (0..<carried).map { inputs.optional(2 + $0) }
        var scanParts = [[NDArray]](repeating: [], count: scans)
        var trips = 0
        while cond, maxTrips.map({ trips < $0 }) ?? true {
            let iteration = context.allocate(.int64, [])
            iteration.pointer(as: Int64.self).pointee = Int64(trips)
            let condIn = context.allocate(.bool, [])
            condIn.pointer(as: Bool.self).pointee = cond
            let outs = try context.run(subgraph: body, inputs: [iteration, condIn] + state)
            guard outs.count == 1 + carried + scans else {
                throw KernelError("Loop body returned \(outs.count) values, expected \(1 + carried + scans)")
            }
            guard outs[0].count == 1 else { throw KernelError("Loop body condition must be a scalar, it has shape \(outs[0].shape)") }
            cond = outs[0].element(at: 0) != 0
            for k in 0..<carried { state[k] = outs[1 + k] }
            for k in 0..<scans { scanParts[k].append(outs[1 + carried + k]) }
            trips += 1
        }
        var results: [NDArray?] = state
        for k in 0..<scans {
            if scanParts[k].isEmpty {
                results.append(emptyScanOutput(body.outputs[1 + carried + k], context))
            } else {
                results.append(try scanStack(scanParts[k], axis: 0, reverse: false, context))
            }
        }
        return results
    }
}

/// An empty scan output (zero iterations): shape `[0] + element shape` when the body declares it.
private func emptyScanOutput(_ v: Value, _ context: KernelContext) -> NDArray {
    let dtype = v.type?.elementType ?? .float
    let dims = v.type?.shape?.dims.map { $0.value ?? 0 } ?? []
    return context.allocate(NDArray.supports(dtype) ? dtype : .float, [0] + dims)
}

/// Bytes per element (booleans are one byte).
@inline(__always)
private func scanElementSize(_ dtype: DType) -> Int { NDArray.byteCount(dtype, 1) }

/// Slice `index` of `a` along `axis`, without that axis. Along axis 0 this is a view.
private func scanSlice(_ a: NDArray, axis: Int, index: Int, _ context: KernelContext) -> NDArray {
    var shape = a.shape
    let n = shape.remove(at: axis)
    let inner = shape[axis...].reduce(1, *)
    let es = scanElementSize(a.dtype)
    let outer = a.shape[..<axis].reduce(1, *)
    if outer == 1 {
        return NDArray(dtype: a.dtype, shape: shape, storage: a.storage, byteOffset: a.byteOffset + index * inner * es)
    }
    let out = context.allocate(a.dtype, shape)
    let rowBytes = inner * es
    let src = a.rawPointer, dst = out.rawPointer
    for o in 0..<outer {
        dst.advanced(by: o * rowBytes).copyMemory(from: src.advanced(by: (o * n + index) * rowBytes), byteCount: rowBytes)
    }
    return out
}

/// Stacks same-shaped `parts` along a new `axis` (in reverse order when `reverse`).
private func scanStack(_ parts: [NDArray], axis: Int, reverse: Bool, _ context: KernelContext) throws -> NDArray {
    let first = parts[0]
    for p in parts where p.shape != first.shape || p.dtype != first.dtype {
        throw KernelError("scan outputs differ between iterations: \(first.dtype)\(first.shape) and \(p.dtype)\(p.shape)")
    }
    let n = parts.count
    var shape = first.shape
    shape.insert(n, at: axis)
    let out = context.allocate(first.dtype, shape)
    let es = scanElementSize(first.dtype)
    let rowBytes = first.shape[axis...].reduce(1, *) * es
    let outer = first.shape[..<axis].reduce(1, *)
    let dst = out.rawPointer
    for (t, p) in parts.enumerated() {
        let pos = reverse ? n - 1 - t : t
        let src = p.rawPointer
        for o in 0..<outer where rowBytes > 0 {
            dst.advanced(by: (o * n + pos) * rowBytes).copyMemory(from: src.advanced(by: o * rowBytes), byteCount: rowBytes)
        }
    }
    return out
}

/// Scan: runs the body once per slice of the scan inputs, threading state values through.
final class ScanKernel: Kernel {
    let body: Graph
    /// Scan-8: a leading batch axis on every input and output, and an optional `sequence_lens`.
    let batched: Bool
    let scanInputs: Int
    let inputAxes: [Int]
    let inputReverse: [Bool]
    let outputAxes: [Int]
    let outputReverse: [Bool]

    init(batched: Bool, body: Graph, info: KernelBuildInfo) throws {
        self.body = body
        self.batched = batched
        let m: Int = try info.attribute("num_scan_inputs", default: 0)
        guard m > 0 else { throw KernelError("Scan needs num_scan_inputs > 0") }
        scanInputs = m
        let states = body.inputs.count - m
        guard states >= 0 else { throw KernelError("Scan body has fewer inputs than num_scan_inputs") }
        let k = body.outputs.count - states
        guard k >= 0 else { throw KernelError("Scan body has fewer outputs than state inputs") }
        if batched {
            inputAxes = Array(repeating: 0, count: m)
            let dirs: [Int] = try info.attribute("directions", default: [])
            inputReverse = (0..<m).map { $0 < dirs.count && dirs[$0] != 0 }
            outputAxes = Array(repeating: 0, count: k)
            outputReverse = Array(repeating: false, count: k)
        } else {
            inputAxes = try info.attribute("scan_input_axes", default: Array(repeating: 0, count: m))
            let dirs: [Int] = try info.attribute("scan_input_directions", default: [])
            inputReverse = (0..<m).map { $0 < dirs.count && dirs[$0] != 0 }
            outputAxes = try info.attribute("scan_output_axes", default: Array(repeating: 0, count: k))
            let outDirs: [Int] = try info.attribute("scan_output_directions", default: [])
            outputReverse = (0..<k).map { $0 < outDirs.count && outDirs[$0] != 0 }
            guard inputAxes.count == m, outputAxes.count == k else {
                throw KernelError("Scan axes attributes have the wrong length")
            }
        }
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        if !batched {
            let values = try (0..<inputs.count).map { try inputs.required($0) }
            return try scan(values, context)
        }
        // Scan-8: run the Scan-9 loop per batch entry, then stack the results along the batch axis.
        let values = try (1..<inputs.count).map { try inputs.required($0) }
        guard let batch = values.first?.shape.first else { throw KernelError("Scan-8 inputs need a batch axis") }
        if let lens = inputs.optional(0) {
            let scanLength = values[values.count - scanInputs].shape.count > 1 ? values[values.count - scanInputs].shape[1] : 0
            if lens.ints().contains(where: { $0 != scanLength }) {
                throw KernelError("Scan-8 with sequence_lens shorter than the sequence is not supported")
            }
        }
        var perBatch: [[NDArray]] = []
        for b in 0..<batch {
            perBatch.append(try scan(values.map { scanSlice($0, axis: 0, index: b, context) }, context))
        }
        guard let count = perBatch.first?.count else { return [] }
        return try (0..<count).map { k in try scanStack(perBatch.map { $0[k] }, axis: 0, reverse: false, context) }
    }

    /// The Scan-9 semantics on `values` (states, then scan inputs).
    private func scan(_ values: [NDArray], _ context: KernelContext) throws -> [NDArray] {
        let states = values.count - scanInputs
        guard states >= 0, body.inputs.count == values.count else {
            throw KernelError("Scan got \(values.count) inputs, its body takes \(body.inputs.count)")
        }
        var axes: [Int] = []
        var length = -1
        for j in 0..<scanInputs {
            let a = values[states + j]
            let axis = inputAxes[j] < 0 ? inputAxes[j] + a.rank : inputAxes[j]
            guard axis >= 0, axis < a.rank else { throw KernelError("scan_input_axes[\(j)] = \(inputAxes[j]) is out of range for rank \(a.rank)") }
            if length >= 0, a.shape[axis] != length {
                throw KernelError("scan inputs have different lengths (\(length) and \(a.shape[axis]))")
            }
            length = a.shape[axis]
            axes.append(axis)
        }
        var state = Array(values[..<states])
        let k = body.outputs.count - states
        var parts = [[NDArray]](repeating: [], count: k)
        for t in 0..<max(length, 0) {
            var feeds = state
            for j in 0..<scanInputs {
                let a = values[states + j]
                let index = inputReverse[j] ? a.shape[axes[j]] - 1 - t : t
                feeds.append(scanSlice(a, axis: axes[j], index: index, context))
            }
            let outs = try context.run(subgraph: body, inputs: feeds)
            guard outs.count == states + k else { throw KernelError("Scan body returned \(outs.count) values, expected \(states + k)") }
            state = Array(outs[..<states])
            for i in 0..<k { parts[i].append(outs[states + i]) }
        }
        var results = state
        for i in 0..<k {
            if parts[i].isEmpty {
                results.append(emptyScanOutput(body.outputs[states + i], context))
                continue
            }
            let rank = parts[i][0].rank + 1
            let axis = outputAxes[i] < 0 ? outputAxes[i] + rank : outputAxes[i]
            guard axis >= 0, axis < rank else { throw KernelError("scan_output_axes[\(i)] = \(outputAxes[i]) is out of range for rank \(rank)") }
            results.append(try scanStack(parts[i], axis: axis, reverse: outputReverse[i], context))
        }
        return results
    }
}
