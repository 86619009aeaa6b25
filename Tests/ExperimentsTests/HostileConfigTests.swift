import BackdropTestSupport
import Foundation
import XCTest

@testable import Experiments

/// Run configs are untrusted input (docs/security.md): their shape is bounded before any tree is
/// built, and what YAML forbids or a path cannot mean is refused with the file and the key.
final class HostileConfigTests: XCTestCase {
    let minimal = """
        model: {base: models/sd2}
        dataset: {root: datasets/mp3d_skybox}
        """

    /// "Billion laughs": nine levels of ten aliases each, under 1 KB, would expand to 10⁹ nodes.
    func testAliasExpansionIsBoundedBeforeTheTreeIsBuilt() {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            let previous = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
            yaml += "a\(level): &a\(level) [\(previous)]\n"
        }
        XCTAssertLessThan(yaml.utf8.count, 1024)
        let before = TestSupport.residentMemory()
        let start = Date()
        assertConfigError(yaml + minimal, key: "a4", contains: "expands to more than 100000 nodes")
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertLessThan(TestSupport.residentMemory() - before, 64 << 20)
    }

    /// 10,000 nested flow sequences (20 KB) crashed the recursive tree builder with a stack overflow.
    func testDeepNestingIsRefusedNotACrash() {
        let deep = "model: " + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        assertConfigError(deep, key: "model", contains: "nested more than 64 levels deep")
        let block = (0..<100).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1"
        assertConfigError(block, key: (0..<64).map { "k\($0)" }.joined(separator: "."), contains: "nested more than 64")
    }

    /// YAML forbids a key twice in one mapping; the tree builder silently kept the last one.
    func testDuplicateKeysAreRefusedWithTheirLine() {
        assertConfigError(minimal + "\noptimizer: {lr: 1.0e-4}\noptimizer: {lr: 2.0e-4}", key: "optimizer",
                      contains: "the key 'optimizer' appears twice in one mapping (line 4)")
        assertConfigError(minimal + "\noptimizer:\n  lr: 1.0e-4\n  weight_decay: 0\n  lr: 2.0e-4", key: "optimizer.lr",
                      contains: "appears twice")
        // The same key in different mappings is fine.
        XCTAssertNoThrow(try RunConfig.parse(yaml: minimal + "\noptimizer: {lr: 1.0e-4}\nschedule: {kind: cosine}",
                                             file: "ok.yaml"))
    }

    /// A sequence, mapping or alias as a key stopped Yams' tree builder with a trap (make fuzz).
    func testKeysMustBeText() {
        assertConfigError("? [a, b]\n: c\n" + minimal, key: "", contains: "a mapping key must be text, not a sequence")
        assertConfigError(minimal + "\nx: &x {a: 1}\n*x : 2", key: "x", contains: "not an alias")
        assertConfigError("optimizer: {{lr: 1}: 2}\n" + minimal, key: "optimizer", contains: "not a mapping")
    }

    /// An unset variable became "" and the error later spoke of a missing model at the wrong path.
    func testUnsetVariablesInPathsAreNamed() {
        let yaml = "model:\n  base: ${BACKDROP_TEST_UNSET_VARIABLE}/sd2\ndataset: {root: datasets/mp3d_skybox}"
        assertConfigError(yaml, key: "model.base", contains: "$BACKDROP_TEST_UNSET_VARIABLE, which is not set")
        // Backdrop's own variables have defaults.
        XCTAssertNoThrow(try RunConfig.parse(yaml: "model:\n  base: ${BACKDROP_CACHE}/sd\ndataset: {root: d}", file: "ok.yaml"))
    }
}
