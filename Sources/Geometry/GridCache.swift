import Foundation
import Torch

/// Precomputed coordinate grids (camera rays per (FOV, size), equirectangular directions per size),
/// kept per dtype and device so that per-frame work is only a rotation and a resample.
///
/// The cached tensors are shared: treat them as read-only (no in-place ops on what the Geometry
/// functions return from here).
final class GridCache: @unchecked Sendable {
    static let shared = GridCache()

    private struct Key: Hashable {
        let kind: String
        let values: [Double]
        let dtype: DType
        let device: Device
    }

    private let lock = NSLock()
    private var entries: [Key: Tensor] = [:]
    private var order: [Key] = []
    /// Enough for a training loader, a viewport and a stitcher at a few sizes each.
    private let capacity = 32

    func grid(_ kind: String, _ values: [Double], dtype: DType, device: Device,
              make: () throws -> Tensor) throws -> Tensor {
        let key = Key(kind: kind, values: values, dtype: dtype, device: device)
        lock.lock()
        if let hit = entries[key] {
            lock.unlock()
            return hit
        }
        lock.unlock()
        // Built outside the lock: two threads may both build a grid once; either result is correct.
        let made = try make().to(dtype: dtype, device: device).contiguous()
        lock.lock()
        defer { lock.unlock() }
        if entries[key] == nil {
            entries[key] = made
            order.append(key)
            if order.count > capacity { entries[order.removeFirst()] = nil }
        }
        return entries[key] ?? made
    }
}
