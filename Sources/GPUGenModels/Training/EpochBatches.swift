// The batches of every training run (diffusion, VAE, classifier): epoch e's order is the stable argsort of
// Philox words (`DiffusionTrainer.epochOrder`, stream `Streams.dataOrder`), and batches never straddle epochs
// (docs/TRAINING.md).

/// The dataset indices of each global step's batch, keeping the current epoch's order.
public struct EpochBatches: Sendable {
  /// The run's seed, the dataset size and the batch size.
  public let seed: UInt64, count: Int, batchSize: Int
  private var order: (epoch: Int, indices: [Int])?

  /// Batches of `batchSize` out of `count` images, ordered by `seed`.
  public init(seed: UInt64, count: Int, batchSize: Int) {
    (self.seed, self.count, self.batchSize) = (seed, count, batchSize)
  }

  /// Whole batches per epoch.
  public var perEpoch: Int { count / batchSize }

  /// The indices of global step `s`'s batch: batch `s mod perEpoch` of epoch `s / perEpoch`.
  public mutating func indices(step s: Int) -> [Int] {
    let epoch = s / perEpoch, pos = (s % perEpoch) * batchSize
    if order?.epoch != epoch {
      order = (epoch, DiffusionTrainer.epochOrder(seed: seed, count: count, epoch: epoch))
    }
    return Array(order!.indices[pos..<(pos + batchSize)])
  }
}
