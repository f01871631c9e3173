// swift-tools-version:6.1
// Benchmarks for prunec, kept in their own package so that the root package does not depend on
// ordo-one/benchmark (and its build plugin) for ordinary builds and tests.
//
//   swift package --package-path Benchmarks benchmark            # all benchmarks
//   bash scripts/bench-io.sh                                    # Swift vs Python onnx, one table
import PackageDescription

let package = Package(
    name: "prunec-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "prunec", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // ordo-one benchmark suite: `swift package benchmark --target ModelIO`.
        .executableTarget(
            name: "ModelIO",
            dependencies: [
                .product(name: "PruneIR", package: "prunec"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ModelIO",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // A plain loop over the same calls, for perf/valgrind (not a benchmark: no numbers to report).
        .executableTarget(
            name: "ModelIOLoop",
            dependencies: [.product(name: "PruneIR", package: "prunec")],
            path: "Tools/ModelIOLoop"
        ),
    ]
)
