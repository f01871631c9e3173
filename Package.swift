// swift-tools-version:6.1
import PackageDescription

// Flags the C++ shim over Debian's libonnx needs: the headers are generated for the
// "onnx" namespace with the ML extensions on.
let onnxCXXSettings: [CXXSetting] = [
    .define("ONNX_NAMESPACE", to: "onnx"),
    .define("ONNX_ML", to: "1"),
]

let package = Package(
    name: "prunec",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "prunec", targets: ["prunec"]),
        .library(name: "PruneIR", targets: ["PruneIR"]),
        .library(name: "PruneRuntime", targets: ["PruneRuntime"]),
        .library(name: "PruneKit", targets: ["PruneKit"]),
        // Every built-in pass in one registry, for programs that drive PruneKit themselves.
        .library(name: "BuiltinPasses", targets: ["BuiltinPasses"]),
        // What plugins link against (examples/plugin): at load time their references bind to the
        // copy in prunec, which exports its symbols; see docs/ARCHITECTURE.md, "Plugins".
        .library(name: "PruneKitDynamic", type: .dynamic, targets: ["PruneKit", "PruneIR", "PruneRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", exact: "0.9.20"),
    ],
    targets: [
        .target(
            name: "CBLAS",
            linkerSettings: [.linkedLibrary("openblas")]
        ),
        // Hand-vectorized float32 kernels (AVX2/AVX-512 copies picked at run time, portable fallbacks).
        .target(name: "CKernels"),
        .target(
            name: "CONNX",
            cxxSettings: onnxCXXSettings,
            linkerSettings: [
                .linkedLibrary("onnx"),
                .linkedLibrary("onnx_proto"),
                .linkedLibrary("protobuf"),
            ]
        ),
        .target(
            name: "ONNXProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .target(
            name: "PruneIR",
            dependencies: [
                "ONNXProto",
                "CONNX",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "PruneRuntime",
            dependencies: ["PruneIR", "CBLAS", "CKernels", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            // Kernels hand raw pointers to parallel loops; Swift 6's Sendable checking would
            // reject every such capture, so this target stays in the Swift 5 language mode.
            swiftSettings: [
                .swiftLanguageMode(.v5),
                .unsafeFlags(["-Xfrontend", "-disable-generic-metadata-prespecialization"]),
            ]
        ),
        .target(
            name: "PruneKit",
            dependencies: ["PruneIR", "PruneRuntime", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "CleanupPasses",
            dependencies: ["PruneKit", "PruneIR"],
            path: "Passes/Cleanup"
        ),
        .target(
            name: "AutoBotPasses",
            dependencies: ["PruneKit", "PruneIR", "PruneRuntime"],
            path: "Passes/AutoBot"
        ),
        .target(
            name: "DepthPasses",
            dependencies: ["PruneKit", "PruneIR", "PruneRuntime"],
            path: "Passes/Depth"
        ),
        .target(
            name: "DistillPasses",
            dependencies: ["PruneKit", "PruneIR", "PruneRuntime"],
            path: "Passes/Distill"
        ),
        .target(
            name: "EcoDiffPasses",
            // Fluctuation's unit scores are ecodiff's starting gates; reconstruct's bias mode
            // folds the means its gates were trained with.
            dependencies: ["PruneKit", "PruneIR", "PruneRuntime", "FluctuationPasses", "ReconstructPasses"],
            path: "Passes/EcoDiff"
        ),
        .target(
            name: "LDPrunerPasses",
            dependencies: ["PruneKit", "PruneIR", "PruneRuntime"],
            path: "Passes/LDPruner"
        ),
        .target(
            name: "MagnitudePasses",
            dependencies: ["PruneKit", "PruneIR"],
            path: "Passes/Magnitude"
        ),
        .target(
            name: "FluctuationPasses",
            dependencies: ["PruneKit", "PruneIR", "PruneRuntime"],
            path: "Passes/Fluctuation"
        ),
        .target(
            name: "ReconstructPasses",
            dependencies: ["PruneKit", "PruneIR", "PruneRuntime"],
            path: "Passes/Reconstruct"
        ),
        // The registry of every built-in pass: the one target that depends on all pass families.
        .target(
            name: "BuiltinPasses",
            dependencies: [
                "PruneKit",
                "CleanupPasses",
                "MagnitudePasses",
                "EcoDiffPasses",
                "DepthPasses",
                "LDPrunerPasses",
                "AutoBotPasses",
                "ReconstructPasses",
                "FluctuationPasses",
                "DistillPasses",
            ]
        ),
        .executableTarget(
            name: "prunec",
            dependencies: [
                "PruneIR",
                "PruneRuntime",
                "PruneKit",
                "BuiltinPasses",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Plugins (`--plugin lib.so`) link against PruneKitDynamic; this executable exports every
            // symbol and answers to that library's soname, so the loader binds a plugin to the
            // PruneKit in here and never loads a second one (docs/ARCHITECTURE.md, "Plugins").
            linkerSettings: [
                .unsafeFlags(["-use-ld=lld", "-Xlinker", "--export-dynamic", "-Xlinker", "-soname", "-Xlinker", "libPruneKitDynamic.so"],
                             .when(platforms: [.linux])),
            ]
        ),
        .target(
            name: "PruneTestSupport",
            dependencies: ["ONNXProto"],
            path: "Tests/PruneTestSupport"
        ),
        .testTarget(
            name: "PruneIRTests",
            dependencies: ["PruneIR", "ONNXProto", "PruneTestSupport"]
        ),
        .testTarget(
            name: "PruneRuntimeTests",
            dependencies: ["PruneRuntime", "PruneIR", "ONNXProto", "PruneTestSupport"]
        ),
        .testTarget(
            name: "PruneKitTests",
            dependencies: ["PruneKit", "PruneIR", "PruneRuntime", "CleanupPasses", "MagnitudePasses", "EcoDiffPasses", "DepthPasses", "LDPrunerPasses", "AutoBotPasses", "ReconstructPasses", "FluctuationPasses", "DistillPasses", "BuiltinPasses", "PruneTestSupport"]
        ),
        .testTarget(
            name: "PrunecTests",
            dependencies: ["prunec", "PruneIR", "PruneRuntime", "ONNXProto", "PruneTestSupport"]
        ),
    ],
    cxxLanguageStandard: .cxx17
)
