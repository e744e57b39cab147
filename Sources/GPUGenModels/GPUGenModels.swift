// GPUGenModels: diffusion (UNet, schedules, samplers), data and image I/O, built on GPUGenNN.
@_exported import GPUGenNN
