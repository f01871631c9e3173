import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// VJPs of the pools, Resize/Upsample and Pad against finite differences. MaxPool, Resize and
/// Pad run float64; AveragePool and LpPool compute in float32 (their float64 inputs are
/// converted), so they are checked in float32 within the stated tolerance.
struct GradientPoolResizeTests {
    typealias R = GradientCheck

    /// A case: op, input shape, dtype, attributes, opset.
    struct Case: CustomStringConvertible, @unchecked Sendable {
        var name: String
        var op: String
        var x: [Int]
        var dtype: DType = .double
        var attributes: [(String, Attribute)] = []
        var opset: Int64 = 18
        var outputs = 1
        var range: ClosedRange<Double> = -1...1
        var description: String { "\(op) \(name)" }
    }

    static let poolCases: [Case] = [
        Case(name: "2x2 stride 2", op: "MaxPool", x: [1, 2, 4, 4], attributes: [("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2]))]),
        Case(name: "3x3 pads 1", op: "MaxPool", x: [2, 2, 5, 5], attributes: [("kernel_shape", .ints([3, 3])), ("pads", .ints([1, 1, 1, 1]))]),
        Case(name: "ceil_mode", op: "MaxPool", x: [1, 1, 6, 6],
             attributes: [("kernel_shape", .ints([3, 3])), ("strides", .ints([2, 2])), ("ceil_mode", .int(1))]),
        Case(name: "dilations", op: "MaxPool", x: [1, 2, 5, 5], attributes: [("kernel_shape", .ints([2, 2])), ("dilations", .ints([2, 2]))]),
        Case(name: "SAME_UPPER", op: "MaxPool", x: [1, 1, 5, 4],
             attributes: [("kernel_shape", .ints([2, 3])), ("strides", .ints([2, 2])), ("auto_pad", .string("SAME_UPPER"))]),
        Case(name: "1-D", op: "MaxPool", x: [2, 2, 7], attributes: [("kernel_shape", .ints([3])), ("strides", .ints([2])), ("pads", .ints([1, 1]))]),
        Case(name: "3-D", op: "MaxPool", x: [1, 1, 3, 4, 4], attributes: [("kernel_shape", .ints([2, 2, 2]))]),
        Case(name: "with Indices", op: "MaxPool", x: [1, 2, 4, 4], attributes: [("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2]))], outputs: 2),
        Case(name: "exclude pad", op: "AveragePool", x: [1, 2, 5, 5], dtype: .float,
             attributes: [("kernel_shape", .ints([3, 3])), ("pads", .ints([1, 1, 1, 1]))]),
        Case(name: "include pad", op: "AveragePool", x: [1, 2, 5, 5], dtype: .float,
             attributes: [("kernel_shape", .ints([3, 3])), ("pads", .ints([1, 1, 1, 1])), ("count_include_pad", .int(1))]),
        Case(name: "ceil_mode exclude pad", op: "AveragePool", x: [1, 1, 6, 6], dtype: .float,
             attributes: [("kernel_shape", .ints([3, 3])), ("strides", .ints([2, 2])), ("pads", .ints([1, 1, 1, 1])), ("ceil_mode", .int(1))]),
        Case(name: "ceil_mode include pad", op: "AveragePool", x: [1, 1, 6, 6], dtype: .float,
             attributes: [("kernel_shape", .ints([3, 3])), ("strides", .ints([2, 2])), ("pads", .ints([0, 0, 1, 1])),
                          ("ceil_mode", .int(1)), ("count_include_pad", .int(1))]),
        Case(name: "SAME_LOWER", op: "AveragePool", x: [1, 2, 4, 5], dtype: .float,
             attributes: [("kernel_shape", .ints([2, 2])), ("auto_pad", .string("SAME_LOWER"))]),
        Case(name: "1-D", op: "AveragePool", x: [2, 1, 8], dtype: .float, attributes: [("kernel_shape", .ints([3])), ("strides", .ints([2]))]),
        Case(name: "3-D", op: "AveragePool", x: [1, 1, 4, 3, 4], dtype: .float, attributes: [("kernel_shape", .ints([2, 2, 2])), ("strides", .ints([2, 1, 2]))]),
        Case(name: "p=2", op: "LpPool", x: [1, 2, 4, 4], dtype: .float, attributes: [("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2]))]),
        Case(name: "p=1", op: "LpPool", x: [1, 2, 4, 4], dtype: .float, attributes: [("kernel_shape", .ints([2, 2])), ("p", .int(1))], range: 0.1...1),
        Case(name: "p=3 pads", op: "LpPool", x: [1, 1, 4, 4], dtype: .float,
             attributes: [("kernel_shape", .ints([3, 3])), ("p", .int(3)), ("pads", .ints([1, 1, 1, 1]))], range: 0.1...1),
        Case(name: "", op: "GlobalMaxPool", x: [2, 3, 3, 5]),
        Case(name: "", op: "GlobalAveragePool", x: [2, 3, 4, 4], dtype: .float),
        Case(name: "3-D", op: "GlobalAveragePool", x: [1, 2, 2, 3, 2], dtype: .float),
        Case(name: "p=2", op: "GlobalLpPool", x: [1, 3, 3, 3], dtype: .float),
    ]

    @Test(arguments: poolCases)
    func pool(_ t: Case) throws {
        let x = R.random(t.x, seed: 1, dtype: t.dtype, in: t.range)
        let failures = try R.check(t.op, inputs: [x], attributes: t.attributes, opset: t.opset, outputs: t.outputs, probes: 20)
        #expect(failures.isEmpty, "\(t): \(failures.prefix(3))")
    }

    /// A Resize case: scales or sizes (or roi), attributes, opset.
    struct ResizeCase: CustomStringConvertible, @unchecked Sendable {
        var name: String
        var x: [Int] = [1, 2, 3, 4]
        var scales: [Float]? = nil
        var sizes: [Int64]? = nil
        var roi: [Float]? = nil
        var attributes: [(String, Attribute)] = []
        var opset: Int64 = 19
        var description: String { name }
    }

    static let resizeCases: [ResizeCase] = [
        ResizeCase(name: "nearest x2", scales: [1, 1, 2, 2]),
        ResizeCase(name: "nearest asymmetric floor", scales: [1, 1, 1.5, 2.5],
                   attributes: [("coordinate_transformation_mode", .string("asymmetric")), ("nearest_mode", .string("floor"))]),
        ResizeCase(name: "nearest align_corners ceil sizes", sizes: [1, 2, 5, 2],
                   attributes: [("coordinate_transformation_mode", .string("align_corners")), ("nearest_mode", .string("round_prefer_ceil"))]),
        ResizeCase(name: "nearest tf_half_pixel_for_nn down", x: [1, 1, 6, 6], scales: [1, 1, 0.5, 0.75],
                   attributes: [("coordinate_transformation_mode", .string("tf_half_pixel_for_nn")), ("nearest_mode", .string("ceil"))]),
        ResizeCase(name: "linear x2", scales: [1, 1, 2, 2], attributes: [("mode", .string("linear"))]),
        ResizeCase(name: "linear align_corners sizes", sizes: [1, 2, 5, 7],
                   attributes: [("mode", .string("linear")), ("coordinate_transformation_mode", .string("align_corners"))]),
        ResizeCase(name: "linear pytorch_half_pixel down", x: [1, 1, 5, 6], scales: [1, 1, 0.6, 0.5],
                   attributes: [("mode", .string("linear")), ("coordinate_transformation_mode", .string("pytorch_half_pixel"))]),
        ResizeCase(name: "linear asymmetric axes", scales: [2, 1.5],
                   attributes: [("mode", .string("linear")), ("coordinate_transformation_mode", .string("asymmetric")), ("axes", .ints([2, 3]))]),
        ResizeCase(name: "linear half_pixel_symmetric", scales: [1, 1, 1.7, 0.8],
                   attributes: [("mode", .string("linear")), ("coordinate_transformation_mode", .string("half_pixel_symmetric"))]),
        ResizeCase(name: "linear antialias down", x: [1, 1, 6, 8], scales: [1, 1, 0.5, 0.4],
                   attributes: [("mode", .string("linear")), ("antialias", .int(1))]),
        ResizeCase(name: "linear not_larger sizes", sizes: [5, 9],
                   attributes: [("mode", .string("linear")), ("axes", .ints([2, 3])), ("keep_aspect_ratio_policy", .string("not_larger"))]),
        ResizeCase(name: "linear tf_crop_and_resize", x: [1, 1, 4, 4], sizes: [1, 1, 5, 3], roi: [0, 0, 0.2, -0.1, 1, 1, 0.9, 1.3],
                   attributes: [("mode", .string("linear")), ("coordinate_transformation_mode", .string("tf_crop_and_resize")),
                                ("extrapolation_value", .float(0.5))]),
        ResizeCase(name: "cubic x2", scales: [1, 1, 2, 2], attributes: [("mode", .string("cubic"))]),
        ResizeCase(name: "cubic exclude_outside down", x: [1, 1, 6, 5], scales: [1, 1, 0.7, 1.4],
                   attributes: [("mode", .string("cubic")), ("exclude_outside", .int(1)), ("cubic_coeff_a", .float(-0.5))]),
        ResizeCase(name: "cubic antialias down", x: [1, 1, 8, 6], scales: [1, 1, 0.5, 0.5],
                   attributes: [("mode", .string("cubic")), ("antialias", .int(1))]),
        ResizeCase(name: "opset 11 nearest", x: [1, 2, 2, 3], scales: [1, 1, 3, 2], opset: 11),
        ResizeCase(name: "opset 10 linear", x: [1, 2, 3, 3], scales: [1, 1, 2, 1.5], attributes: [("mode", .string("linear"))], opset: 10),
    ]

    @Test(arguments: resizeCases)
    func resize(_ t: ResizeCase) throws {
        let x = R.random(t.x, seed: 2)
        var constants: [Int: Tensor] = [:]
        var inputs: [NDArray?] = [x]
        if t.opset == 10 {
            constants[1] = Tensor(floats: t.scales!, shape: [t.scales!.count])
            inputs.append(nil)
        } else {
            inputs += [nil, nil, nil]
            if let roi = t.roi { constants[1] = Tensor(floats: roi, shape: [roi.count]) }
            if let s = t.scales { constants[2] = Tensor(floats: s, shape: [s.count]) }
            if let s = t.sizes { constants[3] = Tensor(int64s: s, shape: [s.count]) }
            if t.sizes == nil { inputs.removeLast() }
        }
        let failures = try R.check("Resize", inputs: inputs, constants: constants, attributes: t.attributes, opset: t.opset, probes: 16)
        #expect(failures.isEmpty, "\(t): \(failures.prefix(3))")
    }

    @Test func resizeFloat32AndUpsample() throws {
        let xf = R.random([1, 2, 3, 3], seed: 3, dtype: .float)
        let linear = try R.check("Resize", inputs: [xf, nil, nil], constants: [2: Tensor(floats: [1, 1, 2, 1.5], shape: [4])],
                                 attributes: [("mode", .string("linear"))], probes: 12)
        #expect(linear.isEmpty, "\(linear.prefix(3))")
        let x = R.random([1, 2, 2, 3], seed: 4)
        let up9 = try R.check("Upsample", inputs: [x, nil], constants: [1: Tensor(floats: [1, 1, 2, 3], shape: [4])], opset: 9)
        #expect(up9.isEmpty, "\(up9.prefix(3))")
        let up7 = try R.check("Upsample", inputs: [x], attributes: [("scales", .floats([1, 1, 2, 2])), ("mode", .string("linear"))], opset: 7)
        #expect(up7.isEmpty, "\(up7.prefix(3))")
    }

    /// A Pad case: pads (and axes) as inputs from opset 11, mode.
    struct PadCase: CustomStringConvertible, @unchecked Sendable {
        var name: String
        var x: [Int] = [1, 2, 3, 4]
        var pads: [Int64]
        var axes: [Int64]? = nil
        var mode = "constant"
        var description: String { name }
    }

    static let padCases: [PadCase] = [
        PadCase(name: "constant", pads: [0, 0, 1, 2, 0, 1, 2, 1]),
        PadCase(name: "constant crop", pads: [0, 0, -1, 2, 0, 0, 1, -2]),
        PadCase(name: "reflect", pads: [0, 0, 2, 3, 0, 0, 1, 2], mode: "reflect"),
        PadCase(name: "edge", pads: [0, 1, 2, 1, 1, 0, 3, 2], mode: "edge"),
        PadCase(name: "wrap", pads: [0, 0, 4, 1, 0, 0, 2, 5], mode: "wrap"),
        PadCase(name: "axes", pads: [2, 1, 1, 3], axes: [-1, 2], mode: "reflect"),
        PadCase(name: "nothing padded", pads: [0, 0, 0, 0, 0, 0, 0, 0]),
    ]

    @Test(arguments: padCases)
    func pad(_ t: PadCase) throws {
        let x = R.random(t.x, seed: 5)
        var constants: [Int: Tensor] = [1: Tensor(int64s: t.pads, shape: [t.pads.count])]
        var inputs: [NDArray?] = [x, nil]
        if t.mode == "constant" {
            // The constant is an input too, and gets the sum over the padding.
            inputs.append(NDArray([0.25], shape: []))
        } else if t.axes != nil {
            inputs.append(nil)
        }
        if let axes = t.axes {
            constants[3] = Tensor(int64s: axes, shape: [axes.count])
            inputs.append(nil)
        }
        let failures = try R.check("Pad", inputs: inputs, constants: constants, attributes: [("mode", .string(t.mode))], opset: 19)
        #expect(failures.isEmpty, "\(t): \(failures.prefix(3))")
    }

    @Test func padWithAttributePads() throws {
        let x = R.random([2, 3, 3], seed: 6)
        let failures = try R.check("Pad", inputs: [x], attributes: [("pads", .ints([0, 1, 2, 1, 0, 1])), ("mode", .string("edge"))], opset: 2)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        let xf = R.random([1, 3, 4], seed: 7, dtype: .float)
        let f32 = try R.check("Pad", inputs: [xf, nil], constants: [1: Tensor(int64s: [0, 1, 2, 0, 2, 1], shape: [6])], opset: 18)
        #expect(f32.isEmpty, "\(f32.prefix(3))")
    }
}
