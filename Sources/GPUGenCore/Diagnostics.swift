// Warnings and environment-driven settings shared by the engine.
import Foundation

/// Where engine warnings go (one line each). Defaults to stderr; tests may capture them.
public enum Diagnostics {
  nonisolated(unsafe) public static var warningHandler: (String) -> Void = { message in
    FileHandle.standardError.write(Data("gpugen: warning: \(message)\n".utf8))
  }

  /// Emits one warning line.
  public static func warn(_ message: String) { warningHandler(message) }
}

/// Process environment lookups used by the engine.
enum Environment {
  static func get(_ name: String) -> String? {
    guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else { return nil }
    return v
  }

  /// True when GPUGEN_REQUIRE_OPENCL is set to 1/true/yes.
  static var requireOpenCL: Bool {
    guard let v = get("GPUGEN_REQUIRE_OPENCL")?.lowercased() else { return false }
    return ["1", "true", "yes", "on"].contains(v)
  }
}
