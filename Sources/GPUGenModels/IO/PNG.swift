// PNG files through libpng's simplified API (no setjmp), for sample grids and input images.
import CPNG
import Foundation

/// 8-bit grayscale or RGB images.
public struct Image8: Equatable, Sendable {
  public var width: Int, height: Int
  /// 1 (gray) or 3 (RGB).
  public var channels: Int
  /// Row-major interleaved pixels.
  public var pixels: [UInt8]

  public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
    (self.width, self.height, self.channels, self.pixels) = (width, height, channels, pixels)
  }

  /// Writes the image as a PNG file.
  public func writePNG(to url: URL) throws {
    guard channels == 1 || channels == 3, pixels.count == width * height * channels else {
      throw ModelError.input("PNG: \(pixels.count) bytes do not make a \(width)×\(height)×\(channels) image")
    }
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    image.width = UInt32(width)
    image.height = UInt32(height)
    image.format = channels == 1 ? 0 : 2  // PNG_FORMAT_GRAY, PNG_FORMAT_RGB (macros Swift cannot import)
    let ok = pixels.withUnsafeBytes { buf in
      png_image_write_to_file(&image, url.path, 0, buf.baseAddress, Int32(width * channels), nil)
    }
    if ok == 0 {
      let msg = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      png_image_free(&image)
      throw ModelError.malformed(url.path, "could not write PNG: \(msg)")
    }
  }

  /// Reads a PNG file, converted to gray (channels 1) or RGB (channels 3).
  public static func readPNG(from url: URL, channels: Int) throws -> Image8 {
    guard FileManager.default.fileExists(atPath: url.path) else { throw ModelError.missing(url.path) }
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    func fail(_ what: String) -> ModelError {
      let msg = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      return ModelError.malformed(url.path, "\(what): \(msg)")
    }
    guard png_image_begin_read_from_file(&image, url.path) != 0 else { throw fail("not a readable PNG") }
    guard Int(image.width) * Int(image.height) <= maxPNGPixels else {
      png_image_free(&image)
      throw ModelError.malformed(
        url.path, "\(image.width)×\(image.height) pixels is more than the \(maxPNGPixels)-pixel limit")
    }
    image.format = channels == 1 ? 0 : 2  // PNG_FORMAT_GRAY, PNG_FORMAT_RGB (macros Swift cannot import)
    var pixels = [UInt8](repeating: 0, count: Int(image.width) * Int(image.height) * channels)
    let ok = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
    guard ok != 0 else {
      png_image_free(&image)
      throw fail("could not decode PNG")
    }
    try checkPaletteIndices(url)
    return Image8(width: Int(image.width), height: Int(image.height), channels: channels, pixels: pixels)
  }

  /// A PNG's size and whether it holds colour (RGB/palette) or gray, from its header (no pixels decoded).
  public static func pngHeader(of url: URL) throws -> (width: Int, height: Int, colour: Bool) {
    guard FileManager.default.fileExists(atPath: url.path) else { throw ModelError.missing(url.path) }
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    guard png_image_begin_read_from_file(&image, url.path) != 0 else {
      let msg = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      throw ModelError.malformed(url.path, "not a readable PNG: \(msg)")
    }
    defer { png_image_free(&image) }
    return (Int(image.width), Int(image.height), image.format & 2 != 0)  // PNG_FORMAT_FLAG_COLOR
  }

  /// libpng's simplified API decodes a palette index beyond the palette silently (as black): for a palette
  /// image, decode the raw indices once more and refuse an index at or past the palette's size.
  static func checkPaletteIndices(_ url: URL) throws {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    guard png_image_begin_read_from_file(&image, url.path) != 0 else { return }
    guard image.format & 8 != 0 else {  // PNG_FORMAT_FLAG_COLORMAP: a palette image
      png_image_free(&image)
      return
    }
    image.format = 2 | 8  // PNG_FORMAT_RGB_COLORMAP: one byte per pixel, the palette index
    let (w, h) = (Int(image.width), Int(image.height))
    var indices = [UInt8](repeating: 0, count: w * h)
    var colormap = [UInt8](repeating: 0, count: 256 * 3)
    let ok = indices.withUnsafeMutableBytes { px in
      colormap.withUnsafeMutableBytes {
        png_image_finish_read(&image, nil, px.baseAddress, 0, $0.baseAddress)
      }
    }
    guard ok != 0 else {
      png_image_free(&image)
      return
    }
    let entries = Int(image.colormap_entries)
    if let i = indices.firstIndex(where: { Int($0) >= entries }) {
      throw ModelError.malformed(
        url.path,
        "pixel (\(i % w), \(i / w)) has palette index \(indices[i]), but the palette has \(entries) entries")
    }
  }

  /// The most pixels `readPNG` and `readPNGConverted` decode (a guard against decompression bombs): 2^28.
  public static let maxPNGPixels = 1 << 28

  /// Reads any PNG (gray, gray+alpha, palette, RGB, RGBA) as gray (`channels` 1: colour images become
  /// ITU-R 601 luma `0.299 R + 0.587 G + 0.114 B`, rounded) or RGB (`channels` 3: gray is replicated).
  /// Alpha is composited onto black.
  public static func readPNGConverted(from url: URL, channels: Int) throws -> Image8 {
    guard channels == 1 || channels == 3 else {
      throw ModelError.input("PNG: cannot convert to \(channels) channels (1 or 3)")
    }
    guard FileManager.default.fileExists(atPath: url.path) else { throw ModelError.missing(url.path) }
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    func fail(_ what: String) -> ModelError {
      let msg = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      return ModelError.malformed(url.path, "\(what): \(msg)")
    }
    guard png_image_begin_read_from_file(&image, url.path) != 0 else { throw fail("not a readable PNG") }
    let (w, h) = (Int(image.width), Int(image.height))
    guard w * h <= maxPNGPixels else {
      png_image_free(&image)
      throw ModelError.malformed(url.path, "\(w)×\(h) pixels is more than the \(maxPNGPixels)-pixel limit")
    }
    let sourceIsColour = image.format & 2 != 0  // PNG_FORMAT_FLAG_COLOR
    let decodeChannels = channels == 1 && !sourceIsColour ? 1 : 3
    image.format = decodeChannels == 1 ? 0 : 2  // PNG_FORMAT_GRAY, PNG_FORMAT_RGB
    var pixels = [UInt8](repeating: 0, count: w * h * decodeChannels)
    let ok = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
    guard ok != 0 else {
      png_image_free(&image)
      throw fail("could not decode PNG")
    }
    try checkPaletteIndices(url)
    if decodeChannels == channels { return Image8(width: w, height: h, channels: channels, pixels: pixels) }
    let gray = [UInt8](unsafeUninitializedCapacity: w * h) { out, n in
      for i in 0..<(w * h) {
        let r = Double(pixels[3 * i]), g = Double(pixels[3 * i + 1]), b = Double(pixels[3 * i + 2])
        out[i] = UInt8((0.299 * r + 0.587 * g + 0.114 * b).rounded())
      }
      n = w * h
    }
    return Image8(width: w, height: h, channels: 1, pixels: gray)
  }

  /// The image enlarged `factor` times by pixel repetition.
  public func zoomed(_ factor: Int) -> Image8 {
    guard factor > 1 else { return self }
    let w = width * factor, h = height * factor
    var px = [UInt8](repeating: 0, count: w * h * channels)
    for y in 0..<h {
      for x in 0..<w {
        for c in 0..<channels {
          px[(y * w + x) * channels + c] = pixels[((y / factor) * width + x / factor) * channels + c]
        }
      }
    }
    return Image8(width: w, height: h, channels: channels, pixels: px)
  }

  /// Tiles NCHW images with values in [-1, 1] into a grid with `columns` columns and a 2-pixel gutter.
  public static func grid(_ values: [Float], shape: [Int], columns: Int? = nil, gutter: Int = 2) throws
    -> Image8
  {
    guard shape.count == 4, shape[1] == 1 || shape[1] == 3, values.count == shape.reduce(1, *), shape[0] > 0
    else {
      throw ModelError.input("image grid needs (N, 1 or 3, H, W) values, got shape \(shape)")
    }
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    let cols = Swift.max(1, Swift.min(columns ?? Int(Double(n).squareRoot().rounded(.up)), n))
    let rows = (n + cols - 1) / cols
    let width = cols * w + (cols + 1) * gutter, height = rows * h + (rows + 1) * gutter
    var px = [UInt8](repeating: 0, count: width * height * c)
    for i in 0..<n {
      let ox = gutter + (i % cols) * (w + gutter), oy = gutter + (i / cols) * (h + gutter)
      for ch in 0..<c {
        for y in 0..<h {
          for x in 0..<w {
            let v = values[((i * c + ch) * h + y) * w + x]
            let b = v.isNaN ? 0 : UInt8(Swift.max(0, Swift.min(255, ((v + 1) * 127.5).rounded())))
            px[((oy + y) * width + ox + x) * c + ch] = b
          }
        }
      }
    }
    return Image8(width: width, height: height, channels: c, pixels: px)
  }
}
