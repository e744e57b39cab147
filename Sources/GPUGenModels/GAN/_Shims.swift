extension ImageClassifier {
  public static func bundled(device: Device) throws -> ImageClassifier {
    throw ModelError.missing("bundled classifier (shim)")
  }
}
