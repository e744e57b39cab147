// GPUGenNN: layers, safetensors and checkpoints, built on GPUGenCore.
@_exported import GPUGenCore
