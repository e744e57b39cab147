// Bounds on sampling flags shared by every command and family that samples (sample, img2img, inpaint,
// evaluate, compare, toy models).
import Foundation

/// Range checks of sampling options.
public enum SamplingBounds {
  /// DDIM's η: 0 is deterministic DDIM, 1 is DDPM's posterior variance; larger values add more noise than the
  /// posterior has and drive samples to NaN.
  public static let eta: ClosedRange<Double> = 0...1

  /// Throws unless `value` lies in `eta`, naming `flag`.
  public static func checkEta(_ value: Double, flag: String = "--eta") throws {
    guard eta.contains(value) else {
      throw ModelError.input("\(flag) must lie in [\(eta.lowerBound), \(eta.upperBound)], got \(value)")
    }
  }
}
