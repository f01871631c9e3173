import Foundation
import PruneIR

/// The concrete shapes ``SampleInputs`` fills: the user's, the model's, and for images whose
/// height or width the model leaves open, a size that every layer of the model accepts.
///
/// The rule, in order:
/// 1. An input named in `given` (`--shape`) takes that shape; the user always wins.
/// 2. An *image input* is a floating-point input of rank 4 with a non-fixed spatial dim. Its
///    channel axis is 1 when dim 1 is fixed (NCHW), else 3 when dim 3 is (NHWC), else 1; the other
///    two non-batch axes are spatial. Its open spatial dims take one height × width from a list of
///    candidates, the same for every image input:
///    - first the sizes the model declares in `metadata_props` (a key such as `imgsz`,
///      `image_size`, `img_size`, `input_size`, `image_shape`, `input_shape`, any prefix allowed,
///      whose value holds one number (a square) or a shape whose last two spatial numbers are
///      height and width: `[640, 640]`, `3,48,320`, `[1, 3, 224, 224]`);
///    - then ``defaultSizes``: 224×224 (classification), 640×640 (detection), 48×320 and 32×320
///      (text lines), 48×192, and more square and wide sizes; when every image input has a fixed
///      channel count other than 1 or 3 (a denoiser's latent), ``latentSizes`` (32², 64², 16²)
///      come first.
///
///    The first candidate with which shape inference runs through the whole graph without a
///    contradiction is taken (see ``firstContradiction(in:shapes:)``): no sliding window (Conv,
///    pooling) larger than its padded input, no empty tensor of rank ≥ 2 made from non-empty
///    inputs, element-wise operands that broadcast, Concat operands equal off the axis, MatMul and
///    Gemm inner dims equal, Reshape targets with the input's element count. The user's `--shape`
///    and calibration data are never checked this way. This is a rule over the graph, not over the
///    model's name: a detector whose feature pyramid adds maps of stride 32 rejects sizes that are
///    not multiples of 32, a text recognizer whose neck concatenates a height-1 map rejects 224×224
///    and takes 48×320.
/// 3. Any other open dim (the batch, a sequence length) is 1, except a symbol that an image
///    input's chosen size binds, which takes that size wherever it appears.
///
/// When no candidate passes, ``SampleInputsError/noWorkingSize(inputs:tried:reason:)`` asks for
/// `--shape NAME=...` or calibration data.
public enum SampleShapes {
    /// The height × width pairs tried, after the model's own, for image inputs with open spatial
    /// dims.
    public static let defaultSizes: [(height: Int, width: Int)] = [
        (224, 224), (640, 640), (48, 320), (32, 320), (48, 192), (32, 128), (512, 512), (256, 256),
        (320, 320), (384, 384), (416, 416), (448, 448), (96, 96), (64, 64), (32, 32), (1024, 1024),
    ]

    /// Tried first when every image input has a fixed channel count other than 1 or 3 (a
    /// latent: SD's 4 channels at 64×64 for 512² images, SD3/FLUX's 16).
    public static let latentSizes: [(height: Int, width: Int)] = [(32, 32), (64, 64), (16, 16)]

    /// Concrete dims for every input of `model` that has no initializer, by name.
    ///
    /// - Parameters:
    ///   - model: The model (not modified: inference runs on copies).
    ///   - given: Shapes from the user, by input name; open dims in them are 1.
    /// - Throws: ``SampleInputsError`` for an input without a tensor type or shape, a given shape
    ///   of another rank, or image inputs for which no candidate size passes.
    public static func resolve(for model: Model, given: [String: Shape] = [:]) throws -> [String: [Int]] {
        var fixed: [String: [Int]] = [:]
        var images: [ImageInput] = []
        var open: [(name: String, dims: [Dim])] = []
        for v in model.graph.inputs where v.initializer == nil {
            guard case .tensor(let dtype, let declared)? = v.type else { throw SampleInputsError.untypedInput(v.name) }
            if let s = given[v.name] {
                if let declared, declared.rank != s.rank {
                    throw SampleInputsError.rankMismatch(input: v.name, given: s, declared: declared)
                }
                fixed[v.name] = s.dims.map { $0.value ?? 1 }
            } else if let declared {
                if let image = ImageInput(name: v.name, dtype: dtype, shape: declared) {
                    images.append(image)
                } else {
                    open.append((v.name, declared.dims))
                }
            } else {
                throw SampleInputsError.unknownShape(v.name)
            }
        }
        if images.isEmpty {
            for (name, dims) in open { fixed[name] = dims.map { $0.value ?? 1 } }
            return fixed
        }

        let declared = metadataSizes(model)
        // Latents (a denoiser's 4 or 16 channels, not an image's 1 or 3) are a few dozen
        // positions on a side: try those first, so validation does not run an SD UNet at 224².
        let latentLike = images.allSatisfy { $0.channels.map { $0 != 1 && $0 != 3 } ?? false }
        let defaults = latentLike ? latentSizes + defaultSizes.filter { d in !latentSizes.contains { $0 == d } } : defaultSizes
        let candidates = declared + defaults.filter { d in !declared.contains { $0 == d } }
        var firstFailure: String?
        for size in candidates {
            var shapes = fixed
            var symbols: [String: Int] = [:]
            var conflicting: Set<String> = []
            for image in images {
                let dims = image.dims(height: size.height, width: size.width)
                shapes[image.name] = dims
                for (d, n) in zip(image.shape.dims, dims) {
                    guard case .symbol(let s) = d else { continue }
                    if let old = symbols[s], old != n { conflicting.insert(s) }
                    symbols[s] = n
                }
            }
            for s in conflicting { symbols[s] = nil }
            for (name, dims) in open {
                shapes[name] = dims.map { d in
                    if case .symbol(let s) = d, let n = symbols[s] { return n }
                    return d.value ?? 1
                }
            }
            guard let reason = firstContradiction(in: model, shapes: shapes) else { return shapes }
            if firstFailure == nil { firstFailure = "\(size.height)x\(size.width): \(reason)" }
        }
        throw SampleInputsError.noWorkingSize(
            inputs: images.map(\.name), tried: candidates.map { "\($0.height)x\($0.width)" }, reason: firstFailure ?? "")
    }

    /// The first place where shape inference with `shapes` bound to the inputs finds that a node
    /// cannot run, in words (`node 'pool' (AveragePool): window larger than its padded input`),
    /// or `nil` when none does. Inference runs on a copy; `model` is not modified.
    ///
    /// Only contradictions between fully known shapes count: an op inference has no rule for,
    /// or a data-dependent shape, is not one.
    public static func firstContradiction(in model: Model, shapes: [String: [Int]]) -> String? {
        let copy = model.copy()
        let (_, constants) = ShapeInference(overrides: shapes.mapValues { Shape($0) }).runCollectingConstants(on: copy)
        for node in copy.graph.nodes {
            if let reason = contradiction(at: node, constants: constants) {
                return "node \(node.displayName): \(reason)"
            }
        }
        return nil
    }

    // MARK: - Image inputs

    /// A floating-point rank-4 input whose height or width is open.
    private struct ImageInput {
        let name: String
        let shape: Shape
        let spatial: (Int, Int)

        /// The fixed channel count, if any.
        var channels: Int? { shape.dims[spatial == (2, 3) ? 1 : 3].value }

        init?(name: String, dtype: DType, shape: Shape) {
            guard dtype.isFloatingPoint, shape.rank == 4 else { return nil }
            let d = shape.dims
            if d[1].value != nil {
                spatial = (2, 3)
            } else if d[3].value != nil {
                spatial = (1, 2)
            } else {
                spatial = (2, 3)
            }
            guard d[spatial.0].value == nil || d[spatial.1].value == nil else { return nil }
            self.name = name
            self.shape = shape
        }

        /// The input's dims with open spatial dims set to `height` × `width`, other open dims 1.
        func dims(height: Int, width: Int) -> [Int] {
            shape.dims.enumerated().map { i, d in
                if let v = d.value { return v }
                if i == spatial.0 { return height }
                if i == spatial.1 { return width }
                return 1
            }
        }
    }

    /// Height × width pairs the model declares in its metadata (see the type's rule 2).
    static func metadataSizes(_ model: Model) -> [(height: Int, width: Int)] {
        let keys = ["imgsz", "image_size", "imagesize", "img_size", "imgsize", "input_size", "inputsize",
                    "image_shape", "imageshape", "img_shape", "imgshape", "input_shape", "inputshape"]
        var out: [(height: Int, width: Int)] = []
        for (key, value) in model.metadata {
            let k = key.lowercased()
            guard keys.contains(where: { k == $0 || k.hasSuffix("_" + $0) || k.hasSuffix("." + $0) }) else { continue }
            guard let size = parseSize(value), !out.contains(where: { $0 == size }) else { continue }
            out.append(size)
        }
        return out
    }

    /// `640` → 640×640; `[48, 320]`, `3,48,320`, `[1, 3, 224, 224]`, `1x640x640x3` → the last two
    /// numbers after dropping a leading batch of 1 and a channel count (≤ 4) at either end.
    static func parseSize(_ text: String) -> (height: Int, width: Int)? {
        var numbers: [Int] = []
        var current = ""
        for ch in text + " " {
            if ch.isASCII && ch.isNumber {
                current.append(ch)
            } else if !current.isEmpty {
                guard let n = Int(current) else { return nil }
                numbers.append(n)
                current = ""
            }
        }
        guard !numbers.isEmpty, numbers.count <= 5, numbers.allSatisfy({ (1...65536).contains($0) }) else { return nil }
        if numbers.count == 1 { return (numbers[0], numbers[0]) }
        if numbers.count == 4, numbers[0] == 1 { numbers.removeFirst() }
        if numbers.count == 3 {
            if numbers[0] <= 4 { numbers.removeFirst() } else if numbers[2] <= 4 { numbers.removeLast() }
        }
        guard numbers.count == 2 else { return nil }
        return (numbers[0], numbers[1])
    }

    // MARK: - Contradictions

    private static let windows: Set<String> = ["Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"]

    private static let broadcasting: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Mod", "And", "Or", "Xor", "Equal", "Greater", "GreaterOrEqual",
        "Less", "LessOrEqual", "Max", "Min", "Sum", "Mean", "Where", "BitShift", "BitwiseAnd", "BitwiseOr",
        "BitwiseXor",
    ]

    /// Why `node` cannot run on its inferred input shapes, or `nil` when they fit (or are not
    /// all known).
    private static func contradiction(at node: Node, constants: KnownIntegers) -> String? {
        func dims(_ v: Value?) -> [Int]? { v?.type?.shape?.staticDims }
        let inputs = node.inputs.map { dims($0) }
        let op = node.opType.canonicalDomain.isEmpty ? node.opType.name : ""

        // A dim that shape inference made empty from non-empty inputs: a window (Conv, pooling)
        // larger than its padded input, a slice past the end.
        // Rank-0 and rank-1 results (`Shape` of a scalar, an empty `roi`) may be empty by design.
        let inputsEmpty = inputs.contains { $0?.contains(0) ?? false }
        if !inputsEmpty && !node.inputs.isEmpty {
            for out in node.outputs {
                guard let s = out.type?.shape, s.dims.contains(where: { ($0.value ?? 1) <= 0 }) else { continue }
                if windows.contains(op) { return "its window is larger than its padded input (output \(s))" }
                if s.rank >= 2 { return "its output '\(out.name)' would be empty: \(s)" }
            }
        }

        switch op {
        case _ where broadcasting.contains(op):
            let shapes = inputs.compactMap { $0 }
            guard shapes.count == node.inputs.compactMap({ $0 }).count, broadcast(shapes) == nil else { return nil }
            return "operands \(shapes.map(text).joined(separator: ", ")) do not broadcast"
        case "Concat":
            guard let axisAttr = try? node.attribute("axis", as: Int.self) else { return nil }
            let shapes = inputs.compactMap { $0 }
            guard let first = shapes.first, shapes.count == node.inputs.compactMap({ $0 }).count else { return nil }
            let axis = axisAttr < 0 ? axisAttr + first.count : axisAttr
            for s in shapes.dropFirst() {
                guard s.count == first.count else { return "operands \(shapes.map(text).joined(separator: ", ")) differ in rank" }
                for i in 0..<s.count where i != axis && s[i] != first[i] {
                    return "operands \(shapes.map(text).joined(separator: ", ")) differ off axis \(axis)"
                }
            }
            return nil
        case "MatMul":
            guard inputs.count == 2, let a = inputs[0], let b = inputs[1], !a.isEmpty, !b.isEmpty else { return nil }
            let k = a[a.count - 1], kb = b.count == 1 ? b[0] : b[b.count - 2]
            return k == kb ? nil : "inner dims differ: \(text(a)) × \(text(b))"
        case "Gemm":
            guard inputs.count >= 2, let a = inputs[0], let b = inputs[1], a.count == 2, b.count == 2 else { return nil }
            let ta = ((try? node.attribute("transA", as: Int.self)) ?? nil ?? 0) != 0
            let tb = ((try? node.attribute("transB", as: Int.self)) ?? nil ?? 0) != 0
            return (ta ? a[0] : a[1]) == (tb ? b[1] : b[0]) ? nil : "inner dims differ: \(text(a)) × \(text(b))"
        case "Reshape":
            guard node.inputs.count >= 2, let x = inputs[0], let shapeInput = node.inputs[1],
                let target = constants.ints(of: shapeInput), let count = Shape.product(x)
            else { return nil }
            let allowZero = ((try? node.attribute("allowzero", as: Int.self)) ?? nil ?? 0) != 0
            var known = 1
            var inferred = false
            for (i, t) in target.enumerated() {
                if t == -1 {
                    inferred = true
                } else if t == 0 && !allowZero {
                    guard i < x.count else { return "target \(text(target)) copies a dim input \(text(x)) lacks" }
                    known *= x[i]
                } else if t >= 0 {
                    known *= t
                } else {
                    return nil
                }
            }
            let fits = inferred ? known > 0 && count % known == 0 : known == count
            return fits ? nil : "input \(text(x)) (\(count) elements) cannot take the shape \(text(target))"
        default:
            return nil
        }
    }

    private static func text(_ dims: [Int]) -> String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }

    /// The numpy broadcast of static shapes, or `nil` when they do not broadcast.
    private static func broadcast(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var out = [Int](repeating: 1, count: rank)
        for s in shapes {
            for (i, d) in s.enumerated() {
                let j = rank - s.count + i
                if out[j] == 1 {
                    out[j] = d
                } else if d != 1 && d != out[j] {
                    return nil
                }
            }
        }
        return out
    }
}
