/// Every kernel family with differentiable ops registers its VJPs here; one line per family file.
func registerStandardGradients(_ r: inout GradientRegistry) {
    registerBinaryGradients(&r)
    registerMatMulGradients(&r)
    registerIdentityGradients(&r)
    registerShapeOpsGradients(&r)
    registerReshapeGradients(&r)
    registerTransposeGradients(&r)
    registerConcatSplitGradients(&r)
    registerSliceGradients(&r)
    registerGatherGradients(&r)
    registerExpandGradients(&r)
    registerTriluGradients(&r)
}
