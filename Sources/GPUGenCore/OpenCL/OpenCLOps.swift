// Backend ops on OpenCL: each is one kernel launch from Kernels/*.cl.
import COpenCL

extension OpenCLBackend {
  private func checkRank(_ rank: Int, _ op: String) throws {
    if rank > Shape.maxStridedRank {
      throw GPUGenError.invalidArgument(
        "\(op): strided kernels support rank ≤ \(Shape.maxStridedRank) after collapsing, got \(rank)")
    }
  }

  public func fill(_ y: Buffer, count: Int, value: Float) throws {
    let k = try kernel("elementwise_fill", family: "elementwise")
    try launchElementwise(
      k, "elementwise_fill", [.mem(mem(y)), .f32(value), .i32(Int32(count))], count: count)
  }

  public func unary(_ op: UnaryOp, _ x: Buffer, _ y: Buffer, count: Int, alpha: Float) throws {
    let name = "elementwise_\(op.rawValue)"
    let k = try kernel(name, family: "elementwise")
    try launchElementwise(
      k, name, [.mem(mem(x)), .mem(mem(y)), .f32(alpha), .i32(Int32(count))], count: count)
  }

  public func binary(_ op: BinaryOp, _ a: Buffer, _ b: Buffer, _ y: Buffer, layout: BroadcastLayout) throws {
    let contiguous = layout.shape.count <= 1 && layout.strides.allSatisfy { $0.allSatisfy { $0 == 1 } }
    if contiguous {
      let name = "binary_\(op.rawValue)_contig"
      let k = try kernel(name, family: "elementwise")
      try launchElementwise(
        k, name, [.mem(mem(a)), .mem(mem(b)), .mem(mem(y)), .i32(Int32(layout.count))], count: layout.count)
      return
    }
    try checkRank(layout.shape.count, op.rawValue)
    let name = "binary_\(op.rawValue)_bcast"
    let k = try kernel(name, family: "elementwise")
    // Pad to rank ≥ 2; the two innermost axes map to NDRange dimensions 0 and 1.
    let pad = max(0, 2 - layout.shape.count)
    let shape = Array(repeating: 1, count: pad) + layout.shape
    let sa = Array(repeating: 0, count: pad) + layout.strides[0],
      sb = Array(repeating: 0, count: pad) + layout.strides[1]
    let r = shape.count
    try launch(
      k, name,
      [
        .mem(mem(a)), .mem(mem(b)), .mem(mem(y)), .i32(Int32(r - 2)), .int16(Array(shape[..<(r - 2)])),
        .int16(Array(sa[..<(r - 2)])), .int16(Array(sb[..<(r - 2)])), .i32(Int32(sa[r - 2])),
        .i32(Int32(sb[r - 2])),
        .i32(Int32(sa[r - 1])), .i32(Int32(sb[r - 1])),
      ], global: [shape[r - 1], shape[r - 2], shape[..<(r - 2)].reduce(1, *)])
  }

  public func binaryScalar(
    _ op: BinaryOp, _ a: Buffer, scalar: Float, scalarFirst: Bool, _ y: Buffer, count: Int
  ) throws {
    let name = "binary_\(op.rawValue)_scalar"
    let k = try kernel(name, family: "elementwise")
    try launchElementwise(
      k, name, [.mem(mem(a)), .f32(scalar), .i32(scalarFirst ? 1 : 0), .mem(mem(y)), .i32(Int32(count))],
      count: count)
  }

  public func clamp(_ x: Buffer, _ y: Buffer, count: Int, lower: Float, upper: Float) throws {
    let k = try kernel("elementwise_clamp", family: "elementwise")
    try launchElementwise(
      k, "elementwise_clamp", [.mem(mem(x)), .mem(mem(y)), .f32(lower), .f32(upper), .i32(Int32(count))],
      count: count)
  }

  public func select(_ cond: Buffer, _ a: Buffer, _ b: Buffer, _ y: Buffer, layout: BroadcastLayout) throws {
    try checkRank(layout.shape.count, "where")
    let k = try kernel("elementwise_where", family: "elementwise")
    try launchElementwise(
      k, "elementwise_where",
      [
        .mem(mem(cond)), .mem(mem(a)), .mem(mem(b)), .mem(mem(y)), .i32(Int32(layout.shape.count)),
        .int16(layout.shape), .int16(layout.strides[0]), .int16(layout.strides[1]), .int16(layout.strides[2]),
        .i32(Int32(layout.count)),
      ], count: layout.count)
  }

  public func copyStrided(_ x: Buffer, _ y: Buffer, _ c: StridedCopy) throws {
    try checkRank(c.shape.count, "copy")
    if !usesGPUVariants, try copyRuns(x, y, c) { return }
    // Pad to rank ≥ 2; the two innermost axes map to NDRange dimensions 0 and 1.
    let pad = max(0, 2 - c.shape.count)
    let shape = Array(repeating: 1, count: pad) + c.shape
    let xs = Array(repeating: 0, count: pad) + c.xStrides, ys = Array(repeating: 0, count: pad) + c.yStrides
    let r = shape.count
    let outer = shape[..<(r - 2)].reduce(1, *)
    let k = try kernel("elementwise_copy_strided", family: "elementwise")
    try launch(
      k, "elementwise_copy_strided",
      [
        .mem(mem(x)), .mem(mem(y)), .i32(Int32(r - 2)), .int16(Array(shape[..<(r - 2)])),
        .int16(Array(xs[..<(r - 2)])),
        .i32(Int32(c.xOffset)), .int16(Array(ys[..<(r - 2)])), .i32(Int32(c.yOffset)), .i32(Int32(xs[r - 2])),
        .i32(Int32(ys[r - 2])), .i32(Int32(xs[r - 1])), .i32(Int32(ys[r - 1])),
      ], global: [shape[r - 1], shape[r - 2], outer])
  }

  /// CPU devices: elementwise_copy_runs, one work-item per index of the outer axes looping over the last
  /// m ≤ 3 axes, with m as large as leaves ≥ 64 work-items. (PoCL runs the per-element kernel 10–15× slower
  /// on upsampling and permutes: tiny work-groups and 64-bit index divisions.) Returns false, launching
  /// nothing, when fewer than 64 work-items would be left (the per-element kernel then runs).
  func copyRuns(_ x: Buffer, _ y: Buffer, _ c: StridedCopy) throws -> Bool {
    let r = c.shape.count
    guard r >= 2, c.shape.reduce(1, *) < Int(Int32.max) else { return false }
    var m = Swift.min(3, r - 1)
    while m > 1 && c.shape[..<(r - m)].reduce(1, *) < 64 { m -= 1 }
    let outer = c.shape[..<(r - m)].reduce(1, *)
    guard outer >= 64 else { return false }
    let pad = 3 - m
    let inner = Array(repeating: 1, count: pad) + c.shape[(r - m)...]
    let xi = Array(repeating: 0, count: pad) + c.xStrides[(r - m)...]
    let yi = Array(repeating: 0, count: pad) + c.yStrides[(r - m)...]
    let k = try kernel("elementwise_copy_runs", family: "elementwise")
    try launch(
      k, "elementwise_copy_runs",
      [
        .mem(mem(x)), .mem(mem(y)), .i32(Int32(r - m)), .int16(Array(c.shape[..<(r - m)])),
        .int16(Array(c.xStrides[..<(r - m)])), .i32(Int32(c.xOffset)), .int16(Array(c.yStrides[..<(r - m)])),
        .i32(Int32(c.yOffset)),
      ] + (0..<3).flatMap { i in [KernelArg.i32(Int32(inner[i])), .i32(Int32(xi[i])), .i32(Int32(yi[i]))] },
      global: [outer])
    return true
  }

  /// Work-group size of the row reductions (RLS in reduce.cl).
  /// CPU devices run one work-item per row: PoCL executes a work-group as a loop, and barrier trees
  /// only add overhead there.
  var reduceGroupSize: Int {
    reduceGroupSizeOverride ?? (usesGPUVariants ? min(64, info.maxWorkGroupSize) : 1)
  }

  public func reduce(
    _ op: ReduceOp, _ x: Buffer, _ y: Buffer, outer: Int, r: Int, inner: Int, correction: Int
  ) throws {
    if inner == 1 {
      let (k, ls) = try fittedGroup("reduce_rows", family: "reduce", macro: "RLS", desired: reduceGroupSize)
      try launch(
        k, "reduce_rows",
        [.mem(mem(x)), .mem(mem(y)), .i32(Int32(r)), .i32(op.rawValue), .i32(Int32(correction))],
        global: [outer * ls], local: [ls])
    } else {
      let k = try kernel("reduce_axis", family: "reduce", options: "-DRLS=\(reduceGroupSize)")
      try launch(
        k, "reduce_axis",
        [
          .mem(mem(x)), .mem(mem(y)), .i32(Int32(r)), .i32(Int32(inner)), .i32(op.rawValue),
          .i32(Int32(correction)),
        ], global: [outer * inner])
    }
  }

  public func softmax(_ x: Buffer, _ y: Buffer, outer: Int, r: Int, inner: Int, log: Bool) throws {
    if inner == 1 {
      let (k, ls) = try fittedGroup(
        "reduce_softmax_rows", family: "reduce", macro: "RLS", desired: reduceGroupSize)
      try launch(
        k, "reduce_softmax_rows", [.mem(mem(x)), .mem(mem(y)), .i32(Int32(r)), .i32(log ? 1 : 0)],
        global: [outer * ls], local: [ls])
    } else {
      let k = try kernel("reduce_softmax_axis", family: "reduce", options: "-DRLS=\(reduceGroupSize)")
      try launch(
        k, "reduce_softmax_axis",
        [.mem(mem(x)), .mem(mem(y)), .i32(Int32(r)), .i32(Int32(inner)), .i32(log ? 1 : 0)],
        global: [outer * inner])
    }
  }

  public func gemm(_ d: GemmDescriptor, _ a: Buffer, _ b: Buffer, _ c: Buffer, bias: Buffer?) throws {
    try gemm(d, a, b, c, bias: bias, config: activeGemmConfig.fitted(m: d.m, n: d.n))
  }

  /// GEMM with an explicit tile configuration (used by the tuner).
  func gemm(_ d: GemmDescriptor, _ a: Buffer, _ b: Buffer, _ c: Buffer, bias: Buffer?, config g: GemmConfig)
    throws
  {
    if d.m == 0 || d.n == 0 || d.batch == 0 { return }
    let (g, k) = try fittedGemm(g)
    try launch(
      k, g.kernelName,
      [
        .i32(Int32(d.m)), .i32(Int32(d.n)), .i32(Int32(d.k)), .f32(d.alpha), .f32(d.beta),
        .mem(mem(a)), .i32(Int32(d.lda)), .i64(Int64(d.strideA)), .i32(d.transA ? 1 : 0),
        .mem(mem(b)), .i32(Int32(d.ldb)), .i64(Int64(d.strideB)), .i32(d.transB ? 1 : 0),
        .mem(mem(c)), .i32(Int32(d.ldc)), .i64(Int64(d.strideC)),
        .mem(mem(bias ?? c)), .i32(bias == nil ? 0 : d.biasMode.rawValue), .i32(d.activation.rawValue),
        .f32(d.activationAlpha),
      ], global: g.globalSize(m: d.m, n: d.n, batch: d.batch), local: g.localSize)
  }
}

extension OpenCLBackend {
  /// The configuration and kernel that run `g` here: a pinned tile (16×16 work-items) that this kernel
  /// cannot run as one work-group (CL_KERNEL_WORK_GROUP_SIZE) has the larger side of its work-group halved
  /// until it fits, so a GEMM never fails at enqueue.
  func fittedGemm(_ config: GemmConfig) throws -> (GemmConfig, cl_kernel) {
    var g = config
    var k = try kernel(g.kernelName, family: "gemm", options: g.options)
    while g.variant == .tiled && g.wm * g.wn > limits(k).maxGroupSize && g.wm * g.wn > 1 {
      if g.wm >= g.wn { g.wm /= 2 } else { g.wn /= 2 }
      k = try kernel(g.kernelName, family: "gemm", options: g.options)
    }
    return (g, k)
  }
}

extension OpenCLBackend {
  public func im2col(_ x: Buffer, _ col: Buffer, _ g: ConvGeometry) throws {
    let k = try kernel("conv_im2col", family: "conv")
    try launch(
      k, "conv_im2col",
      [
        .mem(mem(x)), .mem(mem(col)), .i32(Int32(g.n)), .i32(Int32(g.c)), .i32(Int32(g.h)), .i32(Int32(g.w)),
        .i32(Int32(g.kh)), .i32(Int32(g.kw)), .i32(Int32(g.strideH)), .i32(Int32(g.strideW)),
        .i32(Int32(g.padT)), .i32(Int32(g.padL)), .i32(Int32(g.ho)), .i32(Int32(g.wo)),
        .i32(g.batchMajor ? 1 : 0),
      ], global: [g.ho, g.n, g.k])
  }

  /// Winograd candidates (`ConvGeometry.winogradCandidate`) run as Winograd F(4×4, 3×3); the rest: im2col into
  /// a batch-major (N, C·KH·KW, HO·WO) matrix, then one strided-batched GEMM that writes NCHW directly (the
  /// weight is shared by every image); 1×1 convolutions skip the unfolding.
  public func conv2d(
    _ x: Buffer, weight: Buffer, bias: Buffer?, _ y: Buffer, _ g: ConvGeometry, cout: Int,
    activation: Activation,
    activationAlpha: Float
  ) throws {
    if try inChunks(
      x, imageBias: nil, residual: nil, y, g, cout: cout,
      { xc, _, _, yc, gc in
        try conv2d(
          xc, weight: weight, bias: bias, yc, gc, cout: cout, activation: activation,
          activationAlpha: activationAlpha)
      })
    {
      return
    }
    if g.winogradCandidate(cout: cout) {
      try winograd(
        x, weight: weight, bias: bias, imageBias: nil, residual: nil, y, g, cout: cout,
        activation: activation,
        activationAlpha: activationAlpha)
      return
    }
    var gb = g
    gb.batchMajor = true
    let p = g.ho * g.wo
    let pointwise = g.isPointwise
    var col: Buffer?
    if !pointwise {
      col = try allocate(g.n * g.k * p)
      try im2col(x, col!, gb)
    }
    var d = GemmDescriptor(m: cout, n: p, k: g.k)
    d.batch = g.n
    d.strideA = 0
    d.strideB = g.k * p
    d.strideC = cout * p
    d.biasMode = bias == nil ? .none : .perRow
    d.activation = activation
    d.activationAlpha = activationAlpha
    try gemm(d, weight, col ?? x, y, bias: bias)
  }

  /// Winograd convolutions add the per-image bias and the residual in their output transform; the others
  /// add them afterwards.
  public func conv2dAdding(
    _ x: Buffer, weight: Buffer, bias: Buffer?, imageBias: Buffer?, residual: Buffer?, _ y: Buffer,
    _ g: ConvGeometry, cout: Int
  ) throws {
    if try inChunks(
      x, imageBias: imageBias, residual: residual, y, g, cout: cout,
      { xc, ibc, rc, yc, gc in
        try conv2dAdding(xc, weight: weight, bias: bias, imageBias: ibc, residual: rc, yc, gc, cout: cout)
      })
    {
      return
    }
    guard g.winogradCandidate(cout: cout) else {
      try conv2dThenAdd(
        x, weight: weight, bias: bias, imageBias: imageBias, residual: residual, y, g, cout: cout)
      return
    }
    try winograd(
      x, weight: weight, bias: bias, imageBias: imageBias, residual: residual, y, g, cout: cout,
      activation: .none, activationAlpha: 0)
  }

  /// The most floats a convolution's workspace (the im2col matrix, or Winograd's transformed input and
  /// products) may take: `GPUGEN_WORKSPACE_MB` if set, else the smaller of CL_DEVICE_MAX_MEM_ALLOC_SIZE and an
  /// eighth of the global memory.
  var workspaceCapFloats: Int {
    if let o = workspaceCapOverride { return Swift.max(o, 1) }
    var cap = info.globalMemory > 0 ? info.globalMemory / 8 : 1 << 30
    if info.maxAllocation > 0 { cap = Swift.min(cap, info.maxAllocation) }
    return Swift.max(cap / 4, 1)
  }

  /// The workspace floats one image of `g` needs: Winograd's V and M (36·(C + Cout) per 4×4 tile), or the
  /// im2col matrix (C·KH·KW·HO·WO; none for a 1×1 convolution).
  func workspacePerImage(_ g: ConvGeometry, cout: Int) -> Int {
    if g.winogradCandidate(cout: cout) { return 36 * (g.c + cout) * ((g.ho + 3) / 4) * ((g.wo + 3) / 4) }
    return g.isPointwise ? 0 : g.k * g.ho * g.wo
  }

  /// Runs a convolution whose workspace would exceed `workspaceCapFloats` in chunks of images: each chunk's
  /// input (and per-image bias and residual) is copied out, convolved by `body` into a chunk output, and copied
  /// into place. Returns false, doing nothing, when the whole batch fits.
  func inChunks(
    _ x: Buffer, imageBias: Buffer?, residual: Buffer?, _ y: Buffer, _ g: ConvGeometry, cout: Int,
    _ body: (Buffer, Buffer?, Buffer?, Buffer, ConvGeometry) throws -> Void
  ) throws -> Bool {
    let perImage = workspacePerImage(g, cout: cout)
    guard g.n > 1, perImage > 0, g.n * perImage > workspaceCapFloats else { return false }
    let chunk = Swift.max(1, workspaceCapFloats / perImage)
    poolLock.withLock { chunkedConvolutions += 1 }
    let (inImage, outImage) = (g.c * g.h * g.w, cout * g.ho * g.wo)
    func slice(_ src: Buffer, from: Int, count: Int) throws -> Buffer {
      let b = try allocate(count)
      try copyStrided(
        src, b, StridedCopy(shape: [count], xStrides: [1], xOffset: from, yStrides: [1], yOffset: 0))
      return b
    }
    var n0 = 0
    while n0 < g.n {
      let nb = Swift.min(chunk, g.n - n0)
      var gc = g
      gc.n = nb
      let xc = try slice(x, from: n0 * inImage, count: nb * inImage)
      let ibc = try imageBias.map { try slice($0, from: n0 * cout, count: nb * cout) }
      let rc = try residual.map { try slice($0, from: n0 * outImage, count: nb * outImage) }
      let yc = try allocate(nb * outImage)
      try body(xc, ibc, rc, yc, gc)
      try copyStrided(
        yc, y,
        StridedCopy(shape: [nb * outImage], xStrides: [1], xOffset: 0, yStrides: [1], yOffset: n0 * outImage))
      n0 += nb
    }
    return true
  }

  /// Winograd F(4×4, 3×3) (conv.cl): the weight transform U (36, Cout, C), the input transform V (36, C, T)
  /// over the T = N·⌈HO/4⌉·⌈WO/4⌉ tiles, 36 GEMMs M = U·V as one strided-batched GEMM, and the output
  /// transform with the biases, residual and activation.
  func winograd(
    _ x: Buffer, weight: Buffer, bias: Buffer?, imageBias: Buffer?, residual: Buffer?, _ y: Buffer,
    _ g: ConvGeometry, cout: Int, activation: Activation, activationAlpha: Float
  ) throws {
    let (th, tw) = ((g.ho + 3) / 4, (g.wo + 3) / 4)
    let tiles = g.n * th * tw
    let u = try allocate(36 * cout * g.c), v = try allocate(36 * g.c * tiles),
      m = try allocate(36 * cout * tiles)
    try launch(
      try kernel("conv_wino_weights", family: "conv"), "conv_wino_weights",
      [.mem(mem(weight)), .mem(mem(u)), .i32(Int32(g.c)), .i32(Int32(cout))], global: [g.c, cout])
    try launch(
      try kernel("conv_wino_input", family: "conv"), "conv_wino_input",
      [
        .mem(mem(x)), .mem(mem(v)), .i32(Int32(g.c)), .i32(Int32(g.h)), .i32(Int32(g.w)), .i32(Int32(g.padT)),
        .i32(Int32(g.padL)), .i32(Int32(th)), .i32(Int32(tw)), .i32(Int32(tiles)),
      ], global: [tiles, g.c])
    var d = GemmDescriptor(m: cout, n: tiles, k: g.c)
    d.batch = 36
    try gemm(d, u, v, m, bias: nil)
    try launch(
      try kernel("conv_wino_output", family: "conv", options: "-DWINO_ACT=\(activation.rawValue)"),
      "conv_wino_output",
      [
        .mem(mem(m)), .mem(mem(y)), .mem(mem(bias ?? m)), .i32(bias == nil ? 0 : 1),
        .mem(mem(imageBias ?? m)),
        .i32(imageBias == nil ? 0 : 1), .mem(mem(residual ?? m)), .i32(residual == nil ? 0 : 1),
        .i32(Int32(cout)), .i32(Int32(g.ho)), .i32(Int32(g.wo)), .i32(Int32(th)), .i32(Int32(tw)),
        .i32(Int32(tiles)), .f32(activationAlpha),
      ], global: [tiles, cout])
  }

  public func groupNorm(
    _ x: Buffer, _ y: Buffer, gamma: Buffer, beta: Buffer, n: Int, c: Int, hw: Int, groups: Int, eps: Float,
    silu: Bool
  ) throws {
    if reduceGroupSize == 1 {
      let k = try kernel("norm_group_vec", family: "norm", options: "-DNLS=1")
      try launch(
        k, "norm_group_vec",
        [
          .mem(mem(x)), .mem(mem(y)), .mem(mem(gamma)), .mem(mem(beta)), .i32(Int32(c)), .i32(Int32(hw)),
          .i32(Int32(groups)), .f32(eps), .i32(silu ? 1 : 0),
        ], global: [n * groups])
      return
    }
    let (k, ls) = try fittedGroup("norm_group", family: "norm", macro: "NLS", desired: reduceGroupSize)
    try launch(
      k, "norm_group",
      [
        .mem(mem(x)), .mem(mem(y)), .mem(mem(gamma)), .mem(mem(beta)), .i32(Int32(c)), .i32(Int32(hw)),
        .i32(Int32(groups)), .f32(eps), .i32(silu ? 1 : 0),
      ], global: [n * groups * ls], local: [ls])
  }
}
