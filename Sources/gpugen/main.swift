// Entry point: fix OpenBLAS's kernel choice if needed, then run the command tree.
import Foundation
import GPUGenCore

#if os(Linux)
  // OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so re-run this process once with it set.
  if let core = OpenBLASCore.recommendedCoreType() {
    setenv("OPENBLAS_CORETYPE", core, 1)
    // execv only returns on failure: then carry on with the kernels OpenBLAS detected.
    _ = execv("/proc/self/exe", CommandLine.unsafeArgv)
  }
#endif

GPUGen.main()
