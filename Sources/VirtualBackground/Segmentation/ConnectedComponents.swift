/// Connected components of a binary image on the CPU: one raster pass with union–find (path halving)
/// over provisional labels, then sizes per component. Linear in the pixel count; a 256×256 mask
/// takes well under a millisecond.
public struct ConnectedComponents {
    public let width: Int
    public let height: Int
    /// Per pixel: the component index (0..<count), or -1 for pixels outside the set.
    public let labels: [Int32]
    /// Pixel count of each component.
    public let sizes: [Int]
    /// Whether each component touches the image border.
    public let touchesBorder: [Bool]

    public var count: Int { sizes.count }

    /// Labels the pixels where `mask` is true, row-major `height × width`. `eightConnected` joins
    /// diagonal neighbours too (the usual choice for foreground; 4-connectivity for its complement).
    public init(mask: [Bool], width: Int, height: Int, eightConnected: Bool = true) throws {
        guard width >= 0, height >= 0, mask.count == width * height else {
            throw SegmentationError("connected components: the mask has \(mask.count) pixels, \(width)×\(height) expected")
        }
        self.width = width
        self.height = height
        var provisional = [Int32](repeating: -1, count: mask.count)
        var parent: [Int32] = []

        func find(_ x: Int32) -> Int32 {
            var x = x
            while parent[Int(x)] != x {
                parent[Int(x)] = parent[Int(parent[Int(x)])]
                x = parent[Int(x)]
            }
            return x
        }
        func union(_ a: Int32, _ b: Int32) {
            let (ra, rb) = (find(a), find(b))
            if ra != rb { parent[Int(max(ra, rb))] = min(ra, rb) }
        }

        // Already-visited neighbours: left, and the row above (up-left, up, up-right with 8-connectivity).
        for y in 0..<height {
            for x in 0..<width where mask[y * width + x] {
                let i = y * width + x
                var label: Int32 = -1
                func join(_ j: Int) {
                    let other = provisional[j]
                    guard other >= 0 else { return }
                    if label < 0 { label = other } else { union(label, other) }
                }
                if x > 0 { join(i - 1) }
                if y > 0 {
                    join(i - width)
                    if eightConnected {
                        if x > 0 { join(i - width - 1) }
                        if x + 1 < width { join(i - width + 1) }
                    }
                }
                if label < 0 {
                    label = Int32(parent.count)
                    parent.append(label)
                }
                provisional[i] = label
            }
        }

        // Compact the roots to 0..<count and gather sizes and border contact.
        var compact = [Int32](repeating: -1, count: parent.count)
        var sizes: [Int] = [], border: [Bool] = []
        var labels = provisional
        for y in 0..<height {
            for x in 0..<width {
                let i = y * width + x
                guard provisional[i] >= 0 else { continue }
                let root = Int(find(provisional[i]))
                if compact[root] < 0 {
                    compact[root] = Int32(sizes.count)
                    sizes.append(0)
                    border.append(false)
                }
                let c = Int(compact[root])
                labels[i] = Int32(c)
                sizes[c] += 1
                if x == 0 || y == 0 || x == width - 1 || y == height - 1 { border[c] = true }
            }
        }
        self.labels = labels
        self.sizes = sizes
        touchesBorder = border
    }
}
