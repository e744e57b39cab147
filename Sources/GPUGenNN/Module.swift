// The model framework every family builds on (mlx-swift style): a `Module` owns named parameters, named
// buffers and named children; dotted names (`encoder.conv_in.weight`) are PyTorch state_dict names, so a
// module loads and saves the safetensors files PyTorch and diffusers write, strictly.
//
// Parameters are plain `Tensor`s created once with the module. Loading copies values into them in place,
// so an optimizer built over `parameters` stays valid across loads.
import Foundation

/// Why a module's weights could not be loaded (or a module could not be built).
public enum ModuleError: Error, CustomStringConvertible, Equatable {
  /// A tensor the module needs is not in the file.
  case missing(String)
  /// The file holds tensors the module does not use (names sorted; the first few are listed).
  case unexpected([String])
  /// A tensor has another shape than the module's.
  case shape(name: String, found: [Int], expected: [Int])
  /// A bad layer argument.
  case invalidArgument(String)
  /// A tensor holds NaN or ±Inf (the first such value and its flat index).
  case nonFinite(name: String, index: Int, value: Float)

  /// The message, naming the tensor.
  public var description: String {
    switch self {
    case .missing(let n): return "weight \(n) is missing"
    case .unexpected(let names):
      let shown = names.prefix(5).joined(separator: ", ")
      return
        "unused weight\(names.count == 1 ? "" : "s") \(shown)\(names.count > 5 ? " (\(names.count) in all)" : "")"
    case .shape(let n, let found, let expected):
      return "weight \(n) has shape \(found), the model expects \(expected)"
    case .invalidArgument(let s): return s
    case .nonFinite(let n, let i, let v):
      return "weight \(n) holds \(v) at flat index \(i); weights must be finite"
    }
  }

  /// Throws `nonFinite` naming `name` at the first NaN or ±Inf of `values`.
  public static func checkFinite(_ name: String, _ values: [Float]) throws {
    if let i = values.firstIndex(where: { !$0.isFinite }) {
      throw ModuleError.nonFinite(name: name, index: i, value: values[i])
    }
  }
}

/// A layer or model: named parameters, buffers and children, a train/eval mode, strict load and save.
open class Module {
  /// A parameter with its PyTorch-default initialiser.
  struct Slot {
    let name: String
    let tensor: Tensor
    let initializer: Init.Parameter?
  }

  /// A buffer with its (optional) initialiser.
  struct BufferSlot {
    let name: String
    let tensor: Tensor
    let initializer: BufferInitializer?
  }

  /// Fresh values for a buffer, drawn from (`seed`, `stream`) by `initialize(seed:slot:)`; shaped like it.
  public typealias BufferInitializer = (_ seed: UInt64, _ stream: Int) throws -> Tensor

  private var ownParameters: [Slot] = []
  private var ownBuffers: [BufferSlot] = []
  private var ownChildren: [(name: String, module: Module)] = []
  /// Whether the module is in training mode (batch statistics, dropout); `eval()` clears it.
  public private(set) var isTraining = true

  /// An empty module.
  public init() {}

  /// Registers `module` as the child `name` and returns it.
  @discardableResult
  public func child<M: Module>(_ name: String, _ module: M) -> M {
    precondition(!ownChildren.contains { $0.name == name }, "duplicate child \(name)")
    ownChildren.append((name, module))
    return module
  }

  /// Creates and registers the parameter `name` of `shape` on `device`, holding the constant value of its
  /// initialiser (ones for norm weights, zeros otherwise) until `initialize(seed:)` draws it.
  public func parameter(_ name: String, shape: [Int], initializer: Init.Parameter, on device: Device) throws
    -> Tensor
  {
    let t = try Module.make(shape, initializer, device)
    register(parameter: name, t, initializer: initializer)
    return t
  }

  /// Registers an existing tensor as the parameter `name`; `initialize(seed:)` redraws it with
  /// `initializer` (nil: keep its values).
  public func register(parameter name: String, _ tensor: Tensor, initializer: Init.Parameter?) {
    precondition(!ownParameters.contains { $0.name == name }, "duplicate parameter \(name)")
    ownParameters.append(Slot(name: name, tensor: tensor, initializer: initializer))
  }

  /// Renames the own parameter `name` to `newName`, keeping its tensor, initialiser and place in the
  /// registration order (spectral normalisation's weight → weight_orig).
  public func renameParameter(_ name: String, to newName: String) throws {
    guard let i = ownParameters.firstIndex(where: { $0.name == name }) else {
      throw ModuleError.invalidArgument("renameParameter: no parameter \(name)")
    }
    guard newName == name || !ownParameters.contains(where: { $0.name == newName }) else {
      throw ModuleError.invalidArgument("renameParameter: a parameter \(newName) already exists")
    }
    let s = ownParameters[i]
    ownParameters[i] = Slot(name: newName, tensor: s.tensor, initializer: s.initializer)
  }

  /// Registers `tensor` as the buffer `name` (state that is saved and loaded but not trained);
  /// `initialize(seed:slot:)` redraws it with `initializer` (nil: keep its values).
  @discardableResult
  public func buffer(_ name: String, _ tensor: Tensor, initializer: BufferInitializer? = nil) -> Tensor {
    precondition(!ownBuffers.contains { $0.name == name }, "duplicate buffer \(name)")
    ownBuffers.append(BufferSlot(name: name, tensor: tensor, initializer: initializer))
    return tensor
  }

  /// The direct children, in registration order.
  public var children: [(name: String, module: Module)] { ownChildren }

  /// Every module of the tree with its dotted path ("" for self), depth first.
  public var namedModules: [(name: String, module: Module)] {
    var out: [(String, Module)] = [("", self)]
    for (n, m) in ownChildren {
      out += m.namedModules.map { ($0.name.isEmpty ? n : "\(n).\($0.name)", $0.module) }
    }
    return out
  }

  private func walk<T>(_ own: (Module) -> [(String, T)]) -> [(String, T)] {
    var out: [(String, T)] = []
    for (path, m) in namedModules {
      out += own(m).map { (path.isEmpty ? $0.0 : "\(path).\($0.0)", $0.1) }
    }
    return out
  }

  /// Every parameter by dotted name, in registration order (depth first).
  public var namedParameters: [(name: String, tensor: Tensor)] {
    walk { m in m.ownParameters.map { ($0.name, $0.tensor) } }.map { (name: $0.0, tensor: $0.1) }
  }

  /// Every buffer by dotted name, in registration order.
  public var namedBuffers: [(name: String, tensor: Tensor)] {
    walk { m in m.ownBuffers.map { ($0.name, $0.tensor) } }.map { (name: $0.0, tensor: $0.1) }
  }

  /// Parameters sorted by name: the order of initialisation streams, optimizer state and gradients.
  public var sortedParameters: [(name: String, tensor: Tensor)] {
    namedParameters.sorted { $0.name < $1.name }
  }

  /// The trainable tensors, in name order.
  public var trainableParameters: [Tensor] { sortedParameters.map(\.tensor) }

  /// Number of trainable scalars.
  public var parameterCount: Int { namedParameters.reduce(0) { $0 + $1.tensor.count } }

  /// Parameters and buffers by dotted name: what `save` writes and `load` reads.
  public var stateDict: [(name: String, tensor: Tensor)] { namedParameters + namedBuffers }

  /// Sets training (`true`) or evaluation mode on the whole tree.
  public func train(_ on: Bool = true) {
    for (_, m) in namedModules { m.isTraining = on }
  }

  /// Evaluation mode on the whole tree (running statistics, no dropout).
  public func eval() { train(false) }

  /// PyTorch's default initialisation for every parameter, drawn from Philox: the i-th parameter in name
  /// order draws from `Streams.parameter(i, slot:)`. Buffers registered with an initialiser (spectral
  /// norm's u and v) are redrawn too, the i-th buffer in name order from `Streams.buffer(i, slot:)`; the
  /// others (running statistics) keep their values. Use another `slot` for a second model of one run.
  public func initialize(seed: UInt64, slot: Int = 0) throws {
    var slots: [(String, Slot)] = walk { m in m.ownParameters.map { ($0.name, $0) } }
    slots.sort { $0.0 < $1.0 }
    for (i, (_, s)) in slots.enumerated() {
      guard let initializer = s.initializer else { continue }
      let stream = Streams.parameter(i, slot: slot)
      let fresh = try Init.pytorchDefault(
        initializer, shape: s.tensor.shape, seed: seed, stream: stream, on: s.tensor.device)
      try Tape.noGrad { try s.tensor.assign(fresh) }
    }
    var buffers: [(String, BufferSlot)] = walk { m in m.ownBuffers.map { ($0.name, $0) } }
    buffers.sort { $0.0 < $1.0 }
    for (i, (name, b)) in buffers.enumerated() {
      guard let initializer = b.initializer else { continue }
      let fresh = try initializer(seed, Streams.buffer(i, slot: slot))
      guard fresh.shape == b.tensor.shape else {
        throw ModuleError.shape(name: name, found: fresh.shape, expected: b.tensor.shape)
      }
      try Tape.noGrad { try b.tensor.assign(fresh.to(b.tensor.device)) }
    }
  }

  /// Copies `tensors` into the parameters and buffers by name. Strict: a missing, unexpected or misshapen
  /// tensor is an error naming it, and nothing is changed unless every tensor checks out.
  public func load(_ tensors: [String: TensorData], strict: Bool = true) throws {
    let state = stateDict
    var plan: [(Tensor, TensorData)] = []
    for (name, t) in state {
      guard let d = tensors[name] else {
        if strict { throw ModuleError.missing(name) }
        continue
      }
      let expected = t.shape
      // A PyTorch scalar buffer (num_batches_tracked) is stored with shape [].
      guard d.shape == expected || (d.values.count == t.count && (d.shape.isEmpty || expected.isEmpty)) else {
        throw ModuleError.shape(name: name, found: d.shape, expected: expected)
      }
      try ModuleError.checkFinite(name, d.values)
      plan.append((t, d))
    }
    if strict {
      let known = Set(state.map(\.name))
      let extra = tensors.keys.filter { !known.contains($0) }.sorted()
      if !extra.isEmpty { throw ModuleError.unexpected(extra) }
    }
    try Tape.noGrad {
      for (t, d) in plan { try t.assign(try Tensor(d.values, shape: t.shape, on: t.device)) }
    }
  }

  /// Loads a safetensors file (see `load(_:strict:)`).
  public func load(contentsOf url: URL, strict: Bool = true) throws {
    try load(try SafeTensors.read(contentsOf: url).tensors, strict: strict)
  }

  /// Writes every parameter and buffer to a safetensors file (atomically), fetching one tensor at a time.
  public func save(to url: URL, dtype: SafeTensorsDType = .f32, metadata: [String: String] = ["format": "pt"])
    throws
  {
    try SafeTensors.write(lazy: lazyState(), metadata: metadata, dtype: dtype, to: url)
  }

  /// The state dict as lazily fetched tensors (for checkpoint writers).
  public func lazyState() -> [(name: String, tensor: LazyTensor)] {
    stateDict.map { name, t in (name, LazyTensor(shape: t.shape) { try t.toArray() }) }
  }
}

/// Children "0", "1", … (`nn.ModuleList`).
public final class ModuleList<Element: Module>: Module {
  /// The modules, in order.
  public let items: [Element]
  /// A list of `items`, registered as children "0", "1", ….
  public init(_ items: [Element]) {
    self.items = items
    super.init()
    for (i, m) in items.enumerated() { child("\(i)", m) }
  }
  /// The number of modules.
  public var count: Int { items.count }
  /// Module `i`.
  public subscript(_ i: Int) -> Element { items[i] }
}

/// A module with one input and one output, the kind `Sequential` chains.
public protocol UnaryLayer: Module {
  /// The forward pass.
  func callAsFunction(_ x: Tensor) throws -> Tensor
}
