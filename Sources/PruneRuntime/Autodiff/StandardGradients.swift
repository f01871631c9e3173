/// Every kernel family with differentiable ops registers its VJPs here; one line per family file.
func registerStandardGradients(_ r: inout GradientRegistry) {
    registerBinaryGradients(&r)
    registerMatMulGradients(&r)
    registerReshapeGradients(&r)
    registerUnaryGradients(&r)
    registerActivationGradients(&r)
    registerCastGradients(&r)
    registerVariadicGradients(&r)
    registerWhereGradients(&r)
    registerSoftmaxGradients(&r)
    registerReduceGradients(&r)
    registerNormalizationGradients(&r)
    registerDropoutGradients(&r)
}
