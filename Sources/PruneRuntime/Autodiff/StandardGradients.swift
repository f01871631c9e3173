/// Every kernel family with differentiable ops registers its VJPs here; one line per family file.
func registerStandardGradients(_ r: inout GradientRegistry) {
    registerBinaryGradients(&r)
    registerMatMulGradients(&r)
    registerReshapeGradients(&r)
    registerConvGradients(&r)
    registerConvTransposeGradients(&r)
    registerGemmGradients(&r)
    registerPoolGradients(&r)
    registerResizeGradients(&r)
    registerEinsumGradients(&r)
    registerPadGradients(&r)
}
