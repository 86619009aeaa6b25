import Foundation
import XCTest

@testable import Experiments

/// The optional `evaluation` section of a run config (`backdrop eval` reads it from the registry).
final class EvaluationConfigTests: XCTestCase {
    let base = "model: {base: /models/sd}\ndataset: {root: rooms}\n"

    func testEvaluationSectionIsReadAndOptional() throws {
        let configured = try RunConfig.parse(yaml: base + "evaluation: {clip_model: /models/clip, inception_weights: inc.pth}\n",
                                             file: "a.yaml")
        XCTAssertEqual(configured.evaluation?.clipModel, "/models/clip")
        XCTAssertEqual(configured.evaluation?.inceptionWeights, "inc.pth")
        XCTAssertEqual(try RunConfig.parse(yaml: configured.json(), file: "registry"), configured,
                       "round trip through the registry's JSON")

        let plain = try RunConfig.parse(yaml: base, file: "b.yaml")
        XCTAssertNil(plain.evaluation)
        XCTAssertFalse(try plain.json().contains("evaluation"), "configs without the section keep their JSON (and cache keys)")
    }

    func testUnknownEvaluationKeyNamesFileAndKey() {
        XCTAssertThrowsError(try RunConfig.parse(yaml: base + "evaluation: {clip_modle: x}\n", file: "c.yaml")) {
            let error = $0 as? ConfigError
            XCTAssertEqual(error?.file, "c.yaml")
            XCTAssertEqual(error?.key, "evaluation.clip_modle")
            XCTAssertTrue(error?.message.contains("clip_model") ?? false, "\(String(describing: error))")
        }
    }
}
