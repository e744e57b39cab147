// swift-tools-version: 6.0
import Foundation
import PackageDescription

let package = Package(
  name: "gpugen",
  platforms: [.macOS(.v13)],
  products: [
    .library(name: "GPUGenCore", targets: ["GPUGenCore"]),
    .library(name: "GPUGenNN", targets: ["GPUGenNN"]),
    .library(name: "GPUGenModels", targets: ["GPUGenModels"]),
    .executable(name: "gpugen", targets: ["gpugen"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
  ],
  targets: [
    // OpenCL 1.2 C API from ocl-icd-opencl-dev + opencl-headers.
    .systemLibrary(
      name: "COpenCL", pkgConfig: "OpenCL",
      providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]),
    // CBLAS from libopenblas-dev (cblas_sgemm).
    .systemLibrary(
      name: "CBLAS", pkgConfig: "openblas",
      providers: [.apt(["libopenblas-dev"])]),
    // OpenCL C sources, embedded in the binary at build time.
    .target(
      name: "GPUGenKernels",
      path: "Kernels",
      exclude: ["README.md"],
      resources: [
        .embedInCode("common.cl"),
        .embedInCode("elementwise.cl"),
        .embedInCode("reduce.cl"),
        .embedInCode("gemm.cl"),
        .embedInCode("bench.cl"),
        .embedInCode("conv.cl"),
        .embedInCode("norm.cl"),
        .embedInCode("noise.cl"),
        .embedInCode("sampler.cl"),
        .embedInCode("optim.cl"),
      ]),
    // FMA-throughput loop measuring the CPU's FP32 peak (runtime ISA dispatch).
    .target(name: "CPUPeak", cSettings: [.unsafeFlags(["-O3"])]),
    .target(
      name: "GPUGenCore",
      dependencies: ["COpenCL", "CBLAS", "GPUGenKernels", "CPUPeak"]),
    // libpng from libpng-dev (PNG grids).
    .systemLibrary(
      name: "CPNG", pkgConfig: "libpng",
      providers: [.apt(["libpng-dev"])]),
    // zlib from zlib1g-dev (gzip-compressed IDX data sets).
    .systemLibrary(
      name: "CZlib", pkgConfig: "zlib",
      providers: [.apt(["zlib1g-dev"])]),
    // Layers, safetensors, checkpoints.
    .target(name: "GPUGenNN", dependencies: ["GPUGenCore"]),
    // Diffusion (UNet, schedules, samplers), VAEs (ConvVAE, AutoencoderKL), training, data sets, image I/O,
    // plots and metrics; the bundled diffusion model, VAE, GAN and classifier.
    .target(
      name: "GPUGenModels", dependencies: ["GPUGenNN", "CBLAS", "CPNG", "CZlib"],
      resources: [
        .copy("Resources/DefaultModel"), .copy("Resources/DefaultVAE"), .copy("Resources/DefaultClassifier"),
        .copy("Resources/DefaultGAN"),
      ]),
    .executableTarget(
      name: "gpugen",
      dependencies: [
        "GPUGenCore", "GPUGenNN", "GPUGenModels",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .testTarget(
      name: "GPUGenCoreTests",
      dependencies: ["GPUGenCore", "gpugen"],
      resources: [.copy("Fixtures")]),
    .testTarget(
      name: "GPUGenNNTests",
      dependencies: ["GPUGenNN"],
      resources: [.copy("Fixtures")]),
    .testTarget(
      name: "GPUGenModelsTests",
      dependencies: ["GPUGenModels", "gpugen"],
      resources: [.copy("Fixtures")]),
  ],
  swiftLanguageModes: [.v5]
)

// The libFuzzer targets (Fuzz/): only with GPUGEN_FUZZ=1, built by Benchmarks/fuzz.sh with
// -sanitize=fuzzer,address (libFuzzer supplies main(), so a plain build could not link it).
if ProcessInfo.processInfo.environment["GPUGEN_FUZZ"] == "1" {
  package.products.append(.executable(name: "gpugen-fuzz", targets: ["GPUGenFuzz"]))
  package.targets.append(
    .executableTarget(
      name: "GPUGenFuzz", dependencies: ["GPUGenModels", "GPUGenNN"], path: "Fuzz/GPUGenFuzz",
      swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
}
