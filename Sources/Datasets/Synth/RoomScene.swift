import Foundation
import Torch

// A procedurally built indoor room: a box with textured walls, floor and ceiling, windows, doors,
// paintings and rugs as rectangles on those surfaces, and furniture as axis-aligned boxes. Every
// choice comes from a seeded vocabulary, so a (seed, index) pair always gives the same room.
//
// World axes are the project's (x right, y DOWN, z forward at yaw 0); the camera sits at the
// origin, so the floor is at y = +eyeHeight and the ceiling at y = eyeHeight − height.

/// What a surface looks like: colours and a procedural pattern.
struct Material {
    enum Pattern: Int, CaseIterable {
        case plain, planks, tiles, stripes, bricks, carpet, panels, books
    }

    var base: [Double]
    /// The pattern's second colour (seams, grout, mortar, stripes).
    var secondary: [Double]
    var pattern: Pattern
    /// Pattern scale in metres (plank width, tile size, stripe width, brick length, panel width).
    var scale: Double
}

/// Something a caption can name.
struct SceneObject {
    enum Kind: String {
        case wall, floor, ceiling, window, door, painting, rug, furniture
    }

    var kind: Kind
    /// Caption phrase with article, e.g. "a white wall", "a large window", "a grey fabric sofa".
    var phrase: String
}

/// A rectangle on one room surface (window, door, painting on a wall; rug on the floor).
struct Decal {
    enum Kind { case window, door, painting, rug }
    var kind: Kind
    /// Room surface index (`RoomScene.Surface`).
    var surface: Int
    /// Extent along the surface's first coordinate (see `RoomScene.surfaceCoordinates`).
    var u: ClosedRange<Double>
    /// Extent along the second coordinate (height above the floor for walls, z for the floor).
    var v: ClosedRange<Double>
    var material: Int
    var object: Int
    /// Painting colours / rug pattern parameters.
    var parameters: [Double] = [0, 0, 0, 0]
}

/// An axis-aligned furniture part.
struct Box {
    var min: [Double]
    var max: [Double]
    var material: Int
    var object: Int
}

struct RoomScene {
    /// Room surfaces, in id order.
    enum Surface: Int, CaseIterable { case floor = 0, ceiling, front, right, back, left }

    enum RoomType: String, CaseIterable { case bedroom, livingRoom = "living room", office, diningRoom = "dining room", kitchen }

    var roomType: RoomType
    /// Room bounds around the camera: [xMin, xMax], [yCeiling, yFloor], [zMin, zMax].
    var xRange: ClosedRange<Double>
    var yRange: ClosedRange<Double>
    var zRange: ClosedRange<Double>
    /// Materials: 0…5 are the room surfaces (`Surface` order); decals and boxes follow.
    var materials: [Material]
    /// Objects: 0…5 are the room surfaces; the rest are decals and furniture.
    var objects: [SceneObject]
    var decals: [Decal]
    var boxes: [Box]
    /// Point light position and colour (a ceiling lamp), ambient level.
    var light: [Double]
    var lightColor: [Double]
    var ambient: Double
    /// Words for the lighting, used in whole-room captions.
    var lightingPhrase: String
    /// The sky seen through windows: zenith and horizon colours, ground colour.
    var sky: [[Double]]

    var height: Double { yRange.upperBound - yRange.lowerBound }
    var floorY: Double { yRange.upperBound }

    /// Which wall surfaces run along which axis: walls at ±z use x as their first coordinate, walls
    /// at ±x use z; the second coordinate is the height above the floor. Floor and ceiling use (x, z).
    static func isWall(_ surface: Int) -> Bool { surface >= 2 }
}

// MARK: - Generation

/// The seeded vocabulary and layout rules.
enum RoomGenerator {
    struct Named { let name: String; let rgb: [Double] }

    static let wallPaints: [Named] = [
        Named(name: "white", rgb: [0.92, 0.91, 0.88]), Named(name: "cream", rgb: [0.93, 0.88, 0.77]),
        Named(name: "beige", rgb: [0.84, 0.77, 0.65]), Named(name: "light grey", rgb: [0.78, 0.78, 0.77]),
        Named(name: "pale blue", rgb: [0.71, 0.79, 0.86]), Named(name: "sage green", rgb: [0.69, 0.76, 0.64]),
        Named(name: "terracotta", rgb: [0.76, 0.50, 0.39]), Named(name: "pale yellow", rgb: [0.93, 0.87, 0.64]),
        Named(name: "dark blue", rgb: [0.24, 0.31, 0.45]), Named(name: "pink", rgb: [0.89, 0.74, 0.74]),
    ]
    static let floors: [(Named, Material.Pattern, [Double], Double)] = [
        (Named(name: "light wooden", rgb: [0.76, 0.60, 0.42]), .planks, [0.55, 0.40, 0.26], 0.16),
        (Named(name: "dark wooden", rgb: [0.42, 0.28, 0.18]), .planks, [0.25, 0.16, 0.10], 0.14),
        (Named(name: "grey tiled", rgb: [0.68, 0.68, 0.67]), .tiles, [0.45, 0.45, 0.44], 0.5),
        (Named(name: "white tiled", rgb: [0.90, 0.89, 0.86]), .tiles, [0.62, 0.62, 0.60], 0.4),
        (Named(name: "beige carpeted", rgb: [0.74, 0.67, 0.55]), .carpet, [0.60, 0.54, 0.44], 0.1),
        (Named(name: "grey carpeted", rgb: [0.50, 0.50, 0.52]), .carpet, [0.38, 0.38, 0.40], 0.1),
        (Named(name: "concrete", rgb: [0.60, 0.60, 0.58]), .carpet, [0.50, 0.50, 0.48], 0.3),
    ]
    static let woods: [Named] = [
        Named(name: "wooden", rgb: [0.55, 0.38, 0.22]), Named(name: "oak", rgb: [0.70, 0.54, 0.36]),
        Named(name: "walnut", rgb: [0.36, 0.24, 0.15]),
    ]
    static let fabrics: [Named] = [
        Named(name: "grey", rgb: [0.45, 0.46, 0.48]), Named(name: "blue", rgb: [0.22, 0.32, 0.52]),
        Named(name: "green", rgb: [0.25, 0.42, 0.30]), Named(name: "beige", rgb: [0.78, 0.71, 0.58]),
        Named(name: "brown leather", rgb: [0.42, 0.25, 0.15]), Named(name: "mustard", rgb: [0.80, 0.62, 0.20]),
        Named(name: "white", rgb: [0.90, 0.90, 0.88]), Named(name: "black", rgb: [0.12, 0.12, 0.13]),
    ]
    static let lights: [(String, [Double], Double)] = [
        ("warm light", [1.0, 0.86, 0.68], 0.35), ("cool daylight", [0.92, 0.96, 1.0], 0.45),
        ("soft light", [1.0, 0.95, 0.88], 0.5), ("bright light", [1.0, 0.98, 0.95], 0.42),
        ("dim evening light", [1.0, 0.78, 0.55], 0.22),
    ]

    static func pick<T>(_ items: [T], _ g: inout SplitMix64) -> T { items[Int(g.next() % UInt64(items.count))] }
    static func uniform(_ range: ClosedRange<Double>, _ g: inout SplitMix64) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * g.unit()
    }
    static func article(_ words: String) -> String { "aeiou".contains(words.first ?? "x") ? "an \(words)" : "a \(words)" }
    static func jitter(_ rgb: [Double], _ amount: Double, _ g: inout SplitMix64) -> [Double] {
        rgb.map { min(1, max(0, $0 + amount * (2 * g.unit() - 1))) }
    }

    /// The room for panorama `index` of a dataset seeded with `seed`.
    static func make(seed: UInt64, index: Int) -> RoomScene {
        var g = SplitMix64(seed, 0x524F_4F4D, UInt64(index))
        let type = pick(RoomScene.RoomType.allCases, &g)
        let width = uniform(3.4...6.0, &g), depth = uniform(3.4...6.0, &g), height = uniform(2.5...3.1, &g)
        let eye = uniform(1.35...1.6, &g)
        let ox = uniform(-0.15...0.15, &g) * width, oz = uniform(-0.15...0.15, &g) * depth
        let xRange = (-width / 2 - ox)...(width / 2 - ox)
        let zRange = (-depth / 2 - oz)...(depth / 2 - oz)
        let yRange = (eye - height)...eye

        var materials: [Material] = []
        var objects: [SceneObject] = []
        func add(_ material: Material, _ object: SceneObject?) -> (material: Int, object: Int) {
            materials.append(material)
            if let object { objects.append(object) }
            return (materials.count - 1, objects.count - 1)
        }

        // Floor and ceiling.
        let floor = pick(floors, &g)
        _ = add(Material(base: floor.0.rgb, secondary: floor.2, pattern: floor.1, scale: floor.3),
                SceneObject(kind: .floor, phrase: "a \(floor.0.name) floor"))
        _ = add(Material(base: [0.94, 0.94, 0.92], secondary: [0.86, 0.86, 0.84], pattern: .plain, scale: 1),
                SceneObject(kind: .ceiling, phrase: "a white ceiling"))
        // Walls: one paint for the room, sometimes an accent wall or a textured finish.
        let paint = pick(wallPaints, &g)
        let finishRoll = g.unit()
        for wall in 2..<6 {
            var name = paint.name, rgb = paint.rgb
            if wall == 2 + Int(g.next() % 4), g.unit() < 0.25 {
                let accent = pick(wallPaints, &g)
                (name, rgb) = (accent.name, accent.rgb)
            }
            let material: Material, phrase: String
            if finishRoll < 0.1 {
                material = Material(base: rgb, secondary: jitter(rgb.map { $0 * 0.8 }, 0.02, &g), pattern: .stripes, scale: 0.12)
                phrase = article("\(name) striped wall")
            } else if finishRoll < 0.2 {
                let brick = [0.62, 0.36, 0.27]
                material = Material(base: jitter(brick, 0.05, &g), secondary: [0.80, 0.78, 0.74], pattern: .bricks, scale: 0.25)
                phrase = "a red brick wall"
            } else if finishRoll < 0.28 {
                let wood = pick(woods, &g)
                material = Material(base: wood.rgb, secondary: wood.rgb.map { $0 * 0.7 }, pattern: .panels, scale: 0.3)
                phrase = article("\(wood.name) panelled wall")
            } else {
                material = Material(base: jitter(rgb, 0.015, &g), secondary: rgb.map { $0 * 0.94 }, pattern: .plain, scale: 1)
                phrase = article("\(name) wall")
            }
            _ = add(material, SceneObject(kind: .wall, phrase: phrase))
        }

        var decals: [Decal] = []
        var boxes: [Box] = []
        // Occupied spans along each wall (u ranges), so doors, windows and furniture do not collide.
        var doorSpans: [Int: [ClosedRange<Double>]] = [:]
        var lowSpans: [Int: [ClosedRange<Double>]] = [:]
        func wallExtent(_ wall: Int) -> ClosedRange<Double> { wall == 2 || wall == 4 ? xRange : zRange }
        func freeSpot(_ wall: Int, length: Double, avoiding spans: [ClosedRange<Double>]) -> ClosedRange<Double>? {
            let extent = wallExtent(wall)
            guard extent.upperBound - extent.lowerBound > length + 0.3 else { return nil }
            for _ in 0..<12 {
                let start = uniform((extent.lowerBound + 0.15)...(extent.upperBound - 0.15 - length), &g)
                let span = start...(start + length)
                if !spans.contains(where: { $0.overlaps((span.lowerBound - 0.1)...(span.upperBound + 0.1)) }) { return span }
            }
            return nil
        }

        // One or two doors.
        let doorCount = g.unit() < 0.7 ? 1 : 2
        for _ in 0..<doorCount {
            let wall = 2 + Int(g.next() % 4)
            guard let span = freeSpot(wall, length: uniform(0.82...0.95, &g), avoiding: doorSpans[wall, default: []]) else { continue }
            let (name, rgb): (String, [Double]) = {
                switch g.next() % 3 {
                case 0: let w = pick(woods, &g); return (w.name, w.rgb)
                case 1: return ("white", [0.93, 0.93, 0.91])
                default: return ("grey", [0.55, 0.56, 0.57])
                }
            }()
            let ids = add(Material(base: rgb, secondary: rgb.map { $0 * 0.78 }, pattern: .plain, scale: 1),
                          SceneObject(kind: .door, phrase: article("\(name) door")))
            decals.append(Decal(kind: .door, surface: wall, u: span, v: 0...2.05, material: ids.material, object: ids.object))
            doorSpans[wall, default: []].append(span)
            lowSpans[wall, default: []].append(span)
        }
        // Windows (kitchens and living rooms get more light).
        let windowCount = 1 + Int(g.next() % (type == .livingRoom || type == .kitchen ? 3 : 2))
        let frame = g.unit() < 0.7 ? [0.95, 0.95, 0.94] : [0.2, 0.2, 0.21]
        for _ in 0..<windowCount {
            let wall = 2 + Int(g.next() % 4)
            let length = uniform(0.7...2.0, &g)
            guard let span = freeSpot(wall, length: length, avoiding: doorSpans[wall, default: []]) else { continue }
            let bottom = uniform(0.75...1.0, &g), top = min(height - 0.25, bottom + uniform(1.1...1.5, &g))
            let size = length >= 1.3 ? "large window" : length < 0.9 ? "small window" : "window"
            let ids = add(Material(base: frame, secondary: frame, pattern: .plain, scale: 1),
                          SceneObject(kind: .window, phrase: "a \(size)"))
            decals.append(Decal(kind: .window, surface: wall, u: span, v: bottom...top, material: ids.material, object: ids.object))
            doorSpans[wall, default: []].append(span)  // keeps paintings and other windows away
        }
        // A painting on a free wall span.
        if g.unit() < 0.7 {
            let wall = 2 + Int(g.next() % 4)
            if let span = freeSpot(wall, length: uniform(0.6...1.2, &g), avoiding: doorSpans[wall, default: []]) {
                let bottom = uniform(1.3...1.6, &g)
                let style = g.unit() < 0.5 ? "an abstract painting" : "a framed painting"
                let ids = add(Material(base: [0.15, 0.12, 0.10], secondary: [0.75, 0.6, 0.3], pattern: .plain, scale: 1),
                              SceneObject(kind: .painting, phrase: style))
                decals.append(Decal(kind: .painting, surface: wall, u: span, v: bottom...(bottom + uniform(0.5...0.8, &g)),
                                    material: ids.material, object: ids.object,
                                    parameters: [uniform(2...7, &g), uniform(2...7, &g), uniform(0...6.3, &g), uniform(0...1, &g)]))
                doorSpans[wall, default: []].append(span)
            }
        }
        // A rug under the camera's side of the room.
        if g.unit() < 0.6 {
            let colour = pick(fabrics.filter { $0.name != "white" && $0.name != "black" }, &g)
            let w = uniform(1.4...2.4, &g), d = uniform(1.0...1.8, &g)
            let cx = uniform(-0.4...0.4, &g), cz = uniform(-0.4...0.4, &g)
            let ids = add(Material(base: colour.rgb, secondary: jitter(colour.rgb.map { $0 * 0.6 + 0.3 }, 0.05, &g),
                                   pattern: .plain, scale: 1),
                          SceneObject(kind: .rug, phrase: article("\(colour.name) rug")))
            decals.append(Decal(kind: .rug, surface: RoomScene.Surface.floor.rawValue, u: (cx - w / 2)...(cx + w / 2),
                                v: (cz - d / 2)...(cz + d / 2), material: ids.material, object: ids.object,
                                parameters: [uniform(0.08...0.18, &g), 0, 0, 0]))
        }

        // Furniture: boxes against walls, away from doors, never around the camera.
        func place(_ phrase: String, parts: [(along: Double, out: Double, bottom: Double, top: Double, offsetAlong: Double,
                                              offsetOut: Double, rgb: [Double], pattern: Material.Pattern)],
                   length: Double) {
            let wall = 2 + Int(g.next() % 4)
            guard let span = freeSpot(wall, length: length, avoiding: lowSpans[wall, default: []]) else { return }
            objects.append(SceneObject(kind: .furniture, phrase: phrase))
            let object = objects.count - 1
            var made: [Box] = []
            for part in parts {
                let a0 = span.lowerBound + part.offsetAlong, a1 = a0 + part.along
                // Distance from the wall inwards.
                let o0 = part.offsetOut, o1 = part.offsetOut + part.out
                let y0 = floorY(yRange) - part.top, y1 = floorY(yRange) - part.bottom
                var lo = [0.0, y0, 0.0], hi = [0.0, y1, 0.0]
                switch wall {
                case 2: (lo[0], hi[0], lo[2], hi[2]) = (a0, a1, zRange.upperBound - o1, zRange.upperBound - o0)
                case 4: (lo[0], hi[0], lo[2], hi[2]) = (a0, a1, zRange.lowerBound + o0, zRange.lowerBound + o1)
                case 3: (lo[2], hi[2], lo[0], hi[0]) = (a0, a1, xRange.upperBound - o1, xRange.upperBound - o0)
                default: (lo[2], hi[2], lo[0], hi[0]) = (a0, a1, xRange.lowerBound + o0, xRange.lowerBound + o1)
                }
                materials.append(Material(base: part.rgb, secondary: part.rgb.map { $0 * 0.75 }, pattern: part.pattern,
                                          scale: 0.12))
                made.append(Box(min: lo, max: hi, material: materials.count - 1, object: object))
            }
            // Keep a clear sphere of 0.35 m around the camera.
            let blocked = made.contains { b in (0..<3).allSatisfy { b.min[$0] - 0.35 < 0 && b.max[$0] + 0.35 > 0 } }
            if blocked { objects.removeLast(); materials.removeLast(made.count); return }
            boxes += made
            lowSpans[wall, default: []].append(span)
        }
        func floorY(_ y: ClosedRange<Double>) -> Double { y.upperBound }

        let wood = pick(woods, &g), fabric = pick(fabrics, &g)
        switch type {
        case .bedroom:
            let sheets = pick([("white", [0.92, 0.92, 0.9]), ("blue", [0.45, 0.55, 0.72]), ("grey", [0.62, 0.62, 0.64])], &g)
            let w = uniform(1.4...1.8, &g)
            place("\(article(wood.name)) bed with \(sheets.0) sheets", parts: [
                (w, 2.0, 0, 0.35, 0, 0, wood.rgb, .plain), (w - 0.1, 1.9, 0.35, 0.55, 0.05, 0.05, sheets.1, .carpet),
                (w, 0.08, 0, 1.05, 0, 0, wood.rgb, .panels),
            ], length: w)
            place(article("\(wood.name) nightstand"), parts: [(0.5, 0.4, 0, 0.55, 0, 0, wood.rgb, .panels)], length: 0.5)
            if g.unit() < 0.7 {
                place("a tall \(pick(["white", wood.name], &g)) wardrobe",
                      parts: [(1.2, 0.6, 0, 2.1, 0, 0, g.unit() < 0.5 ? [0.9, 0.9, 0.88] : wood.rgb, .panels)], length: 1.2)
            }
        case .livingRoom:
            let w = uniform(1.8...2.4, &g)
            place("\(article(fabric.name)) sofa", parts: [
                (w, 0.9, 0, 0.45, 0, 0, fabric.rgb, .carpet), (w, 0.25, 0.45, 0.85, 0, 0, fabric.rgb, .carpet),
            ], length: w)
            place("a low TV cabinet with a television", parts: [
                (1.6, 0.45, 0, 0.5, 0, 0, wood.rgb, .panels), (1.2, 0.06, 0.7, 1.4, 0.2, 0.1, [0.05, 0.05, 0.06], .plain),
            ], length: 1.6)
            if g.unit() < 0.6 {
                place("a bookshelf full of books", parts: [(1.0, 0.35, 0, 1.9, 0, 0, wood.rgb, .books)], length: 1.0)
            }
            if g.unit() < 0.5 {
                let chair = pick(fabrics, &g)
                place("\(article(chair.name)) armchair", parts: [
                    (0.85, 0.85, 0, 0.45, 0, 0.2, chair.rgb, .carpet), (0.85, 0.2, 0.45, 0.95, 0, 0.2, chair.rgb, .carpet),
                ], length: 0.85)
            }
        case .office:
            place("\(article(wood.name)) desk with a computer", parts: [
                (1.4, 0.7, 0.72, 0.76, 0, 0, wood.rgb, .plain), (0.45, 0.65, 0, 0.72, 0.95, 0.02, wood.rgb, .panels),
                (0.55, 0.04, 0.8, 1.15, 0.4, 0.2, [0.06, 0.06, 0.07], .plain),
            ], length: 1.4)
            place("a black office chair", parts: [(0.55, 0.55, 0.0, 0.5, 0, 0.8, [0.1, 0.1, 0.11], .carpet)], length: 0.55)
            place("a bookshelf full of books", parts: [(1.2, 0.35, 0, 2.0, 0, 0, wood.rgb, .books)], length: 1.2)
            if g.unit() < 0.5 {
                place("a grey filing cabinet", parts: [(0.5, 0.6, 0, 1.2, 0, 0, [0.55, 0.56, 0.58], .panels)], length: 0.5)
            }
        case .diningRoom:
            place("\(article(wood.name)) dining table with chairs", parts: [
                (1.8, 0.9, 0.72, 0.77, 0, 0.5, wood.rgb, .plain), (0.3, 0.5, 0, 0.72, 0.75, 0.7, wood.rgb, .plain),
                (0.45, 0.45, 0, 0.95, 0.2, 0.05, fabric.rgb, .carpet), (0.45, 0.45, 0, 0.95, 1.15, 0.05, fabric.rgb, .carpet),
            ], length: 1.8)
            place(article("\(wood.name) sideboard"), parts: [(1.6, 0.45, 0, 0.85, 0, 0, wood.rgb, .panels)], length: 1.6)
        case .kitchen:
            let counter = pick([("white", [0.9, 0.9, 0.88]), ("grey", [0.5, 0.52, 0.54]), (wood.name, wood.rgb)], &g)
            let w = uniform(2.2...3.0, &g)
            place("\(counter.0) kitchen cabinets with a countertop", parts: [
                (w, 0.6, 0, 0.88, 0, 0, counter.1, .panels), (w, 0.62, 0.88, 0.92, 0, 0, [0.2, 0.2, 0.2], .plain),
                (w, 0.35, 1.45, 2.15, 0, 0, counter.1, .panels),
            ], length: w)
            place("a stainless steel fridge", parts: [(0.7, 0.65, 0, 1.85, 0, 0, [0.78, 0.79, 0.8], .plain)], length: 0.7)
            if g.unit() < 0.6 {
                place("a small \(wood.name) table", parts: [
                    (1.0, 0.7, 0.72, 0.76, 0, 0.6, wood.rgb, .plain), (0.12, 0.12, 0, 0.72, 0.44, 0.89, wood.rgb, .plain),
                ], length: 1.0)
            }
        }

        let light = pick(lights, &g)
        let lightPosition = [uniform(-0.5...0.5, &g), yRange.lowerBound + 0.25, uniform(-0.5...0.5, &g)]
        let sky = [jitter([0.45, 0.62, 0.88], 0.06, &g), jitter([0.85, 0.9, 0.95], 0.03, &g), jitter([0.36, 0.48, 0.3], 0.06, &g)]
        return RoomScene(roomType: type, xRange: xRange, yRange: yRange, zRange: zRange, materials: materials,
                         objects: objects, decals: decals, boxes: boxes, light: lightPosition, lightColor: light.1,
                         ambient: light.2, lightingPhrase: light.0, sky: sky)
    }
}
