import Foundation

/// Captions written from what a view actually shows: an object-id buffer of the view says which
/// objects are visible, how much of the view each covers and where (left, centre, right).
enum RoomCaptions {
    /// Objects covering less than this fraction of a view are not mentioned.
    static let minimumCoverage = 0.015

    /// "a bedroom with a white wall, a large window on the left and a wooden door".
    static func view(_ scene: RoomScene, objects ids: [Int64], width: Int) -> String {
        let total = Double(ids.count)
        var count = [Int: Int](), columnSum = [Int: Double]()
        for (i, id) in ids.enumerated() {
            count[Int(id), default: 0] += 1
            columnSum[Int(id), default: 0] += Double(i % width)
        }
        func coverage(_ id: Int) -> Double { Double(count[id] ?? 0) / total }
        func position(_ id: Int) -> String {
            let centre = (columnSum[id] ?? 0) / Double(max(count[id] ?? 1, 1)) / Double(width - 1)
            return centre < 0.35 ? " on the left" : centre > 0.65 ? " on the right" : " in the middle"
        }
        let visible = count.keys.filter { coverage($0) >= minimumCoverage && scene.objects.indices.contains($0) }
        let wall = visible.filter { scene.objects[$0].kind == .wall }.max { coverage($0) < coverage($1) }
        let features = visible.filter { [.window, .door, .painting, .rug, .furniture].contains(scene.objects[$0].kind) }
            .sorted { coverage($0) > coverage($1) || (coverage($0) == coverage($1) && $0 < $1) }
        var phrases: [String] = []
        if let wall { phrases.append(scene.objects[wall].phrase) }
        for (rank, id) in features.prefix(3).enumerated() {
            // Positions for the two most prominent objects only, to keep captions short.
            phrases.append(scene.objects[id].phrase + (rank < 2 ? position(id) : ""))
        }
        let floor = RoomScene.Surface.floor.rawValue
        if phrases.count < 4, coverage(floor) >= 0.2 { phrases.append(scene.objects[floor].phrase) }
        let room = RoomGenerator.article(scene.roomType.rawValue)
        return phrases.isEmpty ? room : "\(room) with " + join(phrases)
    }

    /// The whole room, for PanFusion's stitched caption: "a living room with beige walls, two
    /// windows, a white door, a grey sofa and a light wooden floor, in warm light".
    static func room(_ scene: RoomScene, visibleObjects: Set<Int>) -> String {
        var phrases: [String] = []
        let walls = scene.objects.filter { $0.kind == .wall }.map(\.phrase)
        if let common = walls.max(by: { a, b in walls.filter { $0 == a }.count < walls.filter { $0 == b }.count }) {
            // "a white wall" → "white walls"
            let words = common.split(separator: " ").dropFirst()
            phrases.append(words.joined(separator: " ").replacingOccurrences(of: "wall", with: "walls"))
        }
        let ids = visibleObjects.sorted()
        let windows = ids.filter { scene.objects[$0].kind == .window }.count
        if windows > 0 { phrases.append(windows == 1 ? "a window" : "\(number(windows)) windows") }
        for id in ids where [.door, .furniture, .painting, .rug].contains(scene.objects[id].kind) {
            phrases.append(scene.objects[id].phrase)
        }
        phrases.append(scene.objects[RoomScene.Surface.floor.rawValue].phrase)
        return RoomGenerator.article(scene.roomType.rawValue) + " with " + join(phrases) + ", in \(scene.lightingPhrase)"
    }

    static func join(_ items: [String]) -> String {
        switch items.count {
        case 0: return ""
        case 1: return items[0]
        default: return items.dropLast().joined(separator: ", ") + " and " + (items.last ?? "")
        }
    }

    private static func number(_ n: Int) -> String {
        ["zero", "one", "two", "three", "four", "five", "six"].indices.contains(n)
            ? ["zero", "one", "two", "three", "four", "five", "six"][n] : "\(n)"
    }
}
