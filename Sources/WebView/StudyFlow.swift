import Experiments
import Foundation

/// A rater's way through a blind study (docs/web.md#rating-study): the study's panoramas in an order
/// of the rater's own (seeded by the rater id, so a reload shows the same next panorama), the first
/// `perRater` of them, each answered once with an integer 1–10.
public struct StudyFlow: Sendable {
    public let registry: RunRegistry
    public static let raterCookie = "backdrop_rater"

    public init(registry: RunRegistry) { self.registry = registry }

    /// Why a request changes nothing: its HTTP status and a line for the rater.
    public struct Refusal: Error, Equatable {
        public var status: Int
        public var message: String
    }

    /// A rater id as the cookie must carry it: 32 lowercase hex digits (made by `newRater`).
    public static func isRaterID(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    public static func newRater() -> String { randomHex(bytes: 16) }

    /// The panoramas `rater` is shown, in the rater's order.
    public func sequence(_ study: RunRegistry.Study, rater: String) throws -> [RunRegistry.StudyPanorama] {
        var panoramas = try registry.panoramas(ofStudy: study.id)
        var generator = SplitMix64(seed: fnv1a(rater + "/" + study.name))
        panoramas.shuffle(using: &generator)
        return Array(panoramas.prefix(study.perRater ?? panoramas.count))
    }

    public struct Next {
        public var panorama: RunRegistry.StudyPanorama?
        public var answered: Int
        public var total: Int
        public var token: String
    }

    /// What `rater` rates next (nil when done), with the rater's form token.
    public func next(_ study: RunRegistry.Study, rater: String) throws -> Next {
        let sequence = try sequence(study, rater: rater)
        let answered = Set(try registry.answers(ofStudy: study.id, rater: rater).map(\.panoramaId))
        let token = try registry.raterToken(studyID: study.id, rater: rater)
        return Next(panorama: sequence.first { !answered.contains($0.id) },
                    answered: sequence.filter { answered.contains($0.id) }.count, total: sequence.count, token: token)
    }

    /// Validates and records one answer from a submitted form; a refusal changes nothing.
    public func submit(_ study: RunRegistry.Study, rater: String?, form: [String: String]) throws -> Result<Void, Refusal> {
        guard let rater, Self.isRaterID(rater) else { return .failure(Refusal(status: 403, message: "no rater cookie: open the study page first")) }
        guard let token = form["token"], try registry.checkRaterToken(studyID: study.id, rater: rater, token: token) else {
            return .failure(Refusal(status: 403, message: "missing or wrong form token: reload the study page"))
        }
        // Only "1" … "10": no signs, spaces, leading zeros or fractions.
        guard let text = form["score"], let score = Int(text), (1...10).contains(score), String(score) == text else {
            return .failure(Refusal(status: 400, message: "the score must be an integer from 1 to 10"))
        }
        guard let key = form["panorama"], let panorama = try sequence(study, rater: rater).first(where: { $0.key == key }) else {
            return .failure(Refusal(status: 400, message: "that panorama is not one of this study's for you"))
        }
        switch try registry.recordAnswer(studyID: study.id, panoramaID: panorama.id, rater: rater, score: score) {
        case .recorded: return .success(())
        case .alreadyAnswered: return .failure(Refusal(status: 409, message: "you already rated this panorama; the first answer stands"))
        }
    }

    /// `application/x-www-form-urlencoded` fields; a repeated field is refused (ambiguous), as is
    /// anything that is not valid percent-encoded UTF-8.
    public static func parseForm(_ body: String) -> [String: String]? {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String? { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let name = decode(parts[0]), let value = parts.count > 1 ? decode(parts[1]) : "" else { return nil }
            guard fields[name] == nil else { return nil }
            fields[name] = value
        }
        return fields
    }
}

/// A small seeded generator (SplitMix64) for the raters' orders.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// FNV-1a of the text's UTF-8: a stable seed (Swift's `hashValue` changes between processes).
func fnv1a(_ text: String) -> UInt64 {
    text.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
}
