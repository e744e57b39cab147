// GEMM tile parameters: a per-device default table, and the tuned winner stored with the binary cache.
import Foundation

/// Tile parameters of `gemm_tiled` (see Kernels/gemm.cl).
public struct GemmConfig: Codable, Hashable, Sendable, CustomStringConvertible {
  /// Which kernel of gemm.cl runs the tile.
  public enum Variant: String, Codable, Sendable {
    /// `gemm_tiled`: WM×WN work-items per work-group share local tiles (GPUs).
    case tiled
    /// `gemm_packed`: one work-item walks all WM×WN register blocks of the tile (CPUs).
    case packed
  }

  public var variant: Variant
  /// Rows and columns of C per work-item.
  public var tm: Int, tn: Int
  /// Work-items per work-group along M and N.
  public var wm: Int, wn: Int
  /// Depth of the k slice staged in local memory.
  public var kb: Int

  public init(_ variant: Variant, tm: Int, tn: Int, wm: Int, wn: Int, kb: Int) {
    self.variant = variant
    self.tm = tm
    self.tn = tn
    self.wm = wm
    self.wn = wn
    self.kb = kb
  }

  /// Parses "variant,TM,TN,WM,WN,KB" (as GPUGEN_GEMM_CONFIG takes it).
  public init?(spec: String) {
    let p = spec.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    guard p.count == 6, let v = Variant(rawValue: p[0]) else { return nil }
    let n = p.dropFirst().compactMap { Int($0) }
    guard n.count == 5 else { return nil }
    self.init(v, tm: n[0], tn: n[1], wm: n[2], wn: n[3], kb: n[4])
  }

  public var mwg: Int { wm * tm }
  public var nwg: Int { wn * tn }
  /// The `-D` build options selecting this configuration.
  public var options: String { "-DTM=\(tm) -DTN=\(tn) -DWM=\(wm) -DWN=\(wn) -DKB=\(kb)" }
  /// The kernel name in gemm.cl.
  public var kernelName: String { "gemm_\(variant.rawValue)" }
  /// Work-group size (N, M).
  public var localSize: [Int] { variant == .tiled ? [wn, wm, 1] : [1, 1, 1] }
  /// Global size for an M×N×batch problem.
  func globalSize(m: Int, n: Int, batch: Int) -> [Int] {
    let groups = [(n + nwg - 1) / nwg, (m + mwg - 1) / mwg]
    return [groups[0] * localSize[0], groups[1] * localSize[1], batch]
  }
  public var description: String {
    "\(variant.rawValue) TM=\(tm) TN=\(tn) WM=\(wm) WN=\(wn) KB=\(kb) (tile \(mwg)×\(nwg)×\(kb))"
  }

  /// For the packed variant, shrinks the tile to the problem: a 32-row GEMM does not compute 128-row
  /// tiles of zeros. (Each distinct shrink is one more cached program.)
  func fitted(m: Int, n: Int) -> GemmConfig {
    guard variant == .packed else { return self }
    func pow2(atLeast v: Int) -> Int {
      var p = 1
      while p < v { p *= 2 }
      return p
    }
    var g = self
    g.wm = Swift.min(wm, pow2(atLeast: (m + tm - 1) / tm))
    g.wn = Swift.min(wn, pow2(atLeast: (n + tn - 1) / tn))
    return g
  }

  /// Whether the device can run it (work-group size and local memory).
  func fits(_ info: OpenCLDeviceInfo) -> Bool {
    let localBytes = (kb * (mwg + nwg) + (variant == .packed ? mwg * nwg : 0)) * 4
    return (variant == .packed || wm * wn <= info.maxWorkGroupSize) && localBytes <= info.localMemory
      && [2, 4, 8, 16].contains(tn)
      && kb % 4 == 0 && mwg % 4 == 0 && nwg % 4 == 0
  }

  /// The default table: CPUs want large register blocks and few work-items; GPUs want many
  /// work-items with small register blocks. (CPUs: a 64 × 256 tile, measured on PoCL with 2 cores against
  /// the earlier 32 × 256: training steps of the reference DCGAN 184 → 152 ms, ConvVAE 39.4 → 34.8 ms,
  /// diffusion UNet 3.23 → 2.89 s.)
  static func defaultConfig(for info: OpenCLDeviceInfo) -> GemmConfig {
    if !info.isGPU { return GemmConfig(.packed, tm: 8, tn: 16, wm: 8, wn: 16, kb: 64) }
    if info.maxWorkGroupSize >= 256 { return GemmConfig(.tiled, tm: 4, tn: 4, wm: 16, wn: 16, kb: 16) }
    return GemmConfig(.tiled, tm: 4, tn: 4, wm: 8, wn: 8, kb: 16)
  }

  /// The search space of `gpugen bench gemm --tune`.
  static func candidates(for info: OpenCLDeviceInfo) -> [GemmConfig] {
    var out: [GemmConfig] = []
    if info.isGPU {
      for tm in [2, 4, 8] {
        for tn in [4, 8] {
          for (wm, wn) in [(8, 8), (16, 8), (16, 16), (8, 16)] {
            for kb in [16, 32] { out.append(GemmConfig(.tiled, tm: tm, tn: tn, wm: wm, wn: wn, kb: kb)) }
          }
        }
      }
    } else {
      for tm in [4, 6, 8] {
        for tn in [8, 16] {
          for (wm, wn) in [(8, 4), (8, 8), (16, 4), (4, 8), (4, 16), (8, 16), (2, 16)] {
            for kb in [64, 128, 256] {
              out.append(GemmConfig(.packed, tm: tm, tn: tn, wm: wm, wn: wn, kb: kb))
            }
          }
        }
      }
      out.append(GemmConfig(.tiled, tm: 8, tn: 16, wm: 8, wn: 4, kb: 32))
    }
    out = out.filter { $0.fits(info) }
    return out
  }

  static func tunedURL(for info: OpenCLDeviceInfo, cache: BinaryCache) -> URL {
    let key = BinaryCache.key(
      platform: info.platform, device: info.name, driver: info.driverVersion, options: "gemm-tune",
      source: "v1")
    return cache.directory.appendingPathComponent("gemm-tuned-\(key).json")
  }

  static func loadTuned(for info: OpenCLDeviceInfo, cache: BinaryCache) -> GemmConfig? {
    let url = tunedURL(for: info, cache: cache)
    guard let data = try? Data(contentsOf: url) else { return nil }
    guard let g = try? JSONDecoder().decode(GemmConfig.self, from: data) else {
      Diagnostics.warn("ignoring unreadable GEMM tuning file \(url.path)")
      return nil
    }
    return g
  }

  func storeTuned(for info: OpenCLDeviceInfo, cache: BinaryCache) throws {
    try FileManager.default.createDirectory(at: cache.directory, withIntermediateDirectories: true)
    let data = try JSONEncoder().encode(self)
    try data.write(to: Self.tunedURL(for: info, cache: cache), options: .atomic)
  }
}
