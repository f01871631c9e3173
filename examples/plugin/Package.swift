// swift-tools-version:6.1
import PackageDescription

// An out-of-tree prunec plugin: `swift build` makes .build/debug/libWandaPasses.so, which
// `prunec MODEL --plugin .build/debug/libWandaPasses.so --pass 'wanda{sparsity=0.3}' --pass fold-masks -o OUT`
// loads. It depends on prunec's package by path (a release would use its URL and version).
let package = Package(
    name: "WandaPlugin",
    products: [
        .library(name: "WandaPasses", type: .dynamic, targets: ["WandaPasses"]),
    ],
    dependencies: [
        .package(name: "prunec", path: "../.."),
    ],
    targets: [
        .target(
            name: "WandaPasses",
            dependencies: [
                // The dynamic product: the plugin then holds no PruneKit of its own (see README.md).
                .product(name: "PruneKitDynamic", package: "prunec"),
            ]
        ),
    ]
)
