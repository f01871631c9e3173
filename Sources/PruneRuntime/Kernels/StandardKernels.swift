/// Every kernel family registers itself here; one line per family file in Kernels/.
func registerStandardKernels(_ r: inout KernelRegistry) {
    registerIdentityKernels(&r)
    registerShapeOpsKernels(&r)
    registerReshapeKernels(&r)
    registerTransposeKernels(&r)
    registerConcatSplitKernels(&r)
    registerSliceKernels(&r)
    registerGatherKernels(&r)
    registerExpandKernels(&r)
    registerPadKernels(&r)
    registerTriluKernels(&r)
    registerCumSumKernels(&r)
    registerOneHotKernels(&r)
    registerCompressKernels(&r)
    registerControlFlowKernels(&r)
    registerRecurrentKernels(&r)
    registerAttentionKernels(&r)
}
