import PruneIR

// Identity: a view of its input (no copy; kernels never write to their inputs).
func registerIdentityKernels(_ r: inout KernelRegistry) {
    r.register("Identity", since: 1) { _ in
        ClosureKernel { inputs, _ in [try inputs.required(0)] }
    }
}

// MARK: Gradients

/// VJP of Identity: the cotangent passes through.
func registerIdentityGradients(_ r: inout GradientRegistry) {
    r.register(["Identity"]) { c, gs in
        [GradientMath.orZeros(gs[0], like: try c.output(0), c.kernel)]
    }
}
