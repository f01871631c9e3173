import PruneIR

// Einsum: the equation is parsed once (explicit or implicit output, ellipsis, repeated indices).
// Each operand first loses broadcast size-1 dimensions, takes diagonals of repeated labels and
// sums labels nobody else needs; operands are then contracted pairwise, left to right, as one
// batched GEMM each ([batch, left, contracted] × [batch, contracted, right]), transposing an
// operand only when its labels are not already in a GEMM-compatible order (so equations like
// "bhid,bhjd->bhij" or "bij,bjk->bik" are plain BLAS calls). float32 (and float16/bfloat16,
// converted) computes in float32; float64 and the integer types compute in float64. The VJP
// (end of file) is one more Einsum per operand.
func registerEinsumKernels(_ r: inout KernelRegistry) {
    r.register("Einsum", since: 12) { info in
        let equation: String = try info.attribute("equation", default: "")
        if let t = info.inputType(0), !NDArray.supports(t) || t == .bool {
            throw KernelError.unsupported("Einsum on \(t)")
        }
        return try EinsumKernel(equation: equation, inputCount: info.node.inputs.count)
    }
}

/// An Einsum node with its equation parsed.
final class EinsumKernel: Kernel {
    /// One input term: its labels in order, with the ellipsis position (if any).
    struct Term {
        var letters: [Int]
        var ellipsisAt: Int?
    }

    let terms: [Term]
    /// Explicit output term, or `nil` for the implicit (numpy) output.
    let output: Term?

    /// Labels of ellipsis dimensions start here (letters are their ASCII codes).
    static let ellipsisBase = 1000

    init(equation: String, inputCount: Int) throws {
        let eq = equation.filter { !$0.isWhitespace }
        let sides = eq.components(separatedBy: "->")
        guard sides.count <= 2 else { throw KernelError("Einsum equation '\(equation)' has more than one '->'") }
        func parse(_ s: String) throws -> Term {
            var letters: [Int] = []
            var ell: Int? = nil
            var rest = Substring(s)
            while let c = rest.first {
                if rest.hasPrefix("...") {
                    guard ell == nil else { throw KernelError("Einsum term '\(s)' has two ellipses") }
                    ell = letters.count
                    rest = rest.dropFirst(3)
                    continue
                }
                guard let a = c.asciiValue, c.isLetter else { throw KernelError("Einsum equation '\(equation)': bad character '\(c)'") }
                letters.append(Int(a))
                rest = rest.dropFirst()
            }
            return Term(letters: letters, ellipsisAt: ell)
        }
        terms = try sides[0].split(separator: ",", omittingEmptySubsequences: false).map { try parse(String($0)) }
        output = sides.count == 2 ? try parse(sides[1]) : nil
        guard terms.count == inputCount else {
            throw KernelError("Einsum equation '\(equation)' has \(terms.count) terms for \(inputCount) inputs")
        }
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let xs = try (0..<terms.count).map { try inputs.required($0) }
        guard let dtype = xs.first?.dtype, xs.allSatisfy({ $0.dtype == dtype }) else { throw KernelError("Einsum inputs differ in type") }
        switch dtype {
        case .float:
            return [try compute(Float.self, xs, ctx)]
        case .float16, .bfloat16:
            let r = try compute(Float.self, xs.map { FloatBridge.toFloat($0, ctx) }, ctx)
            return [FloatBridge.fromFloat(r, to: dtype, ctx)]
        case .double:
            return [try compute(Double.self, xs, ctx)]
        default:
            let r = try compute(Double.self, xs.map { EinsumKernel.toDouble($0, ctx) }, ctx)
            return [try EinsumKernel.fromDouble(r, to: dtype, ctx)]
        }
    }

    // MARK: - Planning and contraction

    struct Operand {
        var data: NDArray
        var labels: [Int]
    }

    /// The labels of each operand of the given shapes (ellipsis dimensions right-aligned across
    /// operands, as labels from ``ellipsisBase``), the size of every label (broadcast), and the
    /// output's labels.
    func resolve(_ shapes: [[Int]]) throws -> (labels: [[Int]], sizes: [Int: Int], output: [Int]) {
        var ellipsisRank = 0
        for (t, shape) in zip(terms, shapes) {
            let e = shape.count - t.letters.count
            guard e >= 0, t.ellipsisAt != nil || e == 0 else {
                throw KernelError("Einsum input of shape \(shape) does not fit its term")
            }
            ellipsisRank = max(ellipsisRank, e)
        }
        var operandLabels: [[Int]] = []
        var sizes: [Int: Int] = [:]
        for (t, shape) in zip(terms, shapes) {
            let e = shape.count - t.letters.count
            var labels = t.letters
            if let at = t.ellipsisAt {
                labels.insert(contentsOf: (ellipsisRank - e..<ellipsisRank).map { EinsumKernel.ellipsisBase + $0 }, at: at)
            }
            for (l, d) in zip(labels, shape) {
                if let s = sizes[l], s != d, s != 1, d != 1 {
                    throw KernelError("Einsum label '\(EinsumKernel.name(l))' has sizes \(s) and \(d)")
                }
                sizes[l] = max(sizes[l] ?? d, d)
            }
            operandLabels.append(labels)
        }
        // Output labels.
        var outLabels: [Int]
        if let output {
            outLabels = output.letters
            if let at = output.ellipsisAt {
                outLabels.insert(contentsOf: (0..<ellipsisRank).map { EinsumKernel.ellipsisBase + $0 }, at: at)
            }
            for l in outLabels where sizes[l] == nil {
                throw KernelError("Einsum output label '\(EinsumKernel.name(l))' is in no input")
            }
            guard Set(outLabels).count == outLabels.count else { throw KernelError("Einsum output repeats a label") }
        } else {
            var counts: [Int: Int] = [:]
            for t in terms { for l in t.letters { counts[l, default: 0] += 1 } }
            outLabels = (0..<ellipsisRank).map { EinsumKernel.ellipsisBase + $0 }
                + counts.filter { $0.value == 1 }.map(\.key).sorted()
        }
        return (operandLabels, sizes, outLabels)
    }

    private func compute<T: BLASElement>(_: T.Type, _ xs: [NDArray], _ ctx: KernelContext) throws -> NDArray {
        let (operandLabels, sizes, outLabels) = try resolve(xs.map { $0.shape })
        var ops = zip(xs, operandLabels).map { Operand(data: $0, labels: $1) }
        // Per operand: drop broadcast size-1 dims, take diagonals.
        for i in ops.indices {
            var o = ops[i]
            var keepDims: [Int] = []
            for (k, l) in o.labels.enumerated() where !(o.data.shape[k] == 1 && sizes[l]! > 1) { keepDims.append(k) }
            if keepDims.count != o.labels.count {
                o = Operand(data: o.data.reshaped(keepDims.map { o.data.shape[$0] }), labels: keepDims.map { o.labels[$0] })
            }
            if Set(o.labels).count != o.labels.count { o = diagonal(T.self, o, ctx) }
            ops[i] = o
        }
        // Contract left to right.
        var acc = ops[0]
        for i in 1..<max(ops.count, 1) {
            var keep = Set(outLabels)
            for j in (i + 1)..<max(ops.count, i + 1) { keep.formUnion(ops[j].labels) }
            acc = try contract(T.self, acc, ops[i], keep: keep, sizes: sizes, ctx)
        }
        // Sum what the output does not keep, then order as the output.
        acc = sumOut(T.self, acc, Set(acc.labels).subtracting(outLabels), sizes: sizes, ctx)
        acc = permute(T.self, acc, to: outLabels, ctx)
        return acc.data.reshaped(outLabels.map { sizes[$0]! })
    }

    /// `a` · `b` over their shared labels; labels in `keep` survive.
    private func contract<T: BLASElement>(_: T.Type, _ a0: Operand, _ b0: Operand, keep: Set<Int>, sizes: [Int: Int], _ ctx: KernelContext) throws -> Operand {
        let a = sumOut(T.self, a0, Set(a0.labels).subtracting(b0.labels).subtracting(keep), sizes: sizes, ctx)
        let b = sumOut(T.self, b0, Set(b0.labels).subtracting(a0.labels).subtracting(keep), sizes: sizes, ctx)
        let inB = Set(b.labels), inA = Set(a.labels)
        let batch = a.labels.filter { inB.contains($0) && keep.contains($0) }
        let contracted = a.labels.filter { inB.contains($0) && !keep.contains($0) }
        let left = a.labels.filter { !inB.contains($0) }
        let right = b.labels.filter { !inA.contains($0) }
        let transA = a.labels == batch + contracted + left && a.labels != batch + left + contracted
        let aa = transA ? a : permute(T.self, a, to: batch + left + contracted, ctx)
        let bOrder = batch + contracted + right
        let transB = b.labels == batch + right + contracted && b.labels != bOrder
        let bb = transB ? b : permute(T.self, b, to: bOrder, ctx)
        func prod(_ ls: [Int]) -> Int { ls.reduce(1) { $0 * sizes[$1]! } }
        let nb = prod(batch), m = prod(left), n = prod(right), k = prod(contracted)
        let outLabels = batch + left + right
        let out = ctx.allocate(T.dtype, outLabels.map { sizes[$0]! })
        let pa = aa.data.pointer(as: T.self), pb = bb.data.pointer(as: T.self), pc = out.pointer(as: T.self)
        for i in 0..<nb {
            T.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                   a: pa + i * m * k, lda: transA ? m : k, b: pb + i * k * n, ldb: transB ? k : n,
                   beta: 0, c: pc + i * m * n, ldc: n, threads: ctx.threads)
        }
        return Operand(data: out, labels: outLabels)
    }

    /// Sums `labels` out of `o`.
    private func sumOut<T: BLASElement>(_: T.Type, _ o: Operand, _ labels: Set<Int>, sizes: [Int: Int], _ ctx: KernelContext) -> Operand {
        if labels.isEmpty { return o }
        let kept = o.labels.filter { !labels.contains($0) }
        let summed = o.labels.filter { labels.contains($0) }
        let p = permute(T.self, o, to: kept + summed, ctx)
        let inner = summed.reduce(1) { $0 * sizes[$1]! }
        let outer = kept.reduce(1) { $0 * sizes[$1]! }
        let out = ctx.allocate(T.dtype, kept.map { sizes[$0]! })
        let src = p.data.pointer(as: T.self), dst = out.pointer(as: T.self)
        for i in 0..<outer {
            var s: T = 0
            let row = src + i * inner
            for j in 0..<inner { s += row[j] }
            dst[i] = s
        }
        return Operand(data: out, labels: kept)
    }

    /// `o` with its dimensions reordered to `order` (a permutation of its labels).
    private func permute<T: BLASElement>(_: T.Type, _ o: Operand, to order: [Int], _ ctx: KernelContext) -> Operand {
        if o.labels == order { return o }
        let strides = Broadcast.contiguousStrides(o.data.shape)
        let idx = order.map { l in o.labels.firstIndex(of: l)! }
        let shape = idx.map { o.data.shape[$0] }
        let out = ctx.allocate(T.dtype, shape)
        EinsumKernel.stridedCopy(o.data.pointer(as: T.self), idx.map { strides[$0] }, shape, out.pointer(as: T.self))
        return Operand(data: out, labels: order)
    }

    /// `o` with each repeated label reduced to its diagonal.
    private func diagonal<T: BLASElement>(_: T.Type, _ o: Operand, _ ctx: KernelContext) -> Operand {
        let strides = Broadcast.contiguousStrides(o.data.shape)
        var labels: [Int] = []
        var shape: [Int] = []
        var st: [Int] = []
        for (k, l) in o.labels.enumerated() {
            if let j = labels.firstIndex(of: l) {
                st[j] += strides[k]
            } else {
                labels.append(l)
                shape.append(o.data.shape[k])
                st.append(strides[k])
            }
        }
        let out = ctx.allocate(T.dtype, shape)
        EinsumKernel.stridedCopy(o.data.pointer(as: T.self), st, shape, out.pointer(as: T.self))
        return Operand(data: out, labels: labels)
    }

    /// Copies the elements of `src` read with `strides` (per dimension of `shape`) into the
    /// contiguous `dst`.
    static func stridedCopy<T>(_ src: UnsafeMutablePointer<T>, _ strides: [Int], _ shape: [Int], _ dst: UnsafeMutablePointer<T>) {
        Broadcast.forEachRun(shape: shape, strides: [strides]) { start, offsets, length, inner in
            let s = src + offsets[0]
            let d = dst + start
            let step = inner[0]
            if step == 1 {
                d.update(from: s, count: length)
            } else {
                for i in 0..<length { d[i] = s[i * step] }
            }
        }
    }

    static func name(_ label: Int) -> String {
        label >= ellipsisBase ? "...\(label - ellipsisBase)" : String(UnicodeScalar(UInt8(label)))
    }

    // MARK: - Integer types (computed in float64)

    static func toDouble(_ a: NDArray, _ ctx: KernelContext) -> NDArray {
        let out = ctx.allocate(.double, a.shape)
        let d = out.pointer(as: Double.self)
        for i in 0..<a.count { d[i] = a.element(at: i) }
        return out
    }

    static func fromDouble(_ a: NDArray, to dtype: DType, _ ctx: KernelContext) throws -> NDArray {
        let out = ctx.allocate(dtype, a.shape)
        let s = a.pointer(as: Double.self)
        func fill<I: FixedWidthInteger>(_: I.Type) {
            let d = out.pointer(as: I.self)
            for i in 0..<a.count { d[i] = I(truncatingIfNeeded: Int64(s[i].rounded())) }
        }
        switch dtype {
        case .int8: fill(Int8.self)
        case .int16: fill(Int16.self)
        case .int32: fill(Int32.self)
        case .int64: fill(Int64.self)
        case .uint8: fill(UInt8.self)
        case .uint16: fill(UInt16.self)
        case .uint32: fill(UInt32.self)
        case .uint64: fill(UInt64.self)
        default: throw KernelError("Einsum does not support \(dtype)")
        }
        return out
    }
}

// MARK: Gradients

/// VJP of Einsum: the cotangent of operand i is the Einsum of the output's cotangent with the
/// other operands, onto the labels of operand i that appear in the output or in another operand
/// (computed by this kernel, so GEMMs where the labels allow). Labels of operand i found nowhere
/// else broadcast the result; repeated labels (diagonals) receive it on the diagonal, zero
/// elsewhere; size-1 broadcast dimensions receive the sum.
func registerEinsumGradients(_ r: inout GradientRegistry) {
    r.register(["Einsum"]) { c, gs in
        let equation: String = try c.attribute("equation", default: "")
        let xs = try (0..<c.inputs.count).map { try c.input($0) }
        let y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let forward = try EinsumKernel(equation: equation, inputCount: xs.count)
        return try xs.indices.map { i in c.needs(i) ? try forward.gradient(of: i, xs, g, c.kernel) : nil }
    }
}

extension EinsumKernel {
    /// The cotangent of operand `i` given the output's cotangent `g`.
    fileprivate func gradient(of i: Int, _ xs: [NDArray], _ g: NDArray, _ ctx: KernelContext) throws -> NDArray {
        let (labels, sizes, output) = try resolve(xs.map { $0.shape })
        let x = xs[i], own = labels[i]
        var elsewhere = Set(output)
        for (j, ls) in labels.enumerated() where j != i { elsewhere.formUnion(ls) }
        // Operand i's distinct labels, in order; the size each has in operand i.
        var unique: [Int] = []
        var dims: [Int] = []
        for (k, l) in own.enumerated() where !unique.contains(l) {
            unique.append(l)
            dims.append(x.shape[k])
        }
        // What the gradient Einsum computes: labels found elsewhere and not broadcast in operand i.
        let target = zip(unique, dims).filter { l, d in elsewhere.contains(l) && !(d == 1 && sizes[l]! > 1) }.map(\.0)
        // Letters for the equation: the operand's own, then free ones for ellipsis labels.
        var letters: [Int: Character] = [:]
        var free = (Array(UInt8(ascii: "a")...UInt8(ascii: "z")) + Array(UInt8(ascii: "A")...UInt8(ascii: "Z")))
            .map { Character(UnicodeScalar($0)) }
        for l in sizes.keys where l < EinsumKernel.ellipsisBase {
            let ch = Character(UnicodeScalar(UInt8(l)))
            letters[l] = ch
            free.removeAll { $0 == ch }
        }
        for l in sizes.keys.sorted() where l >= EinsumKernel.ellipsisBase {
            guard !free.isEmpty else { throw KernelError("Einsum gradient: too many labels") }
            letters[l] = free.removeFirst()
        }
        func term(_ ls: [Int]) -> String { String(ls.map { letters[$0]! }) }
        let others = xs.indices.filter { $0 != i }
        let equation = ([term(output)] + others.map { term(labels[$0]) }).joined(separator: ",") + "->" + term(target)
        let e = try EinsumKernel(equation: equation, inputCount: others.count + 1)
            .run([g] + others.map { xs[$0] }, ctx)[0]!
        // Write E into operand i's shape: along its diagonals, broadcast where E has no (or a
        // size-1) dimension.
        let dx = ctx.zeros(x.dtype, x.shape)
        if dx.count == 0 || e.count == 0 { return dx }
        let xStrides = Broadcast.contiguousStrides(x.shape), eStrides = Broadcast.contiguousStrides(e.shape)
        var src: [Int] = [], dst: [Int] = []
        for (l, d) in zip(unique, dims) {
            dst.append(zip(own, xStrides).filter { $0.0 == l }.reduce(0) { $0 + $1.1 })
            if let k = target.firstIndex(of: l), e.shape[k] == d {
                src.append(eStrides[k])
            } else {
                src.append(0)
            }
        }
        let size = x.dtype == .double ? 8 : 4
        let from = e.rawPointer, to = dx.rawPointer
        Broadcast.forEachRun(shape: dims, strides: [src, dst]) { _, offs, n, inner in
            for j in 0..<n {
                (to + (offs[1] + j * inner[1]) * size).copyMemory(from: from + (offs[0] + j * inner[0]) * size, byteCount: size)
            }
        }
        return dx
    }
}
