// The `gpugen` command line.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels
import GPUGenNN

struct GPUGen: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gpugen",
    abstract: "A portable OpenCL engine for deep generative models, with a native CPU fallback.",
    discussion: """
      Devices: --device (or GPUGEN_DEVICE) takes auto, gpu, cpu, opencl or opencl:N.
      Kernel binaries are cached under $GPUGEN_CACHE_DIR (default ~/.cache/gpugen).
      """,
    subcommands: [
      Sample.self, Img2ImgCommand.self, Train.self, Encode.self, Decode.self, Reconstruct.self,
      Interpolate.self, Likelihood.self,
      Evaluate.self, Compare.self, Export.self, Devices.self, Bench.self,
      Inpaint.self, SelfTestCommand.self,
    ])
}

/// Options shared by every command that runs on a device.
struct DeviceOptions: ParsableArguments {
  @Option(
    name: .long,
    help: ArgumentHelp(
      "Device: auto (an OpenCL GPU, else the native CPU), gpu, cpu, opencl, opencl:N, or under mpirun opencl:rank (device rank mod the number of OpenCL devices). Default: $GPUGEN_DEVICE or auto.",
      valueName: "device"))
  var device: String?

  /// The device this process uses; `opencl:rank` picks OpenCL device (rank mod count) of the world's rank.
  func resolve() throws -> Device {
    let spec = device ?? ProcessInfo.processInfo.environment["GPUGEN_DEVICE"]
    if spec?.trimmingCharacters(in: .whitespaces).lowercased() == "opencl:rank" {
      let rank = try Communicator.world().rank
      let count = (try? Device.openCLDevices().count) ?? 0
      guard count > 0 else {
        throw GPUGenError.deviceNotFound(
          requested: "opencl:rank", available: try Device.availableDescriptions())
      }
      return try Device.openCL(rank % count)
    }
    return try Device.select(device)
  }
}

/// "gpugen: error: " and, in a data-parallel job, the rank ("gpugen: error: rank 1: ").
func errorPrefix() -> String {
  if let w = Communicator.initialisedWorld, w.isDistributed { return "gpugen: error: rank \(w.rank): " }
  return "gpugen: error: "
}

/// Runs `body`, turning engine errors into a message on stderr and the error's exit status.
/// With GPUGEN_VERBOSE=1, prints each device's kernel compile/cache counts at the end.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
  defer {
    if ProcessInfo.processInfo.environment["GPUGEN_VERBOSE"] == "1" {
      fflush(stdout)
      for d in Device.instantiated {
        let s = d.backend.stats
        FileHandle.standardError.write(
          Data(
            "gpugen: \(d.spec): \(s.programsCompiled) kernel programs compiled, \(s.programsFromCache) loaded from cache, \(s.allocations) buffers allocated\n"
              .utf8))
        for k in (d.openCL?.kernelProfile ?? []) + ((d.backend as? CPUBackend)?.opProfile ?? []) {
          FileHandle.standardError.write(
            Data(String(format: "gpugen:   %-28@ %7d launches %10.1f ms\n", k.name, k.count, k.ms).utf8))
        }
      }
    }
  }
  do {
    return try body()
  } catch let e as GPUGenError {
    FileHandle.standardError.write(Data("\(errorPrefix())\(e)\n".utf8))
    throw ExitCode(e.exitCode)
  } catch let e as DistributedError {
    FileHandle.standardError.write(Data("\(errorPrefix())\(e)\n".utf8))
    throw ExitCode(2)
  }
}

/// `reportingErrors`, plus the errors of bad user input (models, data, checkpoints, options): each is one
/// line on stderr and exit status 2; a diverged training run exits with 3.
func reportingUserErrors(weightsLabel: String = "weights", _ body: () throws -> Void) throws {
  func fail(_ message: String, status: Int32 = 2) -> ExitCode {
    FileHandle.standardError.write(Data("\(errorPrefix())\(message)\n".utf8))
    return ExitCode(status)
  }
  try reportingErrors {
    do {
      do { try body() } catch {
        abandonOutputFolder()
        throw error
      }
    } catch let e as TrainingError {
      FileHandle.standardError.write(Data("\n".utf8))
      if case .diverged = e { throw fail("\(e)", status: 3) }
      throw fail("\(e)")
    } catch
      where error is ModelError || error is ClassifierError || error is DatasetError || error is IDXError
      || error is ModuleError
    {
      throw fail("\(error)")
    } catch let e as SchedulerConfigError {
      throw fail("\(e)")  // (its message starts with "scheduler config:")
    } catch let e as SafeTensorsError {
      throw fail("\(weightsLabel): \(e)")
    } catch let e as NonFiniteError {
      FileHandle.standardError.write(Data("\n".utf8))
      throw fail("\(e)", status: 3)
    } catch  where error is FileSystemError || error is OutputFolderLocked {
      throw fail("\(error)")
    } catch  where error is CocoaError || (error as NSError).domain == NSPOSIXErrorDomain {
      // Foundation's file errors: one line with the path and the reason, never a dump.
      if let fs = FileSystemError.from(error) { throw fail("\(fs)") }
      throw fail((error as NSError).localizedDescription)
    }
  }
}

/// The lock on the output folder this process writes (taken by `TrainingOptionGroup.outputFolder`).
nonisolated(unsafe) var heldOutputLock: OutputFolderLock?

/// After a failed command: a folder it created and wrote no checkpoint into is removed, so a rerun is not
/// blocked by an empty --out; the lock is released.
func abandonOutputFolder() {
  guard let lock = heldOutputLock else { return }
  let empty = (try? CheckpointWriter.latest(in: lock.folder)) == nil
  lock.release(removingFolder: empty)
  heldOutputLock = nil
}
