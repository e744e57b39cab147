// Every way a safetensors file can be rejected (or fail to be written), one case per problem.

/// Why a safetensors file was rejected, or could not be written. Data offsets count from the first byte
/// after the header; header offsets count from the first byte of the JSON header.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The file is shorter than the 8-byte header length field.
  case fileTooShort(size: Int)
  /// The header length exceeds the limit (checked before anything is allocated for it).
  case headerTooLarge(length: UInt64, limit: Int)
  /// The header length runs past the end of the file.
  case headerPastEnd(length: UInt64, fileSize: Int)
  /// The header bytes are not valid UTF-8.
  case headerNotUTF8
  /// The header is not valid JSON.
  case invalidJSON(offset: Int, reason: String)
  /// The header is JSON but not a JSON object.
  case headerNotObject(found: String)
  /// A JSON object in the header repeats a key (`container` names the object).
  case duplicateKey(key: String, in: String, offset: Int)
  /// A tensor entry is not an object with a string `dtype`, an integer `shape` and two `data_offsets`.
  case invalidTensorEntry(name: String, reason: String)
  /// `__metadata__` is not a JSON object.
  case metadataNotObject(found: String)
  /// A `__metadata__` value is not a string.
  case nonStringMetadata(key: String, found: String)
  /// A tensor's dtype is not a safetensors dtype.
  case unknownDType(name: String, dtype: String)
  /// A tensor's dtype is a safetensors dtype that gpugen does not read (FP8, FP6, FP4, C64).
  case unsupportedDType(name: String, dtype: String)
  /// A tensor's shape has a negative dimension.
  case negativeDimension(name: String, shape: String)
  /// A tensor's element count or byte size overflows.
  case shapeOverflow(name: String, shape: String)
  /// A tensor's `data_offsets` end before they begin.
  case invalidOffsets(name: String, begin: Int, end: Int)
  /// A tensor's byte range does not hold exactly its shape's element count × the dtype size.
  case sizeMismatch(name: String, dtype: String, shape: [Int], expected: Int, actual: Int)
  /// Two tensors' byte ranges overlap.
  case overlappingTensors(first: String, firstOffsets: [Int], second: String, secondOffsets: [Int])
  /// No tensor covers the data bytes `begin..<end` (before the first tensor when `after` is nil).
  case holeBetweenTensors(after: String?, before: String, begin: Int, end: Int)
  /// The data section continues after the last tensor (which ends at `end`).
  case trailingBytes(after: String?, end: Int, dataLength: Int)
  /// A tensor's data runs past the end of the file.
  case dataTruncated(name: String, end: Int, dataLength: Int)
  /// A tensor to write has a value count that differs from its shape's element count.
  case valueCountMismatch(name: String, shape: [Int], expected: Int, count: Int)
  /// Two tensors to write share a name.
  case duplicateTensorName(String)
  /// A tensor to write is named `__metadata__`, which the format reserves.
  case reservedTensorName(String)
  /// Reading or writing the file failed.
  case io(path: String, operation: String, reason: String)

  /// A one-line explanation naming the tensor, offsets and sizes involved.
  public var description: String {
    switch self {
    case .fileTooShort(let size):
      return "safetensors: the file has \(size) bytes, fewer than the 8-byte header length"
    case .headerTooLarge(let length, let limit):
      return "safetensors: the header length \(length) exceeds the \(limit)-byte limit"
    case .headerPastEnd(let length, let fileSize):
      return "safetensors: the header length \(length) runs past the end of the \(fileSize)-byte file"
    case .headerNotUTF8:
      return "safetensors: the header is not valid UTF-8"
    case .invalidJSON(let offset, let reason):
      return "safetensors: the header is not valid JSON at byte \(offset): \(reason)"
    case .headerNotObject(let found):
      return "safetensors: the header must be a JSON object, found \(found)"
    case .duplicateKey(let key, let container, let offset):
      return "safetensors: duplicate key '\(key)' in \(container) at header byte \(offset)"
    case .invalidTensorEntry(let name, let reason):
      return "safetensors: tensor '\(name)': \(reason)"
    case .metadataNotObject(let found):
      return "safetensors: __metadata__ must be an object of strings, found \(found)"
    case .nonStringMetadata(let key, let found):
      return "safetensors: __metadata__ value '\(key)' must be a string, found \(found)"
    case .unknownDType(let name, let dtype):
      return "safetensors: tensor '\(name)' has unknown dtype '\(dtype)'"
    case .unsupportedDType(let name, let dtype):
      return "safetensors: tensor '\(name)' has dtype \(dtype), which gpugen does not read"
    case .negativeDimension(let name, let shape):
      return "safetensors: tensor '\(name)' has a negative dimension in shape \(shape)"
    case .shapeOverflow(let name, let shape):
      return "safetensors: tensor '\(name)' shape \(shape) overflows the element or byte count"
    case .invalidOffsets(let name, let begin, let end):
      return "safetensors: tensor '\(name)' data_offsets [\(begin), \(end)] end before they begin"
    case .sizeMismatch(let name, let dtype, let shape, let expected, let actual):
      return
        "safetensors: tensor '\(name)' (\(dtype), shape \(shape)) needs \(expected) bytes but its "
        + "data_offsets span \(actual)"
    case .overlappingTensors(let first, let firstOffsets, let second, let secondOffsets):
      return
        "safetensors: tensors '\(first)' (data bytes \(firstOffsets)) and '\(second)' (data bytes "
        + "\(secondOffsets)) overlap"
    case .holeBetweenTensors(let after, let before, let begin, let end):
      let where_ = after.map { "between '\($0)' and '\(before)'" } ?? "before '\(before)'"
      return "safetensors: data bytes [\(begin), \(end)) \(where_) belong to no tensor"
    case .trailingBytes(let after, let end, let dataLength):
      let last = after.map { "the last tensor '\($0)' ends" } ?? "there are no tensors, so the data ends"
      return
        "safetensors: \(last) at data byte \(end) but the file has \(dataLength - end) more bytes "
        + "(data section \(dataLength) bytes)"
    case .dataTruncated(let name, let end, let dataLength):
      return
        "safetensors: tensor '\(name)' ends at data byte \(end) but the file holds only \(dataLength) "
        + "data bytes (truncated file?)"
    case .valueCountMismatch(let name, let shape, let expected, let count):
      return "safetensors: tensor '\(name)' has \(count) values, but shape \(shape) needs \(expected)"
    case .duplicateTensorName(let name):
      return "safetensors: two tensors are named '\(name)'"
    case .reservedTensorName(let name):
      return "safetensors: '\(name)' is reserved for the metadata and cannot name a tensor"
    case .io(let path, let operation, let reason):
      return "safetensors: cannot \(operation) \(path): \(reason)"
    }
  }
}
