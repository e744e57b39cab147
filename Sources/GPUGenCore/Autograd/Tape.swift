// Reverse-mode automatic differentiation over a tape.
//
// While a `Tape` records (`tape.record { … }`), every op whose inputs include a watched tensor (or a
// tensor computed from one) appends a node: its inputs, its output and a closure that maps the output's
// gradient to the inputs' gradients. `gradients(of:wrt:)` walks the nodes in reverse, accumulating
// gradients in a fixed order (so two runs give bitwise-identical results), then releases the tape: the
// saved activations go back to the buffer pool, so memory stays flat from one training step to the next.
//
// Backward closures run with recording paused, so gradients are not themselves differentiable.

import Foundation

/// A recording of differentiable ops, for one backward pass.
public final class Tape {
  struct Node {
    let inputs: [Tensor]
    let needs: [Bool]
    let output: Tensor
    let backward: (_ dy: Tensor, _ needs: [Bool]) throws -> [Tensor?]
  }

  private var nodes: [Node] = []
  private var tracked: Set<ObjectIdentifier> = []
  private var leaves: [Tensor] = []

  /// The recording state of one thread: the stack of recording tapes and the `noGrad` depth. It is
  /// thread-local, so models trained or sampled on different threads never see each other's tapes.
  final class ThreadState {
    var active: [Tape] = []
    var pauseDepth = 0
  }

  private static let stateKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { p in
      #if os(Linux)
        if let p { Unmanaged<ThreadState>.fromOpaque(p).release() }
      #else
        Unmanaged<ThreadState>.fromOpaque(p).release()
      #endif
    }
    return key
  }()

  /// This thread's recording state (created on first use).
  static var state: ThreadState {
    if let p = pthread_getspecific(stateKey) {
      return Unmanaged<ThreadState>.fromOpaque(p).takeUnretainedValue()
    }
    let s = ThreadState()
    pthread_setspecific(stateKey, Unmanaged.passRetained(s).toOpaque())
    return s
  }

  public init() {}

  /// Ops recorded so far.
  public var count: Int { nodes.count }

  /// Marks tensors (parameters, or inputs whose gradient is wanted) as requiring gradients.
  public func watch(_ tensors: [Tensor]) {
    for t in tensors where tracked.insert(ObjectIdentifier(t)).inserted { leaves.append(t) }
  }

  public func watch(_ tensor: Tensor) { watch([tensor]) }

  /// Whether `t` is watched or was computed from a watched tensor on this tape.
  public func isTracked(_ t: Tensor) -> Bool { tracked.contains(ObjectIdentifier(t)) }

  /// Runs `body` with this tape recording (tapes nest; the innermost records).
  public func record<T>(_ body: () throws -> T) rethrows -> T {
    let st = Tape.state
    st.active.append(self)
    defer { st.active.removeLast() }
    return try body()
  }

  /// Runs `body` without recording on any tape (inference mode).
  public static func noGrad<T>(_ body: () throws -> T) rethrows -> T {
    let st = state
    st.pauseDepth += 1
    defer { st.pauseDepth -= 1 }
    return try body()
  }

  /// Whether ops are being recorded right now.
  public static var isRecording: Bool {
    let st = state
    return st.pauseDepth == 0 && !st.active.isEmpty
  }

  /// The recording tape if any of `inputs` is tracked on it.
  static func recording(_ inputs: [Tensor?]) -> Tape? {
    let st = state
    guard st.pauseDepth == 0, let tape = st.active.last else { return nil }
    return inputs.contains { $0.map(tape.isTracked) ?? false } ? tape : nil
  }

  /// Records `output = f(inputs)` with its backward closure, if any input is tracked.
  static func record(
    _ output: Tensor, _ inputs: [Tensor],
    _ backward: @escaping (_ dy: Tensor, _ needs: [Bool]) throws -> [Tensor?]
  ) {
    guard let tape = recording(inputs) else { return }
    tape.tracked.insert(ObjectIdentifier(output))
    tape.nodes.append(
      Node(inputs: inputs, needs: inputs.map(tape.isTracked), output: output, backward: backward))
  }

  /// Gradients of `loss` with respect to each of `wrt` (nil when `loss` does not depend on it), seeded
  /// with ones (or `seed`, shaped like `loss`). Releases the tape afterwards, also when it throws.
  public func gradients(of loss: Tensor, wrt targets: [Tensor], seed: Tensor? = nil) throws -> [Tensor?] {
    defer { reset() }
    if let seed, seed.shape != loss.shape {
      throw GPUGenError.shapeMismatch(op: "gradients (seed vs loss)", lhs: seed.shape, rhs: loss.shape)
    }
    let wanted = Set(targets.map(ObjectIdentifier.init))
    return try Tape.noGrad {
      var grads: [ObjectIdentifier: Tensor] = [
        ObjectIdentifier(loss): try seed ?? Tensor.full(1, shape: loss.shape, on: loss.device)
      ]
      for node in nodes.reversed() {
        let out = ObjectIdentifier(node.output)
        guard let dy = wanted.contains(out) ? grads[out] : grads.removeValue(forKey: out) else { continue }
        let dxs = try node.backward(dy, node.needs)
        for (i, x) in node.inputs.enumerated() where node.needs[i] {
          guard let dx = dxs[i] else { continue }
          guard dx.shape == x.shape else {
            throw GPUGenError.shapeMismatch(op: "backward (gradient vs input)", lhs: dx.shape, rhs: x.shape)
          }
          let id = ObjectIdentifier(x)
          grads[id] = try grads[id].map { try $0 + dx } ?? dx
        }
      }
      return targets.map { grads[ObjectIdentifier($0)] }
    }
  }

  /// Drops every recorded node and watched tensor.
  public func reset() {
    nodes.removeAll()
    tracked.removeAll()
    leaves.removeAll()
  }
}
