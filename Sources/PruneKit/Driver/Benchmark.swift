import Foundation
import PruneIR
import PruneRuntime

/// `prunec bench`: times a model on the interpreter and profiles it per op.
public enum Benchmark {
    /// Runs `model` on `feeds`: `warmup` unmeasured runs, `runs` timed runs without per-node
    /// timing (two clock reads per node would inflate small models), then as many profiled runs
    /// for the per-op table; MACs at the fed shapes and the GEMM efficiency against one large sgemm.
    ///
    /// - Parameters:
    ///   - file: How errors and the report name the model.
    ///   - inputsFile: The data file the feeds came from (`nil`: synthesized).
    ///   - peakRSS: Reads the process's peak resident memory after the runs.
    /// - Throws: `RuntimeError` naming the model for nodes the interpreter cannot run or inputs it
    ///   rejects.
    public static func measure(_ model: Model, file: String, feeds: [String: NDArray], inputsFile: String?, runs: Int, warmup: Int,
                               threads: Int, peakRSS: () -> Int) throws -> BenchReport {
        let dataName = inputsFile ?? "synthesized inputs"
        let interpreter: Interpreter
        do {
            interpreter = try Interpreter(model: model, options: Interpreter.Options(threads: threads, profile: false))
        } catch let e as RuntimeError {
            throw ModelRunError(file: file, reason: "\(e)")
        }
        // The warmup is `warmup` runs and at least a quarter of a second: a new pool worker starts
        // on its creator's core and the OS moves it within some tens of milliseconds, and even at
        // one thread a new process's first tens of milliseconds ran 1.5x slower on a shared
        // 2-core VM (dit: every one of 200 runs after a 20-run warmup, in some processes). A
        // 0.1 ms model's first hundred runs would time that, not the model.
        let warmupStart = Clock.now()
        var warmed = 0
        while warmed < warmup || (warmup > 0 && Clock.now() - warmupStart < 0.25 && warmed < 100_000) {
            _ = try TensorData.run(interpreter, on: feeds, file: dataName)
            warmed += 1
        }
        interpreter.pool.resetCounters()
        interpreter.profiling = false
        var seconds: [Double] = []
        var intermediateBytes = 0
        for r in 0..<runs {
            let t0 = Clock.now()
            _ = try TensorData.run(interpreter, on: feeds, file: dataName)
            seconds.append(Clock.now() - t0)
            if r == 0 { intermediateBytes = interpreter.pool.requestedBytes }
        }
        interpreter.profiling = true
        interpreter.profile.reset()
        for _ in 0..<runs { _ = try TensorData.run(interpreter, on: feeds, file: dataName) }

        // Shapes come from the actual inputs, so MACs are known whenever the shape rules cover the model.
        ShapeInference(overrides: feeds.mapValues { Shape($0.shape) }).run(on: model)
        let costs = CostModel().costs(model)
        let macs = CostModel.totalMACs(of: costs)
        let gemm = GemmEfficiency.measure(costs: costs, model: model, profile: interpreter.profile, runs: runs, threads: threads)
        return BenchReport(
            model: file, inputs: inputsFile, seconds: seconds, warmup: warmup, threads: threads,
            profile: interpreter.profile.perOp, macs: macs,
            arenaBytes: interpreter.pool.reservedBytes, intermediateBytes: intermediateBytes,
            weightBytes: CostModel.parameterBytes(model), peakRSSBytes: peakRSS(),
            feeds: model.graph.inputs.compactMap { v in feeds[v.name].map { (v.name, $0) } },
            gemmGflops: gemm.achieved, blasPeakGflops: gemm.peak)
    }
}

public enum Clock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

/// What `prunec bench` measured.
public struct BenchReport: Encodable {
    public struct OpTime: Encodable {
        public var op: String
        public var calls: Int
        public var ms: Double
        public var percent: Double
    }

    public var model: String
    public var inputs: String?
    public var runs: Int
    public var warmup: Int
    public var threads: Int
    public var blasCore: String
    /// How the kernel set was chosen (see ``BLAS/coreChoice``).
    public var blasCoreChoice: BLAS.CoreChoice
    public var medianMs: Double
    public var minMs: Double
    public var p90Ms: Double
    /// Each timed run's latency in milliseconds, in the order they ran.
    public var runMs: [Double]
    public var macs: Int?
    public var gflops: Double?
    public var arenaBytes: Int
    public var intermediateBytes: Int
    public var weightBytes: Int
    public var peakRSSBytes: Int
    public var perOp: [OpTime]
    public var inputShapes: [String: [Int]]
    public var feedList: [(String, NDArray)] = []
    /// GFLOP/s inside the GEMM-shaped ops (Conv, ConvTranspose, MatMul, Gemm, Einsum).
    public var gemmGflops: Double?
    /// GFLOP/s of one large sgemm at the same thread count: what the BLAS kernel reaches.
    public var blasPeakGflops: Double

    enum CodingKeys: String, CodingKey {
        case model, inputs, runs, warmup, threads, macs, gflops
        case blasCore = "blas_core", blasCoreDetected = "blas_core_detected", blasCoreGeneric = "blas_core_generic"
        case medianMs = "median_ms", minMs = "min_ms", p90Ms = "p90_ms", runMs = "run_ms"
        case arenaBytes = "arena_bytes", intermediateBytes = "intermediate_bytes", weightBytes = "weight_bytes"
        case peakRSSBytes = "peak_rss_bytes", perOp = "per_op", inputShapes = "input_shapes"
        case gemmGflops = "gemm_gflops", blasPeakGflops = "blas_peak_gflops"
    }

    public init(model: String, inputs: String?, seconds: [Double], warmup: Int, threads: Int, profile: [Profile.Entry], macs: Int?,
         arenaBytes: Int, intermediateBytes: Int, weightBytes: Int, peakRSSBytes: Int, feeds: [(String, NDArray)],
         gemmGflops: Double?, blasPeakGflops: Double) {
        self.gemmGflops = gemmGflops
        self.blasPeakGflops = blasPeakGflops
        let sorted = seconds.sorted()
        let n = sorted.count
        let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        // Nearest-rank percentile.
        let p90 = sorted[max(0, Int((0.9 * Double(n)).rounded(.up)) - 1)]
        self.model = model
        self.inputs = inputs
        self.runs = n
        self.warmup = warmup
        self.threads = threads
        self.blasCore = BLAS.coreName
        self.blasCoreChoice = BLAS.coreChoice
        self.medianMs = median * 1000
        self.minMs = sorted[0] * 1000
        self.p90Ms = p90 * 1000
        self.runMs = seconds.map { $0 * 1000 }
        self.macs = macs
        self.gflops = macs.map { median > 0 ? 2 * Double($0) / median / 1e9 : 0 }
        self.arenaBytes = arenaBytes
        self.intermediateBytes = intermediateBytes
        self.weightBytes = weightBytes
        self.peakRSSBytes = peakRSSBytes
        let total = profile.reduce(0) { $0 + $1.seconds }
        self.perOp = profile.map { e in
            OpTime(op: e.op, calls: Int((Double(e.calls) / Double(n)).rounded()), ms: e.seconds * 1000 / Double(n),
                   percent: total > 0 ? 100 * e.seconds / total : 0)
        }
        self.inputShapes = Dictionary(feeds.map { ($0.0, $0.1.shape) }, uniquingKeysWith: { a, _ in a })
        self.feedList = feeds
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        // Optionals are encoded as null rather than left out, so every key is always present.
        try c.encode(model, forKey: .model)
        try c.encode(inputs, forKey: .inputs)
        try c.encode(runs, forKey: .runs)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(threads, forKey: .threads)
        try c.encode(blasCore, forKey: .blasCore)
        try c.encode(blasCoreChoice.detected, forKey: .blasCoreDetected)
        try c.encode(blasCoreChoice.isGeneric, forKey: .blasCoreGeneric)
        try c.encode(medianMs, forKey: .medianMs)
        try c.encode(minMs, forKey: .minMs)
        try c.encode(p90Ms, forKey: .p90Ms)
        try c.encode(runMs, forKey: .runMs)
        try c.encode(macs, forKey: .macs)
        try c.encode(gflops, forKey: .gflops)
        try c.encode(arenaBytes, forKey: .arenaBytes)
        try c.encode(intermediateBytes, forKey: .intermediateBytes)
        try c.encode(weightBytes, forKey: .weightBytes)
        try c.encode(peakRSSBytes, forKey: .peakRSSBytes)
        try c.encode(perOp, forKey: .perOp)
        try c.encode(inputShapes, forKey: .inputShapes)
        try c.encode(gemmGflops, forKey: .gemmGflops)
        try c.encode(blasPeakGflops, forKey: .blasPeakGflops)
    }

    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    public func text() -> String {
        func ms(_ x: Double) -> String { String(format: "%.3f ms", x) }
        var out = ""
        out += "model         \(model)\n"
        let shapes = feedList.map { name, a in "\(name) \(a.dtype) [\(a.shape.map(String.init).joined(separator: ","))]" }
        out += "inputs        \(shapes.joined(separator: ", "))\(inputs.map { " from \($0)" } ?? " (synthesized)")\n"
        out += "threads       \(threads)    BLAS core: \(blasCoreChoice.summary)\n"
        out += "latency       median \(ms(medianMs))    min \(ms(minMs))    p90 \(ms(p90Ms))    (\(runs) runs after \(warmup) warmup)\n"
        if let macs {
            out += "compute       \(TextTable.grouped(macs)) MACs (\(Format.si(macs)))    \(String(format: "%.2f", gflops ?? 0)) GFLOP/s\n"
        } else {
            out += "compute       MACs unknown (some MatMul/Conv/Gemm shapes could not be inferred)\n"
        }
        out += "BLAS          GEMM-shaped ops at \(gemmGflops.map { String(format: "%.1f", $0) } ?? "?") GFLOP/s; "
            + String(format: "one 512³ sgemm reaches %.1f GFLOP/s here", blasPeakGflops) + "\n"
        out += "memory        arena \(Format.bytes(arenaBytes)), all intermediates of one run \(Format.bytes(intermediateBytes))"
        if intermediateBytes > 0 { out += String(format: " (the arena is %.0f%% of that)", 100 * Double(arenaBytes) / Double(intermediateBytes)) }
        out += "\n"
        out += "              weights \(Format.bytes(weightBytes)), peak RSS \(Format.bytes(peakRSSBytes))\n"
        out += "\n"
        out += TextTable.table(
            ["op", "calls", "ms/run", "%"],
            perOp.map { [$0.op, String($0.calls), String(format: "%.3f", $0.ms), String(format: "%.1f", $0.percent)] },
            rightAligned: [1, 2, 3])
        return out
    }
}

/// How close the GEMM-shaped ops come to what OpenBLAS can do on this machine.
public enum GemmEfficiency {
    public static func measure(costs: [NodeCost], model: Model, profile: Profile, runs: Int, threads: Int) -> (achieved: Double?, peak: Double) {
        // Step names follow the interpreter's: the node's name, or "Op#index" when unnamed.
        var names: [ObjectIdentifier: String] = [:]
        for (i, n) in model.graph.nodes.enumerated() { names[ObjectIdentifier(n)] = n.name.isEmpty ? "\(n.opType.name)#\(i)" : n.name }
        let perNode = profile.perNode
        var macs = 0, seconds = 0.0
        for c in costs where CostModel.macBearingOps.contains(c.node.opType) {
            guard let m = c.macs, let name = names[ObjectIdentifier(c.node)], let t = perNode[name] else { continue }
            macs += m
            seconds += t.seconds
        }
        let achieved = seconds > 0 && runs > 0 ? 2 * Double(macs) * Double(runs) / seconds / 1e9 : nil
        return (achieved, sgemmPeak(threads: threads))
    }

    /// Best of a few 512×512×512 sgemm calls, in GFLOP/s.
    public static func sgemmPeak(threads: Int) -> Double {
        let n = 512
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        for _ in 0..<5 {
            let t0 = Clock.now()
            c.withUnsafeMutableBufferPointer { cp in
                BLAS.sgemm(transA: false, transB: false, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: cp.baseAddress!, ldc: n, threads: threads)
            }
            best = min(best, Clock.now() - t0)
        }
        return 2 * Double(n * n * n) / best / 1e9
    }
}
