// The processes of one data-parallel job. Started by Open MPI's `mpirun`, gpugen loads libmpi at run time
// (dlopen of libmpi.so.40, with RTLD_GLOBAL so that Open MPI's plugins resolve against it) and uses five
// collectives: all-reduce (sum, min, max), barrier and abort. A plain run never loads it: the process is a
// group of one and every collective is the identity.
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Errors of the process group.
public enum DistributedError: Error, CustomStringConvertible, Equatable {
  /// gpugen runs under mpirun but libmpi could not be loaded or lacks a symbol.
  case unavailable(String)
  /// An MPI call returned an error code.
  case call(String, Int32)
  /// The ranks disagree about something that must be the same on every rank.
  case mismatch(String)

  public var description: String {
    switch self {
    case .unavailable(let s): return "MPI: \(s)"
    case .call(let f, let code): return "MPI: \(f) failed with error code \(code)"
    case .mismatch(let s): return "the ranks disagree: \(s)"
    }
  }
}

/// The processes of a job: one (a plain run) or the `mpirun` world. Every collective is called by every
/// rank in the same order, as MPI requires.
public final class Communicator: @unchecked Sendable {
  /// This process's rank, 0..<size.
  public let rank: Int
  /// The number of processes.
  public let size: Int
  private let mpi: MPILibrary?

  /// A group of one process (no MPI).
  public static let single = Communicator(rank: 0, size: 1, mpi: nil)

  private init(rank: Int, size: Int, mpi: MPILibrary?) {
    self.rank = rank
    self.size = size
    self.mpi = mpi
  }

  /// True when the job has more than one process.
  public var isDistributed: Bool { size > 1 }
  /// True on the rank that writes files and prints progress (rank 0).
  public var isRoot: Bool { rank == 0 }

  nonisolated(unsafe) private static var worldGroup: Communicator?
  private static let lock = NSLock()

  /// True when this process was started by Open MPI's launcher (`mpirun`/`mpiexec`).
  public static var launchedByMPI: Bool {
    let env = ProcessInfo.processInfo.environment
    return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
  }

  /// The job's processes: MPI_COMM_WORLD when started by `mpirun` (MPI is initialised on first use and
  /// finalised at exit), else `single`. Throws when started by mpirun but libmpi cannot be loaded.
  public static func world() throws -> Communicator {
    lock.lock()
    defer { lock.unlock() }
    if let w = worldGroup { return w }
    guard launchedByMPI else {
      worldGroup = .single
      return .single
    }
    let lib = try MPILibrary.load()
    try lib.initialise()
    var r: Int32 = 0
    var s: Int32 = 0
    try lib.check("MPI_Comm_rank", lib.commRank(lib.commWorld, &r))
    try lib.check("MPI_Comm_size", lib.commSize(lib.commWorld, &s))
    let w = Communicator(rank: Int(r), size: Int(s), mpi: lib)
    worldGroup = w
    atexit { Communicator.finalizeWorld() }
    return w
  }

  /// The world if MPI was already initialised in this process, else nil (never initialises it).
  public static var initialisedWorld: Communicator? {
    lock.lock()
    defer { lock.unlock() }
    return worldGroup
  }

  private static func finalizeWorld() {
    guard let lib = worldGroup?.mpi else { return }
    var done: Int32 = 0
    _ = lib.finalized(&done)
    if done == 0 { _ = lib.finalize() }
  }

  /// Sums `values` over the ranks, in place, in chunks of at most 2³⁰ elements.
  public func allReduceSum(_ values: inout [Float]) throws {
    guard let mpi, size > 1 else { return }
    try values.withUnsafeMutableBufferPointer { p in
      try mpi.allReduce(
        UnsafeMutableRawPointer(p.baseAddress), count: p.count, type: mpi.floatType, op: mpi.sum)
    }
  }

  /// Sums `values` over the ranks, in place.
  public func allReduceSum(_ values: inout [Double]) throws {
    guard let mpi, size > 1 else { return }
    try values.withUnsafeMutableBufferPointer { p in
      try mpi.allReduce(
        UnsafeMutableRawPointer(p.baseAddress), count: p.count, type: mpi.doubleType, op: mpi.sum)
    }
  }

  /// The element-wise maximum of `values` over the ranks, in place.
  public func allReduceMax(_ values: inout [Double]) throws {
    guard let mpi, size > 1 else { return }
    try values.withUnsafeMutableBufferPointer { p in
      try mpi.allReduce(
        UnsafeMutableRawPointer(p.baseAddress), count: p.count, type: mpi.doubleType, op: mpi.max)
    }
  }

  /// Every rank's `value`, indexed by rank (one all-reduce of a vector that holds each rank's value in its
  /// own slot). Exact for integers below 2⁵³.
  public func allGather(_ value: Double) throws -> [Double] {
    var slots = [Double](repeating: 0, count: size)
    slots[rank] = value
    try allReduceSum(&slots)
    return slots
  }

  /// Waits until every rank has reached this call.
  public func barrier() throws {
    guard let mpi, size > 1 else { return }
    try mpi.check("MPI_Barrier", mpi.barrier(mpi.commWorld))
  }

  /// Ends every rank of the job with exit status `code` (MPI_Abort); a single process just exits.
  public func abort(code: Int32) -> Never {
    if let mpi, size > 1 { _ = mpi.abort(mpi.commWorld, code) }
    exit(code)
  }
}

/// The MPI entry points gpugen uses, resolved from libmpi with dlsym (Open MPI's ABI: handles are pointers to
/// its predefined objects).
final class MPILibrary: @unchecked Sendable {
  typealias Handle = UnsafeMutableRawPointer
  let commWorld: Handle
  let floatType: Handle
  let doubleType: Handle
  let sum: Handle
  let max: Handle
  let initThread:
    @convention(c) (
      UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<Int32>?
    ) -> Int32
  let initialized: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
  let finalized: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
  let finalize: @convention(c) () -> Int32
  let commRank: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
  let commSize: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
  let allReduceFunction:
    @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
  let barrier: @convention(c) (Handle) -> Int32
  let abort: @convention(c) (Handle, Int32) -> Int32

  private init(_ h: UnsafeMutableRawPointer) throws {
    func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
      guard let p = dlsym(h, name) else {
        throw DistributedError.unavailable("libmpi has no symbol \(name) (gpugen needs Open MPI)")
      }
      return p
    }
    func fn<T>(_ name: String, _: T.Type) throws -> T { unsafeBitCast(try symbol(name), to: T.self) }
    commWorld = try symbol("ompi_mpi_comm_world")
    floatType = try symbol("ompi_mpi_float")
    doubleType = try symbol("ompi_mpi_double")
    sum = try symbol("ompi_mpi_op_sum")
    max = try symbol("ompi_mpi_op_max")
    initThread = try fn("MPI_Init_thread", type(of: initThread))
    initialized = try fn("MPI_Initialized", type(of: initialized))
    finalized = try fn("MPI_Finalized", type(of: finalized))
    finalize = try fn("MPI_Finalize", type(of: finalize))
    commRank = try fn("MPI_Comm_rank", type(of: commRank))
    commSize = try fn("MPI_Comm_size", type(of: commSize))
    allReduceFunction = try fn("MPI_Allreduce", type(of: allReduceFunction))
    barrier = try fn("MPI_Barrier", type(of: barrier))
    abort = try fn("MPI_Abort", type(of: abort))
  }

  /// Loads Open MPI's libmpi (libmpi.so.40, Debian's libopenmpi3) with global symbols.
  static func load() throws -> MPILibrary {
    var errors: [String] = []
    for name in ["libmpi.so.40", "libmpi.so"] {
      if let h = dlopen(name, RTLD_NOW | RTLD_GLOBAL) { return try MPILibrary(h) }
      errors.append(dlerror().map { String(cString: $0) } ?? name)
    }
    throw DistributedError.unavailable(
      "started by mpirun but libmpi could not be loaded (\(errors.joined(separator: "; "))); "
        + "install Open MPI: apt-get install openmpi-bin libopenmpi-dev")
  }

  /// MPI_Init_thread (MPI_THREAD_FUNNELED: only the main thread calls MPI), unless already initialised.
  func initialise() throws {
    var flag: Int32 = 0
    _ = initialized(&flag)
    if flag != 0 { return }
    var provided: Int32 = 0
    try check("MPI_Init_thread", initThread(nil, nil, 1, &provided))
  }

  /// Throws unless `code` is MPI_SUCCESS.
  func check(_ name: String, _ code: Int32) throws {
    if code != 0 { throw DistributedError.call(name, code) }
  }

  /// In-place all-reduce of `count` elements, in chunks that fit MPI's Int32 count.
  func allReduce(_ p: UnsafeMutableRawPointer?, count: Int, type: Handle, op: Handle) throws {
    guard let p, count > 0 else { return }
    let elementSize = type == doubleType ? 8 : 4
    let inPlace = UnsafeRawPointer(bitPattern: 1)  // Open MPI's MPI_IN_PLACE
    var offset = 0
    while offset < count {
      let n = Swift.min(count - offset, 1 << 30)
      try check(
        "MPI_Allreduce",
        allReduceFunction(inPlace, p + offset * elementSize, Int32(n), type, op, commWorld))
      offset += n
    }
  }
}
