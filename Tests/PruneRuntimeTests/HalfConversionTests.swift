import Foundation
import PruneIR
import Testing

@testable import PruneRuntime

/// The vectorized float16/bfloat16 conversions (CKernels/HalfConvert.c through VectorKernels)
/// against Swift's Float16 and the scalar bfloat16 rounding, in their vector bodies and scalar
/// tails, and the float16 kernels that use them.
struct HalfConversionTests {
    /// Floats that probe float16 rounding: every float16 value, the midpoints between neighbours
    /// (ties to even), values just off the midpoints, overflow, subnormals and NaN.
    static var probes: [Float] {
        var out: [Float] = []
        for bits in 0..<UInt16(0x7C00) {
            let a = Float(Float16(bitPattern: bits)), b = Float(Float16(bitPattern: bits + 1))
            let mid = (a + b) / 2
            out += [a, mid, mid.nextUp, mid.nextDown]
        }
        out += [65504, 65519.99, 65520, 1e6, .infinity, .nan, 1e-8, 2.98e-8, 2.99e-8, 5.96e-8, 0]
        return out + out.map { -$0 }
    }

    @Test func float16WidensExactly() {
        let bits = (0...UInt16.max).map { $0 }
        var wide = [Float](repeating: 0, count: bits.count)
        // count - 3: the last elements go through the scalar tail.
        VectorKernels.widen(bits, bfloat16: false, &wide, count: bits.count - 3)
        bits.withUnsafeBufferPointer { b in
            wide.withUnsafeMutableBufferPointer { w in
                VectorKernels.widen(b.baseAddress! + bits.count - 3, bfloat16: false, w.baseAddress! + bits.count - 3, count: 3)
            }
        }
        for (h, f) in zip(bits, wide) {
            let expected = Float(Float16(bitPattern: h))
            #expect(expected.isNaN ? f.isNaN : f.bitPattern == expected.bitPattern, "float16 bits \(h)")
        }
    }

    @Test func float16NarrowsToNearestEven() {
        let x = HalfConversionTests.probes
        var vector = [UInt16](repeating: 0, count: x.count), scalar = vector
        var rounded = [Float](repeating: 0, count: x.count)
        VectorKernels.narrow(x, bfloat16: false, &vector, count: x.count)
        VectorKernels.roundThrough(x, bfloat16: false, &rounded, count: x.count)
        x.withUnsafeBufferPointer { xs in
            scalar.withUnsafeMutableBufferPointer { s in
                for i in 0..<x.count { VectorKernels.narrow(xs.baseAddress! + i, bfloat16: false, s.baseAddress! + i, count: 1) }
            }
        }
        var bad = 0
        for i in x.indices {
            let e = Float16(x[i])
            let ok = e.isNaN
                ? Float16(bitPattern: vector[i]).isNaN && Float16(bitPattern: scalar[i]).isNaN && rounded[i].isNaN
                : vector[i] == e.bitPattern && scalar[i] == e.bitPattern && rounded[i] == Float(e)
            if !ok { bad += 1 }
            if !ok && bad <= 5 { Issue.record("\(x[i]): vector \(vector[i]) scalar \(scalar[i]) expected \(e.bitPattern)") }
        }
        #expect(bad == 0)
    }

    @Test func bfloat16RoundsToNearestEven() {
        var g = SystemRandomNumberGenerator()
        var x: [Float] = [0, -0, 1, .infinity, -.infinity, .nan, -Float.nan, .greatestFiniteMagnitude, Float(bitPattern: 0x0001_1234)]
        // Exact ties (low 16 bits 0x8000) on odd and even bfloat16 values, and random bits.
        for hi in [UInt32(0x3F80), 0x3F81, 0x4049, 0x7F7F, 0x0001] { x += [Float(bitPattern: hi << 16 | 0x8000)] }
        for _ in 0..<10_000 { x.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &g))) }
        var bits = [UInt16](repeating: 0, count: x.count)
        var rounded = [Float](repeating: 0, count: x.count), back = rounded
        VectorKernels.narrow(x, bfloat16: true, &bits, count: x.count)
        VectorKernels.roundThrough(x, bfloat16: true, &rounded, count: x.count)
        VectorKernels.widen(bits, bfloat16: true, &back, count: x.count)
        for i in x.indices {
            let e = unaryBF16FromFloat(x[i])
            #expect(bits[i] == e, "\(x[i].bitPattern)")
            #expect(back[i].bitPattern == UInt32(e) << 16 && rounded[i].bitPattern == UInt32(e) << 16)
        }
    }

    /// A float16 MatMul with a constant weight: float32 BLAS on widened operands, rounded once,
    /// and the same on a second run (the widened weight is cached by the kernel).
    @Test func float16MatMulWithConstantWeight() throws {
        let (m, k, n) = (5, 19, 7)
        let a = (0..<(m * k)).map { Float16(Float($0 % 11) * 0.25 - 1) }
        let w = (0..<(k * n)).map { Float16(Float($0 % 7) * 0.5 - 1.5) }
        let b = GraphBuilder()
        let x = b.input("x", .float16, [m, k])
        let wt = b.initializer("w", Tensor(name: "w", dtype: .float16, shape: [k, n],
                                           bytes: w.withUnsafeBytes { Data($0) }))
        b.output(b.add(OpType("MatMul"), [x, wt]))
        let interpreter = try Interpreter(model: b.model(opset: 17), options: .init(threads: 1))
        var expected: [Float16] = []
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k { s += Float(a[i * k + p]) * Float(w[p * n + j]) }
                expected.append(Float16(s))
            }
        }
        for _ in 0..<2 {
            let y = try interpreter.runOrdered(["x": NDArray(a, shape: [m, k])])[0]
            #expect(y.dtype == .float16 && y.shape == [m, n])
            #expect(y.scalars(as: Float16.self) == expected)
        }
    }

    /// A 16-bit weight too large for the copy budget is widened in column panels: the product is
    /// the one the kept float32 copy gives, bit for bit, for float16 and bfloat16.
    @Test(.serialized, arguments: [DType.float16, .bfloat16])
    func largeHalfWeightsAreWidenedInPanels(dtype: DType) throws {
        let (m, k, n) = (3, 300, MatMulKernel.panelElements / 300 * 2 + 37)
        let a = (0..<(m * k)).map { Float($0 % 13) * 0.125 - 0.75 }
        let w = (0..<(k * n)).map { Float(($0 * 7) % 17) * 0.0625 - 0.5 }
        func model() throws -> Model {
            let b = GraphBuilder()
            let x = b.input("x", dtype, [m, k])
            b.output(b.add(OpType("MatMul"), [x, b.initializer("w", try HalfBits.tensor(w, dtype, [k, n]))]))
            return b.model(opset: 17)
        }
        let x = try NDArray(tensor: try HalfBits.tensor(a, dtype, [m, k]))
        let kept = try Interpreter(model: try model(), options: .init(threads: 2)).runOrdered(["x": x])[0]
        let saved = ConstantCopyBudget.limit
        ConstantCopyBudget.limit = 0
        defer { ConstantCopyBudget.limit = saved }
        let panelled = try Interpreter(model: try model(), options: .init(threads: 2)).runOrdered(["x": x])[0]
        #expect(panelled.shape == [m, n] && panelled.dtype == dtype)
        #expect(panelled.tensor().rawBytes == kept.tensor().rawBytes)
    }

    /// float16 Add and Sigmoid computed in float32 blocks give Float16 arithmetic's results.
    @Test func float16ElementwiseRoundsOnce() throws {
        let n = 3000
        let p = (0..<n).map { Float16(Float($0) * 0.013 - 19) }
        let q = (0..<n).map { Float16(Float(($0 * 7) % 101) * 0.37 - 2) }
        let b = GraphBuilder()
        let x = b.input("x", .float16, [n]), y = b.input("y", .float16, [n])
        let sum = b.add(OpType("Add"), [x, y])
        b.output(sum)
        b.output(b.add(OpType("Sigmoid"), [x]))
        let interpreter = try Interpreter(model: b.model(opset: 17), options: .init(threads: 1))
        let out = try interpreter.runOrdered(["x": NDArray(p, shape: [n]), "y": NDArray(q, shape: [n])])
        #expect(out[0].scalars(as: Float16.self) == zip(p, q).map { $0 + $1 })
        let sig = out[1].scalars(as: Float16.self)
        for i in 0..<n {
            let e = 1 / (1 + exp(-Double(p[i])))
            #expect(abs(Double(sig[i]) - e) <= Double(Float16(e).ulp), "sigmoid(\(p[i]))")
        }
    }
}

/// 16-bit tensors from floats for the tests above (round to nearest).
private enum HalfBits {
    static func tensor(_ v: [Float], _ dtype: DType, _ shape: [Int]) throws -> Tensor {
        let bits: [UInt16] = v.map { f in
            if dtype == .float16 { return Float16(f).bitPattern }
            let b: UInt32 = f.bitPattern
            let rounded: UInt32 = b &+ 0x7FFF &+ ((b >> 16) & 1)
            return UInt16(truncatingIfNeeded: rounded >> 16)
        }
        return Tensor(name: "", dtype: dtype, shape: shape, bytes: bits.withUnsafeBytes { Data($0) })
    }
}
