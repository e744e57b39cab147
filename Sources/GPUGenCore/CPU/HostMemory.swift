// Host allocator settings for long-running jobs.
import CPUPeak

public enum HostMemory {
  /// Serves every host allocation of at least `bytes` with mmap, so freed large blocks return to the system
  /// (glibc's adaptive threshold would otherwise keep them in the heap after the first large free).
  public static func fixMmapThreshold(bytes: Int) { gpugen_fix_mmap_threshold(bytes) }
}
