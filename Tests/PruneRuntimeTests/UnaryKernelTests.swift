import Foundation
import PruneIR
import Testing

@testable import PruneRuntime

/// Edge cases of the unary, activation and Cast kernels the node tests do not reach.
struct UnaryKernelTests {
    /// Runs one `op` node on `inputs` (all graph inputs) and returns its output.
    func run(_ op: String, _ inputs: [NDArray], attributes: [(String, Attribute)] = [], opset: Int64 = 21, threads: Int = 1) throws -> NDArray {
        let b = GraphBuilder()
        let values = inputs.enumerated().map { i, a in b.input("x\(i)", a.dtype, a.shape) }
        b.output(b.add(OpType(op), values, attributes: attributes))
        let interpreter = try Interpreter(model: b.model(opset: opset), options: .init(threads: threads))
        var feeds: [String: NDArray] = [:]
        for (i, a) in inputs.enumerated() { feeds["x\(i)"] = a }
        return try interpreter.runOrdered(feeds)[0]
    }

    @Test func castIntegersWrapAndFloatsTruncate() throws {
        let wide = try run("Cast", [NDArray([300, -1, 127, -129] as [Int64], shape: [4])], attributes: [("to", .int(3))])
        #expect(wide.scalars(as: Int8.self) == [44, -1, 127, 127])
        let f = try run("Cast", [NDArray([-2.7, 2.7, .nan, 300, -1] as [Float], shape: [5])], attributes: [("to", .int(2))])
        #expect(f.scalars(as: UInt8.self) == [254, 2, 0, 44, 255])
        let big = try run("Cast", [NDArray([UInt64.max, 1 << 63] as [UInt64], shape: [2])], attributes: [("to", .int(11))])
        #expect(big.scalars(as: Double.self) == [18446744073709551615.0, 9223372036854775808.0])
        let back = try run("Cast", [NDArray([1.8446744073709552e19 / 2 * 1.5, -3e30] as [Double], shape: [2])], attributes: [("to", .int(13))])
        #expect(back.scalars(as: UInt64.self) == [13835058055282163712, 1 << 63])
    }

    @Test func castBool() throws {
        let b = try run("Cast", [NDArray([0, 0.5, .nan, -1] as [Float], shape: [4])], attributes: [("to", .int(9))])
        #expect(b.dtype == .bool)
        #expect(b.scalars(as: Bool.self) == [false, true, true, true])
        let i = try run("Cast", [NDArray([256, 0] as [Int32], shape: [2])], attributes: [("to", .int(9))])
        #expect(i.scalars(as: Bool.self) == [true, false])
        let f = try run("Cast", [b], attributes: [("to", .int(1))])
        #expect(f.scalars(as: Float.self) == [0, 1, 1, 1])
    }

    @Test func castBFloat16RoundsToNearestEven() throws {
        let x: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, -2, .infinity]
        let y = try run("Cast", [NDArray(x, shape: [5])], attributes: [("to", .int(16))])
        #expect(y.dtype == .bfloat16)
        let bits = Array(UnsafeBufferPointer(start: y.pointer(as: UInt16.self), count: 5))
        #expect(bits == [0x3F80, 0x3F82, 0x3F81, 0xC000, 0x7F80])
        let z = try run("Cast", [y], attributes: [("to", .int(1))])
        let want: [Float] = [1, 1 + 0x1p-6, 1 + 0x1p-7, -2, .infinity]
        #expect(z.scalars(as: Float.self) == want)
    }

    @Test func castOpset1TakesATypeName() throws {
        let y = try run("Cast", [NDArray([1.5, -2.5] as [Float], shape: [2])], attributes: [("to", .string("INT32"))], opset: 1)
        #expect(y.scalars(as: Int32.self) == [1, -2])
    }

    @Test func castToStringIsUnsupported() throws {
        #expect(throws: RuntimeError.self) {
            try run("Cast", [NDArray([1] as [Float], shape: [1])], attributes: [("to", .int(8))])
        }
    }

    @Test func integerAbsNegSignRelu() throws {
        let x = NDArray([-128, -3, 0, 5] as [Int8], shape: [4])
        #expect(try run("Abs", [x]).scalars(as: Int8.self) == [-128, 3, 0, 5])
        #expect(try run("Neg", [x]).scalars(as: Int8.self) == [-128, 3, 0, -5])
        #expect(try run("Sign", [x]).scalars(as: Int8.self) == [-1, -1, 0, 1])
        #expect(try run("Relu", [x]).scalars(as: Int8.self) == [0, 0, 0, 5])
        #expect(try run("Abs", [NDArray([200, 0] as [UInt8], shape: [2])]).scalars(as: UInt8.self) == [200, 0])
    }

    @Test func clipBoundsAndTypes() throws {
        let x = NDArray([-5, 0, 7, 100] as [Int32], shape: [4])
        let y = try run("Clip", [x, NDArray(scalar: Int32(-1)), NDArray(scalar: Int32(10))])
        #expect(y.scalars(as: Int32.self) == [-1, 0, 7, 10])
        // min > max: every element becomes max (NumPy's clip).
        let f = try run("Clip", [NDArray([-1, 0, 1] as [Float], shape: [3]), NDArray(scalar: Float(2)), NDArray(scalar: Float(1))])
        #expect(f.scalars(as: Float.self) == [1, 1, 1])
        // Opset 6: attribute bounds.
        let a = try run("Clip", [NDArray([-2, 0.5, 3] as [Float], shape: [3])], attributes: [("min", .float(-1)), ("max", .float(1))], opset: 6)
        #expect(a.scalars(as: Float.self) == [-1, 0.5, 1])
        let h = try run("Clip", [NDArray([-2, 0.5, 3] as [Float16], shape: [3]), NDArray(scalar: Float16(0))])
        #expect(h.scalars(as: Float16.self) == [0, 0.5, 3])
    }

    @Test func preluBroadcastsSlope() throws {
        let x = NDArray((0..<24).map { Float($0 % 2 == 0 ? -1 : 1) * Float($0) }, shape: [2, 3, 4])
        let slope = NDArray([0.5, 2, -1] as [Float], shape: [3, 1])
        let y = try run("PRelu", [x, slope], opset: 16).scalars(as: Float.self)
        for i in 0..<24 {
            let v = x.scalars(as: Float.self)[i]
            let s: Float = [0.5, 2, -1][(i / 4) % 3]
            #expect(y[i] == (v < 0 ? s * v : v))
        }
    }

    @Test func halfPrecisionComputesInFloat() throws {
        let x: [Float] = [-3, -0.5, 0, 0.5, 3]
        let y = try run("Sigmoid", [NDArray(x.map { Float16($0) }, shape: [5])]).scalars(as: Float16.self)
        #expect(y == x.map { Float16(1 / (1 + expf(-$0))) })
    }

    @Test func isInfDirectionsAndRound() throws {
        let x = NDArray([.infinity, -.infinity, .nan, 1] as [Float], shape: [4])
        #expect(try run("IsInf", [x], attributes: [("detect_positive", .int(0))]).scalars(as: Bool.self) == [false, true, false, false])
        #expect(try run("IsNaN", [x]).scalars(as: Bool.self) == [false, false, true, false])
        let r = try run("Round", [NDArray([0.5, 1.5, 2.5, -0.5, -1.5, 2.4] as [Float], shape: [6])])
        #expect(r.scalars(as: Float.self) == [0, 2, 2, -0, -2, 2])
    }

    @Test func largeArraysRunInParallel() throws {
        let n = 100_003
        let x = (0..<n).map { Float($0 % 1000) / 100 - 5 }
        let y = try run("Tanh", [NDArray(x, shape: [n])], threads: 2).scalars(as: Float.self)
        // The float32 Tanh is a vectorized approximation: within 1e-6 of libm, and the same
        // whichever thread computes a chunk.
        #expect(zip(y, x).allSatisfy { abs($0 - tanhf($1)) <= 1e-6 })
        #expect(y == (try run("Tanh", [NDArray(x, shape: [n])], threads: 1).scalars(as: Float.self)))
        let g = try run("Gelu", [NDArray(x, shape: [n])], attributes: [("approximate", .string("tanh"))], opset: 20, threads: 2)
        #expect(g.count == n)
    }
}
