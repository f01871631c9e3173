import Foundation
import PruneIR
import PruneRuntime

/// Deterministic inputs made from a model's input types, for runs without calibration data
/// (`prunec bench`, `prunec check` without `--inputs`, validation after a pipeline).
///
/// One array is made per graph input that has no initializer, in graph order, from one seeded
/// stream, so the same model, shapes and seed always give the same bytes:
/// - floating types: standard normal;
/// - integer types: token ids. An input that feeds, directly or through `Cast`, the indices of a
///   `Gather` whose data is a constant (an embedding table) gets ids below that table's size on
///   the gathered axis, so every id is valid; any other integer input gets values in [0, 100);
/// - booleans: random.
///
/// Dimensions come from `shapes`, else from the model's declared input shape. Open dims of image
/// inputs (rank-4 floating-point inputs with an open height or width) take a size that every layer
/// accepts, found by shape inference: the model's own from its metadata, else the first of
/// 224×224, 640×640, 48×320, ... that no layer contradicts (``SampleShapes`` has the rule). Other
/// symbolic or unknown dimensions are 1.
///
/// ```swift
/// let feeds = try SampleInputs.make(for: model, shapes: ["input_ids": [1, 16]])
/// let outputs = try Interpreter(model: model).run(feeds)
/// ```
///
/// ### See Also
/// - ``CalibrationData``
/// - ``Validation``
public enum SampleInputs {
    /// The exclusive upper bound of integer inputs that feed no constant `Gather`.
    public static let defaultTokenBound = 100

    /// Makes one array per input of `model` that has no initializer.
    ///
    /// - Parameters:
    ///   - model: The model whose inputs to fill.
    ///   - shapes: Concrete shapes by input name; they override the model's declared shapes.
    ///   - seed: Picks the random stream; seed 0 is the stream `prunec bench` has always used.
    /// - Returns: Arrays keyed by input name.
    /// - Throws: ``SampleInputsError`` when an input has no tensor type, no shape (and none in
    ///   `shapes`), a shape in `shapes` of another rank, an element type that cannot be made, or
    ///   open image dims that no candidate size fills without a contradiction.
    public static func make(for model: Model, shapes: [String: Shape] = [:], seed: UInt64 = 0) throws -> [String: NDArray] {
        let resolved = try SampleShapes.resolve(for: model, given: shapes)
        // The XOR keeps seed 0 equal to the stream bench used before the seed existed.
        var rng = SplitMix64(seed: 0x5EED_2024 ^ seed)
        var out: [String: NDArray] = [:]
        for v in model.graph.inputs where v.initializer == nil {
            guard case .tensor(let dtype, _)? = v.type, let dims = resolved[v.name] else {
                throw SampleInputsError.untypedInput(v.name)
            }
            let bound = tokenBound(of: v) ?? defaultTokenBound
            out[v.name] = try synthesize(dtype, dims, name: v.name, tokenBound: bound, rng: &rng)
        }
        return out
    }

    /// The smallest table size among the constant `Gather`s whose indices `value` feeds
    /// (through any chain of `Cast`s), or `nil` when it feeds none.
    static func tokenBound(of value: Value) -> Int? {
        var bound: Int?
        var stack = [value]
        var seen = Set<ObjectIdentifier>()
        while let v = stack.popLast() {
            guard seen.insert(ObjectIdentifier(v)).inserted else { continue }
            for use in v.uses {
                let node = use.node
                if node.opType == .cast {
                    stack += node.outputs
                } else if node.opType == .gather, use.inputIndex == 1, let table = node.inputs[0]?.constantValue {
                    let rank = table.shape.count
                    var axis = (try? node.attribute("axis", as: Int.self)) ?? nil ?? 0
                    if axis < 0 { axis += rank }
                    guard (0..<rank).contains(axis), table.shape[axis] > 0 else { continue }
                    bound = min(bound ?? .max, table.shape[axis])
                }
            }
        }
        return bound
    }

    private static func synthesize(_ dtype: DType, _ shape: [Int], name: String, tokenBound: Int,
                                   rng: inout SplitMix64) throws -> NDArray {
        guard NDArray.supports(dtype) else { throw SampleInputsError.unsupportedType(input: name, dtype: dtype) }
        let a = NDArray(uninitialized: dtype, shape: shape)
        let n = a.count
        func fill<T>(_ type: T.Type, _ make: (inout SplitMix64) -> T) {
            let p = a.pointer(as: T.self)
            for i in 0..<n { p[i] = make(&rng) }
        }
        // Ids stay below the type's own maximum too (an int8 input cannot hold id 1000).
        func ints<T: FixedWidthInteger>(_ type: T.Type) {
            let typeMax = UInt64(T.max)
            let limit = typeMax < UInt64(tokenBound) ? typeMax + 1 : UInt64(tokenBound)
            fill(T.self) { T(truncatingIfNeeded: $0.next() % limit) }
        }
        switch dtype {
        case .float: fill(Float.self) { Float($0.normal()) }
        case .double: fill(Double.self) { $0.normal() }
        case .float16: fill(Float16.self) { Float16($0.normal()) }
        case .bfloat16: fill(UInt16.self) { UInt16(truncatingIfNeeded: Float($0.normal()).bitPattern >> 16) }
        case .int8: ints(Int8.self)
        case .int16: ints(Int16.self)
        case .int32: ints(Int32.self)
        case .int64: ints(Int64.self)
        case .uint8: ints(UInt8.self)
        case .uint16: ints(UInt16.self)
        case .uint32: ints(UInt32.self)
        case .uint64: ints(UInt64.self)
        case .bool: fill(Bool.self) { $0.next() & 1 == 1 }
        default: throw SampleInputsError.unsupportedType(input: name, dtype: dtype)
        }
        return a
    }
}

/// Why ``SampleInputs/make(for:shapes:seed:)`` cannot make an input. Each case is fixed by the
/// caller (bind a shape, or give data), so command-line tools report it as a usage error.
public enum SampleInputsError: Error, CustomStringConvertible, Equatable {
    /// The input's type is not a tensor with a known element type.
    case untypedInput(String)
    /// The input has no shape in the model and none was given.
    case unknownShape(String)
    /// A given shape has another rank than the model's input.
    case rankMismatch(input: String, given: Shape, declared: Shape)
    /// Inputs of this element type cannot be synthesized.
    case unsupportedType(input: String, dtype: DType)
    /// A shape was given for a name that is not an input of the model.
    case notAnInput(name: String, file: String, inputs: [String])
    /// Image inputs have open height or width, and with every candidate size (`tried`) some node
    /// cannot run; `reason` is the first candidate's.
    case noWorkingSize(inputs: [String], tried: [String], reason: String)

    public var description: String {
        switch self {
        case .untypedInput(let name):
            return "input '\(name)' is not a tensor with a known element type; give data with --inputs"
        case .unknownShape(let name):
            return "input '\(name)' has no shape in the model; bind it with --shape \(name)=DIMS"
        case .rankMismatch(let name, let given, let declared):
            return "--shape \(name) has rank \(given.rank), the model's input has rank \(declared.rank): \(declared)"
        case .unsupportedType(let name, let dtype):
            return "input '\(name)': cannot synthesize element type \(dtype); give data with --inputs"
        case .notAnInput(let name, let file, let inputs):
            return "--shape names '\(name)', which is not an input of \(file) (inputs: \(inputs.joined(separator: ", ")))"
        case .noWorkingSize(let inputs, let tried, let reason):
            let names = inputs.map { "'\($0)'" }.joined(separator: ", ")
            let example = inputs.first ?? "NAME"
            return "cannot choose a size for the open height/width of input \(names): no layer-compatible size among "
                + "\(tried.joined(separator: ", ")) (\(reason)); pass --shape \(example)=DIMS or calibration data (--calib / --inputs)"
        }
    }
}

/// A small, fast, seedable generator (SplitMix64), so synthesized inputs are the same every run.
struct SplitMix64 {
    private var state: UInt64
    private var spare: Double?

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    mutating func uniform() -> Double { (Double(next() >> 11) + 1) * 0x1p-53 }

    /// Standard normal (Box–Muller, both values used).
    mutating func normal() -> Double {
        if let s = spare {
            spare = nil
            return s
        }
        let r = (-2 * Foundation.log(uniform())).squareRoot()
        let t = 2 * Double.pi * uniform()
        spare = r * sin(t)
        return r * cos(t)
    }
}
