import Foundation
import Torch
import ZIPFoundation

/// CLIP's byte-level BPE tokenizer, giving the ids of transformers 4.40.2's (slow) `CLIPTokenizer`
/// as the reference environment runs it.
///
/// That environment has no `ftfy`, so transformers cleans text with its BERT `BasicTokenizer`
/// (`strip_accents=False, do_split_on_punc=False`), not with OpenAI's ftfy + `whitespace_clean`;
/// this type reproduces that path:
/// 1. added tokens (bos, eos, unk, pad and any others) are cut out of the raw text first, case
///    sensitively; SD2's pad token "!" is one of them, so every "!" of a prompt becomes id 0;
/// 2. each remaining piece: NUL, U+FFFD and control/format/unassigned characters (category C*,
///    Unicode 14 as in Python 3.11's `unicodedata`) dropped, whitespace → " ", spaces around CJK
///    ideographs, NFC, split on whitespace, each word lowercased as Python's `str.lower` (with the
///    final-sigma rule), words joined by single spaces;
/// 3. CLIP's pattern `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`
///    (case-insensitive) splits the text; each piece's UTF-8 bytes are mapped to printable
///    characters and merged by BPE ranks, the last symbol carrying "</w>";
/// 4. `<|startoftext|>` … `<|endoftext|>`, truncated to `maxLength` and padded with the pad token.
public final class CLIPTokenizer: @unchecked Sendable {
    public let vocabulary: [String: Int]
    /// Tokens matched in the raw text before any clean-up, with their ids (content → id).
    public let addedTokens: [String: Int]
    public let bosToken: String, eosToken: String, padToken: String, unkToken: String
    public let bosTokenId: Int, eosTokenId: Int, padTokenId: Int, unkTokenId: Int
    /// Sequence length after truncation and padding (`model_max_length`, 77 for CLIP).
    public let maxLength: Int

    private let ranks: [Pair: Int]
    private let addedTokenOptions: [String: (lstrip: Bool, rstrip: Bool)]
    private var cache: [String: [String]]
    private let lock = NSLock()

    struct Pair: Hashable {
        let first: String, second: String
    }

    // MARK: Loading

    /// A transformers tokenizer folder: `vocab.json`, `merges.txt`, and optionally
    /// `tokenizer_config.json`, `special_tokens_map.json`, `added_tokens.json`.
    public convenience init(directory: URL) throws {
        let vocabURL = directory.appendingPathComponent("vocab.json")
        let mergesURL = directory.appendingPathComponent("merges.txt")
        let vocabData: Data
        do { vocabData = try Data(contentsOf: vocabURL) } catch {
            throw LoadingError(file: vocabURL.path, "cannot read: \(failureReason(error))")
        }
        let vocabulary = try ConfigFile.decode([String: Int].self, from: vocabData, file: vocabURL.path)
        let mergesText: String
        do { mergesText = try String(contentsOf: mergesURL, encoding: .utf8) } catch {
            throw LoadingError(file: mergesURL.path, "cannot read: \(failureReason(error))")
        }
        // transformers drops the "#version" line and reads at most 49152 − 256 − 2 merges.
        let lines = mergesText.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "\n")
        let merges = try CLIPTokenizer.parseMerges(lines.dropFirst().prefix(49152 - 256 - 2), file: mergesURL.path)

        var specials = SpecialTokens()
        var added: [(content: String, id: Int?, lstrip: Bool, rstrip: Bool)] = []
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        var maxLength = 77
        if FileManager.default.fileExists(atPath: configURL.path) {
            let config = try ConfigFile.object(from: configURL)
            try specials.read(config, file: configURL.path)
            if let value = config["model_max_length"] {
                guard let number = value as? NSNumber, number.doubleValue >= 3 else {
                    throw LoadingError(file: configURL.path, key: "model_max_length", "expected an integer ≥ 3, found \(value)")
                }
                // Tokenizers saved without a limit store 1e30; CLIP text encoders have 77 positions.
                maxLength = number.doubleValue > 1e9 ? 77 : number.intValue
            }
            if let decoder = config["added_tokens_decoder"] as? [String: Any] {
                for (idText, value) in decoder {
                    guard let id = Int(idText), let token = AddedToken(value) else {
                        throw LoadingError(file: configURL.path, key: "added_tokens_decoder.\(idText)",
                                           "expected {\"content\": String, …} under an integer id")
                    }
                    added.append((token.content, id, token.lstrip, token.rstrip))
                }
            }
        }
        let mapURL = directory.appendingPathComponent("special_tokens_map.json")
        if FileManager.default.fileExists(atPath: mapURL.path) {
            // transformers lets special_tokens_map.json override tokenizer_config.json.
            try specials.read(try ConfigFile.object(from: mapURL), file: mapURL.path)
        }
        let addedURL = directory.appendingPathComponent("added_tokens.json")
        if FileManager.default.fileExists(atPath: addedURL.path) {
            let map = try ConfigFile.decode([String: Int].self, from: try Data(contentsOf: addedURL), file: addedURL.path)
            for (content, id) in map { added.append((content, id, false, false)) }
        }
        try self.init(vocabulary: vocabulary, merges: merges, specials: specials, added: added, maxLength: maxLength,
                      file: directory.path)
    }

    /// OpenAI's `bpe_simple_vocab_16e6.txt.gz` (or its gunzipped text): the vocabulary is built
    /// as OpenAI's `SimpleTokenizer` and transformers' converted `vocab.json` do (256 byte symbols,
    /// the same with "</w>", one token per merge, then the two special tokens).
    /// SD2's tokenizer pads with "!"; SD1's with `<|endoftext|>`.
    public convenience init(bpeVocabulary url: URL, padToken: String = "<|endoftext|>", maxLength: Int = 77) throws {
        let raw: Data
        do { raw = try Data(contentsOf: url) } catch {
            throw LoadingError(file: url.path, "cannot read: \(failureReason(error))")
        }
        let data = raw.starts(with: [0x1F, 0x8B]) ? try Gzip.decompress(raw, file: url.path) : raw
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.components(separatedBy: "\n")
        let merges = try CLIPTokenizer.parseMerges(lines.dropFirst().prefix(49152 - 256 - 2), file: url.path)
        // OpenAI's order: `bytes_to_unicode().values()`, printable bytes first, then the others.
        let printable = byteEncoder.indices.filter { byteEncoder[$0].value == UInt32($0) }
        let others = byteEncoder.indices.filter { byteEncoder[$0].value != UInt32($0) }
        let symbols = (printable + others).map { String(byteEncoder[$0]) }
        var tokens = symbols + symbols.map { $0 + "</w>" }
        tokens += merges.map { $0.first + $0.second }
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        var vocabulary: [String: Int] = [:]
        for (id, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
        var specials = SpecialTokens()
        specials.pad = padToken
        try self.init(vocabulary: vocabulary, merges: merges, specials: specials, added: [], maxLength: maxLength,
                      file: url.path)
    }

    private init(vocabulary: [String: Int], merges: [Pair], specials: SpecialTokens,
                 added: [(content: String, id: Int?, lstrip: Bool, rstrip: Bool)], maxLength: Int, file: String) throws {
        guard maxLength >= 2 else { throw LoadingError(file: file, key: "model_max_length", "must be at least 2") }
        self.vocabulary = vocabulary
        self.maxLength = maxLength
        var ranks: [Pair: Int] = [:]
        for (rank, pair) in merges.enumerated() where ranks[pair] == nil { ranks[pair] = rank }
        self.ranks = ranks
        (bosToken, eosToken, padToken, unkToken) = (specials.bos, specials.eos, specials.pad, specials.unk)

        // Added tokens: those listed with ids, then every special token (its id from the vocabulary).
        var addedTokens: [String: Int] = [:]
        var options: [String: (lstrip: Bool, rstrip: Bool)] = [:]
        for token in added {
            guard let id = token.id ?? vocabulary[token.content] else { continue }
            addedTokens[token.content] = id
            options[token.content] = (token.lstrip, token.rstrip)
        }
        for (key, content) in [("bos_token", specials.bos), ("eos_token", specials.eos), ("unk_token", specials.unk),
                               ("pad_token", specials.pad)] + specials.additional.map({ ("additional_special_tokens", $0) })
        where addedTokens[content] == nil {
            guard let id = vocabulary[content] else {
                throw LoadingError(file: file, key: key, "token '\(content)' is not in the vocabulary")
            }
            addedTokens[content] = id
            options[content] = specials.options[content] ?? (false, false)
        }
        self.addedTokens = addedTokens
        addedTokenOptions = options
        func id(_ token: String) -> Int { addedTokens[token] ?? vocabulary[token] ?? 0 }
        (bosTokenId, eosTokenId, padTokenId, unkTokenId) = (id(specials.bos), id(specials.eos), id(specials.pad),
                                                          id(specials.unk))
        cache = ["<|startoftext|>": ["<|startoftext|>"], "<|endoftext|>": ["<|endoftext|>"]]
    }

    private static func parseMerges<S: Sequence>(_ lines: S, file: String) throws -> [Pair] where S.Element == String {
        var merges: [Pair] = []
        for (index, line) in lines.enumerated() {
            // Python's str.split(): runs of whitespace, none at the ends.
            let parts = line.split(whereSeparator: { $0.isWhitespace })
            guard parts.count == 2 else {
                if parts.isEmpty { continue }
                throw LoadingError(file: file, key: "line \(index + 2)", "expected two symbols, found '\(line)'")
            }
            merges.append(Pair(first: String(parts[0]), second: String(parts[1])))
        }
        return merges
    }

    // MARK: Encoding

    /// `[bos] + ids + [eos]`, truncated to `maxLength` (the end token is kept) and padded with the
    /// pad token up to `maxLength` unless `padding` is false — `tokenizer(prompt,
    /// padding="max_length", max_length=77, truncation=True)` as the diffusers pipelines call it.
    public func encode(_ text: String, padding: Bool = true) -> [Int] {
        var ids = tokenIds(text)
        if ids.count > maxLength - 2 { ids.removeLast(ids.count - (maxLength - 2)) }
        var result = [bosTokenId] + ids + [eosTokenId]
        if padding { result += Array(repeating: padTokenId, count: maxLength - result.count) }
        return result
    }

    /// The ids of a batch of prompts as an int64 tensor `[N, maxLength]`.
    public func callAsFunction(_ prompts: [String]) throws -> Tensor {
        let rows = prompts.map { encode($0).map(Int64.init) }
        return try Tensor(Array(rows.joined()), shape: [prompts.count, maxLength])
    }

    /// The ids of the text alone: no special tokens, no truncation.
    public func tokenIds(_ text: String) -> [Int] {
        tokenize(text).map { addedTokens[$0] ?? vocabulary[$0] ?? unkTokenId }
    }

    /// The BPE tokens (as strings of the byte alphabet), with added tokens kept whole.
    public func tokenize(_ text: String) -> [String] {
        var result: [String] = []
        for piece in splitAddedTokens(text) {
            switch piece {
            case .added(let token): result.append(token)
            case .text(let text): result += bpeTokens(text)
            }
        }
        return result
    }

    enum Piece: Equatable {
        case added(String), text(String)
    }

    /// Cuts added tokens out of the raw text (earliest match first, longest at one position), as
    /// transformers' trie does, then applies their lstrip/rstrip to the neighbouring text.
    func splitAddedTokens(_ text: String) -> [Piece] {
        let scalars = Array(text.unicodeScalars)
        let candidates = addedTokens.keys.map { Array($0.unicodeScalars) }.filter { !$0.isEmpty }
            .sorted { $0.count > $1.count }
        var pieces: [Piece] = []
        var start = 0, i = 0
        while i < scalars.count {
            if let match = candidates.first(where: { i + $0.count <= scalars.count && Array(scalars[i..<i + $0.count]) == $0 }) {
                if start < i { pieces.append(.text(String(String.UnicodeScalarView(scalars[start..<i])))) }
                pieces.append(.added(String(String.UnicodeScalarView(match))))
                i += match.count
                start = i
            } else {
                i += 1
            }
        }
        if start < scalars.count { pieces.append(.text(String(String.UnicodeScalarView(scalars[start...])))) }

        for (index, piece) in pieces.enumerated() {
            guard case .added(let token) = piece, let option = addedTokenOptions[token] else { continue }
            if option.rstrip, index + 1 < pieces.count, case .text(let right) = pieces[index + 1] {
                pieces[index + 1] = .text(String(right.drop(while: { $0.unicodeScalars.allSatisfy(isPythonSpace) })))
            }
            if option.lstrip, index > 0, case .text(let left) = pieces[index - 1] {
                pieces[index - 1] = .text(String(left.reversed().drop(while: { $0.unicodeScalars.allSatisfy(isPythonSpace) }).reversed()))
            }
        }
        return pieces.filter { $0 != .text("") }
    }

    /// Clean-up, pre-tokenisation and BPE of text without added tokens.
    func bpeTokens(_ text: String) -> [String] {
        var result: [String] = []
        for word in CLIPTokenizer.preTokenize(CLIPTokenizer.basicClean(text)) {
            let encoded = String(String.UnicodeScalarView(word.utf8.map { byteEncoder[Int($0)] }))
            result += bpe(encoded)
        }
        return result
    }

    /// BPE of one pre-token (already in the byte alphabet), memoised.
    func bpe(_ token: String) -> [String] {
        lock.lock()
        if let cached = cache[token] { lock.unlock(); return cached }
        lock.unlock()

        var word = token.unicodeScalars.map { String($0) }
        guard !word.isEmpty else { return [] }
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, pair: Pair)?
            for i in 0..<word.count - 1 {
                let pair = Pair(first: word[i], second: word[i + 1])
                if let rank = ranks[pair], rank < best?.rank ?? .max { best = (rank, pair) }
            }
            guard let (_, pair) = best else { break }
            var merged: [String] = []
            merged.reserveCapacity(word.count)
            var i = 0
            while i < word.count {
                if i < word.count - 1, word[i] == pair.first, word[i + 1] == pair.second {
                    merged.append(pair.first + pair.second)
                    i += 2
                } else {
                    merged.append(word[i])
                    i += 1
                }
            }
            word = merged
        }
        lock.lock()
        cache[token] = word
        lock.unlock()
        return word
    }

    // MARK: Text clean-up (transformers' BasicTokenizer path)

    /// `" ".join(BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text))`.
    static func basicClean(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || isControl(scalar) { continue }
            if isWhitespace(scalar) {
                cleaned.append(" ")
            } else if isCJK(scalar.value) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        let normalized = String(cleaned).precomposedStringWithCanonicalMapping
        let words = normalized.unicodeScalars.split(whereSeparator: isPythonSpace)
        return words.map { pythonLower(Array($0)) }.joined(separator: " ")
    }

    /// Pieces matched by CLIP's pattern, in order; unmatched characters (spaces) are skipped.
    static func preTokenize(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var pieces: [String] = []
        var i = 0
        func piece(_ range: Range<Int>) -> String { String(String.UnicodeScalarView(s[range])) }
        func matches(_ literal: String, at position: Int) -> Int? {
            var j = position
            for expected in literal.unicodeScalars {
                guard j < s.count, foldsTo(s[j], expected) else { return nil }
                j += 1
            }
            return j
        }
        outer: while i < s.count {
            for literal in ["<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"] {
                if let end = matches(literal, at: i) {
                    pieces.append(piece(i..<end))
                    i = end
                    continue outer
                }
            }
            if isLetter(s[i]) {
                var j = i + 1
                while j < s.count, isLetter(s[j]) { j += 1 }
                pieces.append(piece(i..<j))
                i = j
            } else if isNumber(s[i]) {
                pieces.append(piece(i..<i + 1))
                i += 1
            } else if !s[i].properties.isWhitespace {
                var j = i + 1
                while j < s.count, !isLetter(s[j]), !isNumber(s[j]), !s[j].properties.isWhitespace { j += 1 }
                pieces.append(piece(i..<j))
                i = j
            } else {
                i += 1
            }
        }
        return pieces
    }

    /// The `regex` module's IGNORECASE match of one pattern character (simple case folding: the
    /// long s "ſ" folds to "s").
    private static func foldsTo(_ scalar: Unicode.Scalar, _ expected: Unicode.Scalar) -> Bool {
        if scalar == expected { return true }
        if expected == "s", scalar == "\u{17F}" { return true }
        return scalar.properties.lowercaseMapping == String(expected) && scalar.value < 0x80
    }

    /// General category as Python 3.11's `unicodedata` (Unicode 14.0) reports it: characters
    /// assigned later count as unassigned (Cn), which the clean-up drops.
    static func category(_ scalar: Unicode.Scalar) -> Unicode.GeneralCategory {
        guard let age = scalar.properties.age, age.major < 14 || (age.major == 14 && age.minor == 0) else {
            return .unassigned
        }
        return scalar.properties.generalCategory
    }

    /// transformers' `_is_control`: any C* category except tab, newline and carriage return.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch category(scalar) {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// transformers' `_is_whitespace`: space, tab, newline, carriage return or category Zs.
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" || category(scalar) == .spaceSeparator
    }

    /// The CJK ideograph blocks BasicTokenizer surrounds with spaces.
    static func isCJK(_ cp: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(cp) || (0x3400...0x4DBF).contains(cp) || (0x20000...0x2A6DF).contains(cp)
            || (0x2A700...0x2B73F).contains(cp) || (0x2B740...0x2B81F).contains(cp) || (0x2B820...0x2CEAF).contains(cp)
            || (0xF900...0xFAFF).contains(cp) || (0x2F800...0x2FA1F).contains(cp)
    }

    static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Python's `str.lower()` of one word: full lowercase mappings, and capital sigma becomes
    /// final sigma after a cased letter unless another cased letter follows.
    static func pythonLower(_ word: [Unicode.Scalar]) -> String {
        var out = String.UnicodeScalarView()
        for (i, scalar) in word.enumerated() {
            if scalar == "\u{3A3}" {
                var j = i - 1
                while j >= 0, word[j].properties.isCaseIgnorable { j -= 1 }
                var final = j >= 0 && word[j].properties.isCased
                if final {
                    var k = i + 1
                    while k < word.count, word[k].properties.isCaseIgnorable { k += 1 }
                    final = k == word.count || !word[k].properties.isCased
                }
                out.append(final ? "\u{3C2}" : "\u{3C3}")
            } else {
                out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }
}

/// Python's `str.isspace()` (what `str.split()` splits on).
func isPythonSpace(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
        return true
    default:
        return false
    }
}

/// GPT-2/CLIP's reversible map from bytes to printable characters: printable Latin-1 bytes stand
/// for themselves, the other 68 bytes for U+0100 onwards, in byte order.
let byteEncoder: [Unicode.Scalar] = {
    let printable = Set(Array(UInt32(33)...126) + Array(UInt32(161)...172) + Array(UInt32(174)...255))
    var next: UInt32 = 256
    return (UInt32(0)...255).map { byte in
        if printable.contains(byte) { return Unicode.Scalar(byte)! }
        defer { next += 1 }
        return Unicode.Scalar(next)!
    }
}()

/// Special tokens as `tokenizer_config.json` / `special_tokens_map.json` give them: plain strings
/// or `{"content": …, "lstrip": …, "rstrip": …}`.
private struct SpecialTokens {
    var bos = "<|startoftext|>", eos = "<|endoftext|>", unk = "<|endoftext|>", pad = "<|endoftext|>"
    var additional: [String] = []
    var options: [String: (lstrip: Bool, rstrip: Bool)] = [:]

    mutating func read(_ object: [String: Any], file: String) throws {
        for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
            guard let value = object[key], !(value is NSNull) else { continue }
            guard let token = AddedToken(value) else {
                throw LoadingError(file: file, key: key, "expected a string or {\"content\": String, …}")
            }
            switch key {
            case "bos_token": bos = token.content
            case "eos_token": eos = token.content
            case "unk_token": unk = token.content
            default: pad = token.content
            }
            options[token.content] = (token.lstrip, token.rstrip)
        }
        if let list = object["additional_special_tokens"] as? [Any] {
            for value in list {
                guard let token = AddedToken(value) else {
                    throw LoadingError(file: file, key: "additional_special_tokens", "expected strings or {\"content\": String, …}")
                }
                additional.append(token.content)
                options[token.content] = (token.lstrip, token.rstrip)
            }
        }
    }
}

private struct AddedToken {
    let content: String
    let lstrip: Bool, rstrip: Bool

    init?(_ value: Any) {
        if let text = value as? String {
            (content, lstrip, rstrip) = (text, false, false)
        } else if let dict = value as? [String: Any], let text = dict["content"] as? String {
            (content, lstrip, rstrip) = (text, dict["lstrip"] as? Bool ?? false, dict["rstrip"] as? Bool ?? false)
        } else {
            return nil
        }
    }
}

/// gzip (RFC 1952) around ZIPFoundation's raw-deflate decoder.
enum Gzip {
    static func decompress(_ data: Data, file: String) throws -> Data {
        let bytes = [UInt8](data)
        guard bytes.count >= 18, bytes[0] == 0x1F, bytes[1] == 0x8B, bytes[2] == 8 else {
            throw LoadingError(file: file, "not a gzip file (or not deflate-compressed)")
        }
        let flags = bytes[3]
        var offset = 10
        if flags & 0x04 != 0 {  // FEXTRA
            guard offset + 2 <= bytes.count else { throw LoadingError(file: file, "truncated gzip header") }
            offset += 2 + Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
        }
        for flag in [UInt8(0x08), 0x10] where flags & flag != 0 {  // FNAME, FCOMMENT: zero-terminated
            while offset < bytes.count, bytes[offset] != 0 { offset += 1 }
            offset += 1
        }
        if flags & 0x02 != 0 { offset += 2 }  // FHCRC
        guard offset < bytes.count - 8 else { throw LoadingError(file: file, "truncated gzip header") }

        func le32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
        let expectedCRC = le32(bytes.count - 8), expectedSize = le32(bytes.count - 4)
        let body = data.subdata(in: offset..<data.count)
        let chunk = 1 << 16
        var output = Data()
        let crc: CRC32
        do {
            // The decoder reads whole chunks: pad the last one (inflate stops at the stream's end).
            crc = try Data.decompress(size: Int64(body.count), bufferSize: chunk, skipCRC32: false, provider: { position, size in
                let start = Int(position)
                guard start <= body.count + chunk else { throw LoadingError(file: file, "deflate stream runs past the end of the file") }
                var piece = start < body.count ? body.subdata(in: start..<min(start + size, body.count)) : Data()
                if piece.count < size { piece.append(Data(count: size - piece.count)) }
                return piece
            }, consumer: { output.append($0) })
        } catch let error as LoadingError {
            throw error
        } catch {
            throw LoadingError(file: file, "corrupt deflate data: \(error)")
        }
        guard crc == expectedCRC, UInt32(truncatingIfNeeded: output.count) == expectedSize else {
            throw LoadingError(file: file, "gzip checksum or size mismatch (the file is corrupt or truncated)")
        }
        return output
    }
}
