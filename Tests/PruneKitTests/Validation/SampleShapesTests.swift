import Foundation
import PruneIR
import PruneRuntime
import Testing

@testable import PruneKit

/// `SampleShapes.resolve`: an image input with open height/width gets a size every layer accepts
/// (checked by shape inference), the model's own size first, the user's always.
@Suite struct SampleShapesTests {
    static let open: [Dim] = [.symbol("N"), .known(3), .symbol("H"), .symbol("W")]

    /// `x` [N, 3, H, W] → AveragePool 3x3 (no padding): 1x1 cannot run, any default size can.
    static func pooled(metadata: [(key: String, value: String)] = []) -> Model {
        let b = GraphBuilder(name: "pool")
        let x = b.input("x", .float, open)
        b.output(b.add(.averagePool, [x], attributes: [("kernel_shape", .ints([3, 3]))]))
        let m = b.model()
        m.metadata = metadata
        return m
    }

    /// A text-line recognizer's neck: `x` → MaxPool [48, 4] / [48, 4] → [N, 3, H/48, W/4], concatenated
    /// on the width with a constant [1, 3, 1, 5]: only heights in 48..<96 fit.
    static func textLine() -> Model {
        let b = GraphBuilder(name: "line")
        let x = b.input("x", .float, open)
        let p = b.add(.maxPool, [x], attributes: [("kernel_shape", .ints([48, 4])), ("strides", .ints([48, 4]))])
        let c = b.initializer("c", Tensor(floats: Array(repeating: 0, count: 15), shape: [1, 3, 1, 5]))
        b.output(b.add(.concat, [p, c], attributes: [("axis", .int(3))]))
        return b.model()
    }

    @Test func anOpenImageTakesTheFirstSizeEveryLayerAccepts() throws {
        #expect(try SampleShapes.resolve(for: Self.pooled()) == ["x": [1, 3, 224, 224]])
        #expect(try SampleInputs.make(for: Self.pooled())["x"]?.shape == [1, 3, 224, 224])
        // 224x224 and 640x640 give a height of 4 and 13 against the constant's 1.
        #expect(try SampleShapes.resolve(for: Self.textLine()) == ["x": [1, 3, 48, 320]])
        let reason = try #require(SampleShapes.firstContradiction(in: Self.textLine(), shapes: ["x": [1, 3, 224, 224]]))
        #expect(reason.contains("Concat") && reason.contains("differ off axis 3"), "\(reason)")
        #expect(SampleShapes.firstContradiction(in: Self.pooled(), shapes: ["x": [1, 3, 1, 1]])?.contains("window") == true)
    }

    @Test func theModelsOwnSizeComesFirstAndTheUsersWins() throws {
        let m = Self.pooled(metadata: [("imgsz", "[96, 128]")])
        #expect(try SampleShapes.resolve(for: m) == ["x": [1, 3, 96, 128]])
        // The user's shape is taken as given, even one a layer refuses.
        #expect(try SampleShapes.resolve(for: m, given: ["x": [2, 3, 1, 1]]) == ["x": [2, 3, 1, 1]])
        #expect(SampleShapes.parseSize("640")! == (640, 640))
        #expect(SampleShapes.parseSize("3,48,320")! == (48, 320))
        #expect(SampleShapes.parseSize("[1, 3, 224, 224]")! == (224, 224))
        #expect(SampleShapes.parseSize("1x640x480x3")! == (640, 480))
        #expect(SampleShapes.parseSize("none") == nil && SampleShapes.parseSize("1,2,3,4,5,6") == nil)
        // A size the model declares but cannot run at is skipped like any other.
        let bad = Self.textLine()
        bad.metadata = [("input_shape", "[3, 224, 224]")]
        #expect(try SampleShapes.resolve(for: bad) == ["x": [1, 3, 48, 320]])
    }

    /// NHWC images keep their channels last; a second input that shares the image's symbols takes
    /// the same size; every other open dim stays 1.
    @Test func layoutsAndSharedSymbols() throws {
        let b = GraphBuilder(name: "nhwc")
        let x = b.input("x", .float, [.symbol("N"), .symbol("H"), .symbol("W"), .known(3)])
        let mask = b.input("mask", .float, [.symbol("N"), .symbol("H"), .symbol("W")])
        let t = b.input("t", .float, [.symbol("T"), .known(4)])
        b.output(b.add(.relu, [x]), b.add(.relu, [mask]), b.add(.relu, [t]))
        let shapes = try SampleShapes.resolve(for: b.model())
        #expect(shapes == ["x": [1, 224, 224, 3], "mask": [1, 224, 224], "t": [1, 4]])
    }

    /// With every candidate contradicted, the error names the input and asks for --shape or data.
    @Test func noSizeFitsIsAnErrorThatSaysWhatToPass() throws {
        // Flatten → MatMul with a [3·7·11, 2] weight: only 7x11 images fit, which no candidate is.
        let b = GraphBuilder(name: "fixed")
        let x = b.input("image", .float, Self.open)
        let f = b.add(.flatten, [x], attributes: [("axis", .int(1))])
        let w = b.initializer("w", Tensor(floats: Array(repeating: 0, count: 3 * 7 * 11 * 2), shape: [3 * 7 * 11, 2]))
        b.output(b.add(.matMul, [f, w]))
        let m = b.model()
        #expect(throws: SampleInputsError.self) { try SampleInputs.make(for: m) }
        do {
            _ = try SampleShapes.resolve(for: m)
        } catch let e as SampleInputsError {
            let text = e.description
            #expect(text.contains("'image'") && text.contains("--shape image=") && text.contains("--calib"), "\(text)")
            #expect(text.contains("inner dims differ"), "\(text)")
        }
        #expect(try SampleShapes.resolve(for: m, given: ["image": [1, 3, 7, 11]]) == ["image": [1, 3, 7, 11]])
        #expect(SampleShapes.firstContradiction(in: m, shapes: ["image": [1, 3, 7, 11]]) == nil)
    }

    /// Models without open image dims get what they always got: declared dims, open ones 1.
    @Test func otherInputsAreUnchanged() throws {
        let m = SampleInputsTests.model()
        #expect(try SampleShapes.resolve(for: m) == ["ids": [1, 64], "mask": [1, 64], "x": [1, 3], "small": [32]])
    }
}
