// Data-parallel training: every rank computes a disjoint share of each global batch (rows keyed by their global
// index, so the data, timesteps and noise do not depend on the number of processes), the gradients are
// averaged by all-reduce in buckets, and every rank applies the same optimizer step (docs/DISTRIBUTED.md).
import Foundation
import GPUGenCore
import GPUGenNN

/// How a training run shares each global batch among the job's processes.
public struct DataParallel: Sendable {
  /// The job's processes.
  public let communicator: Communicator
  /// Gradient bytes per all-reduce call (default 25 MB, as PyTorch DDP's bucket_cap_mb).
  public let bucketBytes: Int
  /// BatchNorm statistics over the global batch (SyncBatchNorm) instead of each rank's share.
  public let synchronizeBatchNorm: Bool

  /// One process: shares are the whole batch and averages are the identity.
  public static let single = DataParallel(communicator: .single)

  /// A run over `communicator`'s processes with all-reduce buckets of `bucketBytes`, BatchNorm statistics
  /// synchronised over the ranks when `synchronizeBatchNorm`.
  public init(communicator: Communicator, bucketBytes: Int = 25 << 20, synchronizeBatchNorm: Bool = false) {
    self.communicator = communicator
    self.bucketBytes = max(bucketBytes, 4)
    self.synchronizeBatchNorm = synchronizeBatchNorm
  }

  /// Applies `synchronizeBatchNorm` to every BatchNorm2d of `modules`.
  public func configure(_ modules: [Module]) {
    for m in modules { m.synchronizeBatchNorm(over: synchronizeBatchNorm ? communicator : nil) }
  }

  /// The number of processes.
  public var processes: Int { communicator.size }

  /// This rank's rows of a global batch of `batch` (rank r gets rows r·b/P ..< (r+1)·b/P).
  public func share(ofBatch batch: Int) throws -> Range<Int> {
    let p = communicator.size
    guard batch % p == 0 else {
      throw TrainingError.invalidOption(
        "--batch-size \(batch) is the global batch and must be divisible by the \(p) processes")
    }
    let per = batch / p
    return communicator.rank * per..<(communicator.rank + 1) * per
  }

  /// The mean over the ranks of each of `values` (one all-reduce).
  public func average(_ values: [Float]) throws -> [Float] {
    guard communicator.isDistributed else { return values }
    var v = values.map(Double.init)
    try communicator.allReduceSum(&v)
    let p = Double(communicator.size)
    return v.map { Float($0 / p) }
  }

  /// The mean over the ranks of each gradient, all-reduced in buckets of about `bucketBytes` (whole tensors;
  /// a tensor larger than a bucket is a bucket of its own). Returns `grads` unchanged in a single process.
  public func averageGradients(_ grads: [Tensor]) throws -> [Tensor] {
    guard communicator.isDistributed else { return grads }
    var out = [Tensor]()
    out.reserveCapacity(grads.count)
    let scale = 1 / Float(communicator.size)
    var start = 0
    while start < grads.count {
      var end = start
      var bytes = 0
      while end < grads.count && (end == start || bytes + grads[end].count * 4 <= bucketBytes) {
        bytes += grads[end].count * 4
        end += 1
      }
      var flat = [Float]()
      flat.reserveCapacity(bytes / 4)
      for g in grads[start..<end] { flat += try g.toArray() }
      try communicator.allReduceSum(&flat)
      var offset = 0
      for g in grads[start..<end] {
        let values = flat[offset..<offset + g.count].map { $0 * scale }
        out.append(try Tensor(values, shape: g.shape, on: g.device))
        offset += g.count
      }
      start = end
    }
    return out
  }

  /// Throws `DistributedError.mismatch` naming each item whose value differs between ranks, and the ranks
  /// that differ from rank 0 (one all-reduce per item; every rank must pass the same item names).
  public func checkAgreement(_ items: [(name: String, value: String)]) throws {
    guard communicator.isDistributed else { return }
    var problems: [String] = []
    for item in items {
      let all = try communicator.allGather(Double(DataParallel.fingerprint(item.value)))
      let odd = all.indices.filter { all[$0] != all[0] }
      if !odd.isEmpty {
        problems.append(
          "\(item.name): rank\(odd.count > 1 ? "s" : "") \(odd.map(String.init).joined(separator: ", ")) "
            + "differ\(odd.count > 1 ? "" : "s") from rank 0")
      }
    }
    if !problems.isEmpty { throw DistributedError.mismatch(problems.joined(separator: "; ")) }
  }

  /// A 52-bit FNV-1a hash of `text` (exact in a Double).
  static func fingerprint(_ text: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in text.utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    return h & ((1 << 52) - 1)
  }
}

extension TrainingImages {
  /// A short summary that differs between datasets (size, shape, label count and a checksum of every 97th
  /// value), for the ranks' agreement check.
  public var fingerprint: String {
    var sum = 0.0
    var i = 0
    while i < images.count {
      sum += Double(images[i]) * Double(i % 1013 + 1)
      i += 97
    }
    return "\(count)×\(channels)×\(size)×\(size), \(classCount) classes, checksum \(sum)"
  }
}
