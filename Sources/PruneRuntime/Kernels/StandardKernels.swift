/// Every kernel family registers itself here; one line per family file in Kernels/.
func registerStandardKernels(_ r: inout KernelRegistry) {
    registerIdentityKernels(&r)
    registerReduceKernels(&r)
    registerSoftmaxKernels(&r)
    registerArgTopKKernels(&r)
    registerNormalizationKernels(&r)
    registerDropoutKernels(&r)
}
