import PruneIR

/// Where one axis goes through a reshape-like op (Reshape, Flatten, Squeeze, Unsqueeze), found by
/// matching the products of the input and output dims (symbols such as `batch` included).
enum ReshapeAxisMap: Equatable {
    /// The axis keeps its size, at another position.
    case same(Int)
    /// The axis splits; the outermost output axis of the split carries it, each of its indices
    /// covering `factor` consecutive input indices (`[b, s, 64] → [b, s, 4, 16]`: axis 2, factor 16).
    case split(Int, factor: Int)
    /// The axis is the outermost of several merged into one output axis; each input index covers
    /// `factor` consecutive output indices (`[b, s, 4, 16] → [b, s, 64]`: axis 2, factor 16).
    case merge(Int, factor: Int)

    /// A product of dims: a number times symbols.
    struct Product: Equatable {
        var number = 1
        var symbols: [String] = []

        mutating func multiply(_ d: Dim) -> Bool {
            switch d {
            case .known(let v): number *= v
            case .symbol(let s):
                // Shape inference writes exact products as `4*batch`.
                for part in s.split(separator: "*") {
                    if let v = Int(part) { number *= v } else { symbols.append(String(part)) }
                }
                symbols.sort()
            case .unknown: return false
            }
            return true
        }
    }

    /// Prefix products `p[i] = dims[0] * ... * dims[i-1]`, or `nil` when a dim is unknown.
    static func prefixes(_ dims: [Dim]) -> [Product]? {
        var out = [Product()]
        var p = Product()
        for d in dims {
            guard p.multiply(d) else { return nil }
            out.append(p)
        }
        return out
    }

    /// Maps `axis` of a tensor shaped `from` into the tensor shaped `to`.
    ///
    /// Dims are matched from the front; when that fails (a leading dim the exporter flattened to
    /// `-1`, as GPT-2's Conv1D writes `view(-1, n)`), an axis that stays whole is matched from the back.
    static func map(from: [Dim], to: [Dim], axis: Int) -> ReshapeAxisMap? {
        if let m = mapFromFront(from: from, to: to, axis: axis) { return m }
        return mapFromBack(from: from, to: to, axis: axis)
    }

    /// Prefix products up to the first unknown dim.
    static func partialPrefixes(_ dims: [Dim]) -> [Product] {
        var out = [Product()]
        var p = Product()
        for d in dims {
            guard p.multiply(d) else { break }
            out.append(p)
        }
        return out
    }

    /// The same matching on products taken from the last axis, for shapes whose leading dims are
    /// unknown (`[b, s, 4, 16] → [-1, 64]`).
    private static func mapFromBack(from: [Dim], to: [Dim], axis: Int) -> ReshapeAxisMap? {
        guard axis >= 0, axis < from.count, let n = from[axis].value, n > 1 else { return nil }
        let pf = partialPrefixes(from.reversed()), pt = partialPrefixes(to.reversed())
        let ra = from.count - 1 - axis
        guard ra + 1 < pf.count else { return nil }
        if let j0 = pt.firstIndex(of: pf[ra]), let j1 = pt.lastIndex(of: pf[ra + 1]), j1 > j0 {
            let carriers = ((to.count - j1) ..< (to.count - j0)).filter { to[$0] != .known(1) }
            guard let outer = carriers.first, let m = to[outer].value else { return nil }
            if carriers.count == 1 { return m == n ? .same(outer) : nil }
            guard m > 0, n % m == 0 else { return nil }
            return .split(outer, factor: n / m)
        }
        for jr in 0 ..< pt.count - 1 {
            guard let i0 = pf.firstIndex(of: pt[jr]), let i1 = pf.lastIndex(of: pt[jr + 1]), i0 <= ra, ra < i1 else { continue }
            let merged = ((from.count - i1) ..< (from.count - i0)).filter { from[$0] != .known(1) }
            let j = to.count - 1 - jr
            guard merged.first == axis, let m = to[j].value, m % n == 0 else { return nil }
            return .merge(j, factor: m / n)
        }
        return nil
    }

    /// Where axis `axis` of `from`, holding heads `0..<n` in the sense *index modulo n* (its dim is
    /// `n` or a symbolic multiple of `n`, as when heads are merged into the batch axis), goes in
    /// `to`: the axis with the same product of inner dims, whose dim is `n` or a symbolic multiple.
    /// Equal inner products make the flat index of head `h` land on an index ≡ h (mod n) there.
    static func moduloMap(from: [Dim], to: [Dim], axis: Int, n: Int) -> Int? {
        guard axis >= 0, axis < from.count, n > 1 else { return nil }
        func fits(_ d: Dim) -> Bool {
            switch d {
            case .known(let v): return v == n
            case .symbol: return true
            case .unknown: return false
            }
        }
        guard fits(from[axis]) else { return nil }
        var inner = Product()
        for d in from[(axis + 1)...] { guard inner.multiply(d) else { return nil } }
        var suffix = Product()
        for j in stride(from: to.count - 1, through: 0, by: -1) {
            if suffix == inner, to[j] != .known(1) { return fits(to[j]) ? j : nil }
            guard suffix.multiply(to[j]) else { return nil }
        }
        return nil
    }

    /// The axes of `to` that axis `axis` of `from` covers exactly (it stays whole or splits), or
    /// `nil` when it merges with others or the dims do not line up.
    static func covered(from: [Dim], to: [Dim], axis: Int) -> Range<Int>? {
        guard axis >= 0, axis < from.count, let pf = prefixes(from), let pt = prefixes(to),
            let j0 = pt.firstIndex(of: pf[axis]), let j1 = pt.lastIndex(of: pf[axis + 1]), j1 > j0
        else { return nil }
        return j0 ..< j1
    }

    private static func mapFromFront(from: [Dim], to: [Dim], axis: Int) -> ReshapeAxisMap? {
        guard axis >= 0, axis < from.count, let n = from[axis].value, n > 1,
            let pf = prefixes(from), let pt = prefixes(to)
        else { return nil }
        // The input axis covers output axes j0..<j1 exactly: the axis stays whole or splits.
        if let j0 = pt.firstIndex(of: pf[axis]), let j1 = pt.lastIndex(of: pf[axis + 1]), j1 > j0 {
            let carriers = (j0 ..< j1).filter { to[$0] != .known(1) }
            guard let outer = carriers.first, let m = to[outer].value else { return nil }
            if carriers.count == 1 { return m == n ? .same(outer) : nil }
            guard m > 0, n % m == 0 else { return nil }
            return .split(outer, factor: n / m)
        }
        // The axis splits into groups and the group members merge with the next axes (GroupNorm
        // written as Reshape [b, C, H, W] → [b, G, C/G·H·W]): the group axis carries it.
        // (Size-1 axes in front share the prefix: the candidate is the first that is not 1.)
        let start = pt.indices.first { $0 < to.count && pt[$0] == pf[axis] && to[$0] != .known(1) }
        if let j = start, let g = to[j].value, g > 1, g < n, n % g == 0 {
            return .split(j, factor: n / g)
        }
        // The reverse ([b, G, C/G·H·W] → [b, C, H, W]): each group index covers C/G channels.
        if let j = start, let c = to[j].value, c > n, c % n == 0, axis + 1 < from.count {
            return .merge(j, factor: c / n)
        }
        // Several input axes merge into output axis j: allowed when this is the outermost of them.
        for j in to.indices {
            guard let i0 = pf.firstIndex(of: pt[j]), let i1 = pf.lastIndex(of: pt[j + 1]), i0 <= axis, axis < i1 else { continue }
            let merged = (i0 ..< i1).filter { from[$0] != .known(1) }
            guard merged.first == axis, let m = to[j].value, m % n == 0 else { return nil }
            return .merge(j, factor: m / n)
        }
        return nil
    }
}
