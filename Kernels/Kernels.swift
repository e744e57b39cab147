// The OpenCL C sources of Kernels/, embedded into the binary at build time.

/// The embedded OpenCL C source files, by family name.
public enum KernelSources {
  /// `common.cl`: helpers prepended to every family.
  public static var common: String { text(PackageResources.common_cl) }

  /// Every kernel family (file name without `.cl`, except `common`), mapped to its source text.
  public static let families: [String: String] = [
    "elementwise": text(PackageResources.elementwise_cl),
    "reduce": text(PackageResources.reduce_cl),
    "gemm": text(PackageResources.gemm_cl),
    "bench": text(PackageResources.bench_cl),
    "conv": text(PackageResources.conv_cl),
    "norm": text(PackageResources.norm_cl),
    "noise": text(PackageResources.noise_cl),
    "sampler": text(PackageResources.sampler_cl),
    "optim": text(PackageResources.optim_cl),
  ]

  private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
