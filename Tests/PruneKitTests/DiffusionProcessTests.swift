import Foundation
import PruneIR
import PruneKit
import PruneRuntime
import PruneTestSupport
import Testing

/// The denoiser parametrizations: sampler steps against diffusers' schedulers (a fixture made by
/// scripts/oracle/diffusers_samplers.py with a fake elementwise model), exactness on a point-mass
/// data distribution, and how `auto` is resolved from a pipeline's scheduler config and the graph.
struct DiffusionProcessTests {
    struct Case: Decodable {
        var name: String
        var steps: Int
        var k: Double
        var first: [Double]
        var final: [Double]
        var fed: [[Double]]
        var config: [String: JSONValue]
    }

    enum JSONValue: Decodable {
        case number(Double), string(String), bool(Bool), null
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null } else if let b = try? c.decode(Bool.self) { self = .bool(b) } else if let d = try? c.decode(Double.self) { self = .number(d) } else { self = .string(try c.decode(String.self)) }
        }
        var json: Any {
            switch self {
            case .number(let d): return d
            case .string(let s): return s
            case .bool(let b): return b
            case .null: return NSNull()
            }
        }
    }

    static let cases: [Case] = {
        let url = TestPaths.repoRoot.appendingPathComponent("Tests/Fixtures/diffusers-samplers.json")
        return (try? JSONDecoder().decode([Case].self, from: Data(contentsOf: url))) ?? []
    }()

    /// A denoiser `out = f(sample, timestep)` with the latent shape [1, 2], in a temporary
    /// pipeline folder `<dir>/unet/model.onnx` with `<dir>/scheduler/scheduler_config.json`.
    static func pipeline(config: [String: Any]?, timestepName: String = "timestep") throws -> (Model, URL, DenoiserInputs) {
        let b = GraphBuilder()
        let x = b.input("sample", .float, [1, 2])
        let t = b.input(timestepName, .float, [1])
        let w = b.initializer("w", Tensor(floats: [0.3, 0.3], shape: [2]))
        b.output(b.add(.add, [b.add(.mul, [x, w]), t], name: "out"))
        let model = b.model()
        ShapeInference().run(on: model)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prunec-sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("unet"), withIntermediateDirectories: true)
        if let config {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("scheduler"), withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("scheduler/scheduler_config.json"))
        }
        return (model, dir.appendingPathComponent("unet/model.onnx"), try DenoiserInputs.map(model))
    }

    @Test func fixtureIsThere() { #expect(Self.cases.count == 6) }

    /// Each diffusers scheduler's run, replayed through the resolved process's steps with the same
    /// fake model: the fed timesteps, input scalings and the final latent agree.
    @Test(arguments: cases.map(\.name))
    func stepsMatchDiffusers(_ name: String) throws {
        let c = try #require(Self.cases.first { $0.name == name })
        let (model, url, inputs) = try Self.pipeline(config: c.config.mapValues(\.json))
        let (process, summary) = try DiffusionOptions().resolve(model: model, inputs: inputs, modelURL: url)
        let steps = process.steps(c.steps)
        #expect(steps.count == c.fed.count, "\(summary)")
        // diffusers' EDM starts from √(σ_max² + 1)·ε, prunec from σ_max·ε: replay from diffusers' latent.
        var x = c.first
        for (step, fed) in zip(steps, c.fed) {
            #expect(abs(step.time - fed[0]) < 1e-3 * max(1, abs(fed[0])), "\(name): fed timestep \(step.time) vs \(fed[0])")
            #expect(abs(step.inputScale - fed[1]) < 1e-5, "\(name): input scale \(step.inputScale) vs \(fed[1])")
            let out = x.map { 0.3 * ($0 * step.inputScale) + c.k * fed[0] }
            x = zip(x, out).map { step.a * $0 + step.b * $1 }
        }
        for (a, e) in zip(x, c.final) { #expect(abs(a - e) < 2e-4 * max(1, abs(e)), "\(name): final \(x) vs \(c.final) (\(summary))") }
    }

    /// With data that is one point x₀, the exact denoiser returns x₀ at every noise level, and every
    /// deterministic sampler must end exactly on x₀; a consistency model's steps, too (its noise
    /// is added before a step that maps it back to x₀).
    @Test func exactDenoiserEndsOnTheData() {
        let x0 = 0.37, eps = -1.4
        var processes: [DiffusionProcess] = []
        for pre in DiffusionProcess.Precondition.allCases {
            processes.append(DiffusionProcess(kind: .edm, prediction: pre == .inside ? .x0 : .epsilon, precondition: pre))
            processes.append(DiffusionProcess(kind: .edm, prediction: .v, precondition: .outside, sigmaData: 1))
            processes.append(DiffusionProcess(kind: .consistency, prediction: pre == .inside ? .x0 : .epsilon, precondition: pre))
        }
        processes.append(DiffusionProcess(kind: .edm, prediction: .epsilon, precondition: .inside))
        processes.append(DiffusionProcess(kind: .flow, prediction: .velocity, shift: 3))
        processes.append(DiffusionProcess(kind: .flow, prediction: .x0, timeScale: 1))
        processes.append(DiffusionProcess(kind: .vp, prediction: .x0, sampler: .ddim))
        for p in processes {
            var x = p.initialScale * eps
            for step in p.steps(5) {
                // Recover σ (or t) from the latent's noise and answer what the model would.
                let sigma: Double, out: Double
                switch p.kind {
                case .flow:
                    let t = step.time / p.timeScale
                    out = p.prediction == .x0 ? x0 : (x - x0) / t
                case .vp:
                    out = x0
                case .edm, .consistency:
                    sigma = step.inputScale == 1 && p.precondition == .inside ? step.time : { () -> Double in
                        p.kind == .consistency ? Foundation.exp(step.time / 250) : Foundation.exp(4 * step.time)
                    }()
                    if p.precondition == .inside {
                        out = p.prediction == .epsilon ? (x - x0) / sigma : x0
                    } else {
                        // D = c_skip·x + c_out·F, with the process's own scalings.
                        let sd = p.sigmaData, d = p.kind == .consistency ? sigma - p.sigmaMin : sigma
                        let cSkip = sd * sd / (d * d + sd * sd)
                        let cOut = (p.prediction == .v ? -1 : 1) * d * sd / (sigma * sigma + sd * sd).squareRoot()
                        out = (x0 - cSkip * x) / cOut
                    }
                }
                x = step.a * x + step.b * out + step.c * 0.8
            }
            #expect(abs(x - x0) < 1e-6, "\(p.kind) \(p.prediction) \(p.precondition): ended at \(x)")
        }
    }

    @Test func autoReadsTheGraphWithoutAConfig() throws {
        let (m1, u1, i1) = try Self.pipeline(config: nil)
        let vp = try DiffusionOptions().resolve(model: m1, inputs: i1, modelURL: u1)
        #expect(vp.process.kind == .vp && vp.process.prediction == .epsilon && vp.process.sampler == .ddim)
        let (m2, u2, i2) = try Self.pipeline(config: nil, timestepName: "sigma")
        let edm = try DiffusionOptions().resolve(model: m2, inputs: i2, modelURL: u2)
        #expect(edm.process.kind == .edm && edm.process.precondition == .inside && edm.process.prediction == .x0)
        #expect(edm.process.initialScale == 80)
        // `t` says nothing: the error names the option.
        let (m3, u3, i3) = try Self.pipeline(config: nil, timestepName: "t")
        #expect { _ = try DiffusionOptions().resolve(model: m3, inputs: i3, modelURL: u3) } throws: { "\($0)".contains("schedule=vp|edm|consistency|flow") }
        var flow = DiffusionOptions()
        flow.schedule = .flow
        #expect(try flow.resolve(model: m3, inputs: i3, modelURL: u3).process.prediction == .velocity)
    }

    @Test func configsOfEachFamily() throws {
        let cm = try Self.pipeline(config: ["_class_name": "CMStochasticIterativeScheduler", "sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 0.5, "rho": 7.0, "num_train_timesteps": 40])
        let p = try DiffusionOptions().resolve(model: cm.0, inputs: cm.2, modelURL: cm.1).process
        #expect(p.kind == .consistency && p.precondition == .outside && p.isStochastic)
        // A FLUX config: dynamic shift from the token count; a latent [1, 2] has 2 tokens... of a
        // rank-2 latent, H·W/4 is read: the shift stays near exp(base_shift).
        let flux = try Self.pipeline(config: ["_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0, "use_dynamic_shifting": true,
                                              "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096])
        let f = try DiffusionOptions().resolve(model: flux.0, inputs: flux.2, modelURL: flux.1).process
        #expect(f.kind == .flow && f.prediction == .velocity && abs(f.shift - Foundation.exp(0.5 - 0.65 / 3840 * 256 + 0.65 / 3840 * 0.5)) < 1e-3)
        let bad = try Self.pipeline(config: ["_class_name": "DDPMScheduler", "beta_schedule": "sigmoid"])
        #expect { _ = try DiffusionOptions().resolve(model: bad.0, inputs: bad.2, modelURL: bad.1) } throws: { "\($0)".contains("beta_schedule 'sigmoid'") }
        let ddpm = try Self.pipeline(config: ["_class_name": "DDPMScheduler", "beta_schedule": "linear", "prediction_type": "v_prediction"])
        let d = try DiffusionOptions().resolve(model: ddpm.0, inputs: ddpm.2, modelURL: ddpm.1).process
        #expect(d.kind == .vp && d.sampler == .ddpm && d.prediction == .v)
    }

    /// FLUX's transformer multiplies its timestep by 1000 itself: it is fed t, not 1000·t.
    @Test func flowTimeScaleFollowsTheGraph() throws {
        let b = GraphBuilder()
        let x = b.input("hidden_states", .float, [1, 4, 8])
        let t = b.input("timestep", .float, [1])
        let scaled = b.add(.mul, [t, b.initializer("k", Tensor.scalar(Float(1000)))])
        b.output(b.add(.add, [x, scaled], name: "out"))
        let model = b.model()
        ShapeInference().run(on: model)
        let inputs = try DenoiserInputs.map(model)
        var o = DiffusionOptions()
        o.schedule = .flow
        #expect(try o.resolve(model: model, inputs: inputs, modelURL: nil).process.timeScale == 1)
    }
}
