import PruneIR

// Identity: a view of its input (no copy; kernels never write to their inputs).
func registerIdentityKernels(_ r: inout KernelRegistry) {
    r.register("Identity", since: 1) { _ in
        ClosureKernel { inputs, _ in [try inputs.required(0)] }
    }
}
