// The benchmark reference config (Benchmarks/unet/config.json) with seeded random weights.
import Foundation

/// Builds the reference UNet2DModel used by `gpugen bench unet`.
public enum ReferenceUNet {
  /// The reference config: 32×32×1, channels (32, 64, 128), 2 layers per block, attention at 8×8.
  public static var config: UNet2DConfig {
    var c = UNet2DConfig()
    c.sampleSize = 32
    c.inChannels = 1
    c.outChannels = 1
    c.blockOutChannels = [32, 64, 128]
    c.layersPerBlock = 2
    c.downBlockTypes = ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"]
    c.upBlockTypes = ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"]
    c.normNumGroups = 8
    c.attentionHeadDim = 32
    return c
  }

  /// The reference network with seeded weights: N(0, 1)/√fan_in for matrices and kernels, norm
  /// weights 1, biases 0 (PyTorch-like scales, so activations stay O(1)).
  public static func make(on device: Device, seed: UInt64 = 0, config: UNet2DConfig = config) throws -> UNet2D
  {
    var index = 0
    return try UNet2D(
      config: config,
      weights: { name, shape in
        index += 1
        let count = shape.reduce(1, *)
        if name.hasSuffix(".bias") { return (shape, [Float](repeating: 0, count: count)) }
        if shape.count == 1 { return (shape, [Float](repeating: 1, count: count)) }
        let fanIn = shape.dropFirst().reduce(1, *)
        let scale = 1 / Float(fanIn).squareRoot()
        var values = [Float]()
        values.reserveCapacity(count)
        for block in 0..<((count + 3) / 4) {
          let z = Philox4x32.normals(
            seed: seed, sample: UInt32(index), step: 0, stream: UInt32(Streams.referenceWeights),
            block: UInt32(block))
          for e in 0..<4 where values.count < count { values.append(z[e] * scale) }
        }
        return (shape, values)
      }, names: [], device: device)
  }
}
