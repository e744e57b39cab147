// Reading the config.json of a toy model (ToyDenoiser, ToyVAE): a JSON object with a known set of fields, each
// read with its type checked; unknown fields and wrong types are errors naming the field and the file.
import Foundation

/// The fields of one toy config.json, read one typed value at a time.
struct ToyConfigReader {
  let object: [String: Any]
  let source: String

  /// Parses `data` as a JSON object whose `_class_name` (when present) is `className` and whose keys are all
  /// in `fields`.
  init(json data: Data, source: String, className: String, fields: Set<String>) throws {
    guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw ModelError.malformed(source, "not a JSON object")
    }
    if let name = obj["_class_name"] as? String, name != className {
      throw ModelError.unsupported(source, "_class_name \(name) is not \(className)")
    }
    if let bad = obj.keys.filter({ !fields.contains($0) }).sorted().first {
      throw ModelError.unsupported(
        source, "field \(bad) (\(className) takes \(fields.sorted().joined(separator: ", ")))")
    }
    (object, self.source) = (obj, source)
  }

  func int(_ key: String) throws -> Int? {
    guard let v = object[key] else { return nil }
    guard let n = v as? NSNumber, Double(truncating: n) == Double(n.intValue) else {
      throw ModelError.malformed(source, "\(key) must be an integer")
    }
    return n.intValue
  }

  func ints(_ key: String) throws -> [Int]? {
    guard let v = object[key] else { return nil }
    guard let a = v as? [NSNumber], a.allSatisfy({ Double(truncating: $0) == Double($0.intValue) }) else {
      throw ModelError.malformed(source, "\(key) must be a list of integers")
    }
    return a.map(\.intValue)
  }

  func double(_ key: String) throws -> Double? {
    guard let v = object[key], !(v is NSNull) else { return nil }
    guard let n = v as? NSNumber else {
      throw ModelError.malformed(source, "\(key) must be a number")
    }
    return n.doubleValue
  }

  func bool(_ key: String) throws -> Bool? {
    guard let v = object[key] else { return nil }
    guard let b = v as? Bool else { throw ModelError.malformed(source, "\(key) must be true or false") }
    return b
  }

  func string(_ key: String) throws -> String? {
    guard let v = object[key] else { return nil }
    guard let s = v as? String else { throw ModelError.malformed(source, "\(key) must be a string") }
    return s
  }

  /// Errors shared by both toy configs: the data set, the hidden widths and the activation.
  static func validate(data: String, hiddenDims: [Int], activation: String, source: String) throws {
    func bad(_ s: String) -> ModelError { .unsupported(source, s) }
    do { _ = try ToyDataset.parse(data) } catch { throw bad("data: \(error)") }
    guard (1...8).contains(hiddenDims.count), hiddenDims.allSatisfy({ (1...4096).contains($0) }) else {
      throw bad("hidden_dims \(hiddenDims) needs 1 to 8 widths in 1...4096")
    }
    guard ActivationFunction(name: activation) != nil else {
      throw bad("act_fn \(activation) (choose relu, leaky_relu, silu, gelu or tanh)")
    }
  }
}

/// An MLP: `input` → Linear, activation for each hidden width → Linear to `output` (PyTorch's nn.Sequential
/// names: net.0, net.2, …).
func toyMLP(input: Int, hidden: [Int], output: Int, activation: String, on device: Device) throws
  -> Sequential
{
  let act = ActivationFunction(name: activation) ?? .silu
  var layers: [any UnaryLayer] = []
  var prev = input
  for h in hidden {
    layers += [try Linear(prev, h, on: device), ActivationLayer(act)]
    prev = h
  }
  layers.append(try Linear(prev, output, on: device))
  return Sequential(layers)
}
