// NumPy-style (multidirectional) broadcasting, shared by every kernel that broadcasts.
public enum Broadcast {
    /// The broadcast of two shapes (numpy rules), as ``shape(_:)-([[Int]])`` computes it for two.
    /// Runs for every broadcasting op of every run, so it builds no temporary arrays.
    @inline(__always)
    public static func shape(_ a: [Int], _ b: [Int]) throws -> [Int] {
        if a == b { return a }
        let (long, short) = a.count >= b.count ? (a, b) : (b, a)
        let off = long.count - short.count
        var out = long
        for i in 0..<short.count {
            let o = long[off + i], d = short[i]
            if o == d || d == 1 { continue }
            if o == 1 { out[off + i] = d; continue }
            throw KernelError("shapes \(a), \(b) do not broadcast")
        }
        return out
    }

    /// The broadcast shape of several shapes, or a ``KernelError`` naming them when incompatible.
    public static func shape(_ shapes: [[Int]]) throws -> [Int] {
        if shapes.count == 2 { return try shape(shapes[0], shapes[1]) }
        var rank = 0
        for s in shapes where s.count > rank { rank = s.count }
        var out = [Int](repeating: 1, count: rank)
        for s in shapes {
            let off = rank - s.count
            for (i, d) in s.enumerated() {
                let o = out[off + i]
                if o == d || d == 1 { continue }
                if o == 1 { out[off + i] = d; continue }
                throw KernelError("shapes \(shapes.map { "\($0)" }.joined(separator: ", ")) do not broadcast")
            }
        }
        return out
    }

    /// Element strides to read an array of `shape` as if it had `target` shape: 0 along broadcast
    /// (and prepended) dimensions. `target` must be a broadcast of `shape`.
    public static func strides(of shape: [Int], to target: [Int]) -> [Int] {
        let off = target.count - shape.count
        var out = [Int](repeating: 0, count: target.count)
        var step = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            out[off + i] = shape[i] == 1 && target[off + i] != 1 ? 0 : step
            step *= shape[i]
        }
        return out
    }

    /// For every index of `shape` in row-major order, `Σ index[d] · strides[d]`: where each element
    /// of a broadcast read lands (`strides` from ``strides(of:to:)``).
    public static func offsets(shape: [Int], strides: [Int]) -> [Int] {
        let n = shape.reduce(1, *)
        guard n > 0 else { return [] }
        var out = [Int](repeating: 0, count: n)
        // Each index is a "row" of one element: the row walk's odometer gives its offset.
        Layout.forEachRow(0..<n, shape: shape + [1], strides: strides + [0]) { i, offset in out[i] = offset }
        return out
    }

    /// Contiguous row-major strides of `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var out = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            out[i] = s
            s *= shape[i]
        }
        return out
    }

    /// Calls `body(outputIndex, offsets)` for every element of `shape` in row-major order, with
    /// `offsets[k]` the element offset into operand `k` given its `strides[k]`.
    ///
    /// The innermost dimension is passed as a run: `body(start, offsets, length, innerStrides)`
    /// so callers can write a tight loop over it.
    public static func forEachRun(
        shape: [Int], strides: [[Int]],
        _ body: (_ outStart: Int, _ offsets: [Int], _ length: Int, _ innerStrides: [Int]) -> Void
    ) {
        let rank = shape.count
        let total = shape.reduce(1, *)
        guard total > 0 else { return }
        if rank == 0 {
            body(0, [Int](repeating: 0, count: strides.count), 1, [Int](repeating: 0, count: strides.count))
            return
        }
        let inner = shape[rank - 1]
        let innerStrides = strides.map { $0[rank - 1] }
        var index = [Int](repeating: 0, count: rank - 1)
        var offsets = [Int](repeating: 0, count: strides.count)
        var out = 0
        while out < total {
            body(out, offsets, inner, innerStrides)
            out += inner
            // Advance the outer index like an odometer, updating operand offsets.
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                for k in 0..<strides.count { offsets[k] += strides[k][d] }
                if index[d] < shape[d] { break }
                for k in 0..<strides.count { offsets[k] -= strides[k][d] * shape[d] }
                index[d] = 0
                d -= 1
            }
        }
    }
}
