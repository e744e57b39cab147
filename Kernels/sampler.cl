// sampler.cl
