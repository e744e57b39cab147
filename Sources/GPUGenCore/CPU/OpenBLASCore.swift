// Detects an OpenBLAS build that picked legacy SSE kernels on a CPU with AVX2/AVX-512, and names the
// OPENBLAS_CORETYPE that fixes it (the variable is only read when the library loads).
import CBLAS
import CPUPeak
import Foundation

/// OpenBLAS kernel selection.
public enum OpenBLASCore {
  /// The kernel family OpenBLAS chose at load time (e.g. "Haswell", "SkylakeX", "Prescott").
  public static var name: String { String(cString: openblas_get_corename()) }

  /// Kernel families without FMA: a fallback when OpenBLAS does not recognise the CPU.
  static let legacy: Set<String> = [
    "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "coppermine", "northwood",
    "banias", "athlon", "opteron", "barcelona", "bobcat", "sandybridge", "unknown",
  ]

  /// The OPENBLAS_CORETYPE to re-run with, or nil when OpenBLAS already uses fitting kernels or the
  /// user set OPENBLAS_CORETYPE.
  public static func recommendedCoreType() -> String? {
    if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil { return nil }
    guard legacy.contains(name.lowercased()) else { return nil }
    switch String(cString: gpugen_fma_isa()) {
    case "avx512f": return "SkylakeX"
    case "avx2+fma": return "Haswell"
    default: return nil
    }
  }
}
