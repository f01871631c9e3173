import PruneRuntime

/// The schedule's choices are pass options (`ecodiff{sampler=ddpm,prediction=v,betas=linear}`).
extension NoiseSchedule.Betas: PassOptionEnum {}
extension NoiseSchedule.Prediction: PassOptionEnum {}
extension NoiseSchedule.Sampler: PassOptionEnum {}
