import Foundation
import Geometry
import MultiView
import Torch

/// `caa`: one correspondence-aware attention block in MVDiffusion's key names.
enum MultiViewComponents {
    static let runners: [String: ParityRunner] = ["caa": caa]

    /// args `image_size`, `neighbours` ("ring" or "all"); inputs `hidden_states` [V, C, h, w], `K`, `R`
    /// [V, 3, 3] → `hidden_states` [V, C, h, w].
    static func caa(_ c: ParityCase) throws -> [String: Tensor] {
        let x = try c.input("hidden_states")
        let mode = try c.args.has("neighbours") ? c.args.string("neighbours") : "ring"
        guard let neighbours = NeighbourSet(rawValue: mode) else {
            throw ParityError("\(c.name): neighbours must be ring or all, found \(mode)")
        }
        let weights = try SafetensorsFile(url: c.model).loadAll()
        let block = try CAABlock(channels: x.size(1))
        try block.loadStateDict(weights)
        let layout = try ViewLayout(K: c.input("K"), R: c.input("R"), resolution: c.args.int("image_size"))
        let geometry = try LevelGeometry(layout: layout, height: x.size(2), width: x.size(3), neighbours: neighbours)
        return ["hidden_states": try withNoGrad { try block(x, geometry: geometry) }]
    }
}
