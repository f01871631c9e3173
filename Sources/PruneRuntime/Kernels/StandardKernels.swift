/// Every kernel family registers itself here; one line per family file in Kernels/.
func registerStandardKernels(_ r: inout KernelRegistry) {
    registerIdentityKernels(&r)
    registerMatMulKernels(&r)
    registerGemmKernels(&r)
    registerConvKernels(&r)
    registerConvTransposeKernels(&r)
    registerPoolKernels(&r)
    registerResizeKernels(&r)
    registerEinsumKernels(&r)
}
