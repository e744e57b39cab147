// A one-line progress bar on stderr: steps done, rate and ETA. Redrawn in place on a terminal;
// on a pipe it prints a line every ~10% so logs stay readable.
import Foundation

final class ProgressBar {
  let total: Int
  let label: String
  let unit: String
  let start = Date()
  let isTTY = isatty(2) != 0
  var lastPrinted = -1
  var done = 0

  init(total: Int, label: String, unit: String = "steps") {
    self.total = max(total, 1)
    self.label = label
    self.unit = unit
  }

  /// Advances by `n` steps, with optional extra text (e.g. a loss).
  func advance(_ n: Int = 1, note: String = "") {
    done = min(done + n, total)
    let elapsed = Date().timeIntervalSince(start)
    let rate = elapsed > 0 ? Double(done) / elapsed : 0
    let eta = rate > 0 ? Double(total - done) / rate : 0
    let width = 28
    let filled = width * done / total
    let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
    let line = String(
      format: "%@ %@ %d/%d %@ | %.2f %@/s | ETA %@%@", label, bar, done, total, unit, rate, unit,
      formatSeconds(eta), note.isEmpty ? "" : " | " + note)
    if isTTY {
      FileHandle.standardError.write(Data("\r\u{1B}[2K\(line)".utf8))
      if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    } else {
      let decile = done * 10 / total
      if decile != lastPrinted || done == total {
        lastPrinted = decile
        FileHandle.standardError.write(Data("\(line)\n".utf8))
      }
    }
  }
}

func formatSeconds(_ s: Double) -> String {
  if !s.isFinite { return "?" }
  if s < 60 { return String(format: "%.1fs", s) }
  if s < 3600 { return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
  return String(format: "%dh%02dm", Int(s) / 3600, Int(s) % 3600 / 60)
}
