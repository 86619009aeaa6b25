import CYaml
import Foundation

/// Checks a YAML document's shape from libyaml's event stream before anything builds a tree of it
/// (docs/security.md#bounded-parsing). libyaml's parser keeps its own stack, so this pass cannot
/// overflow; the tree builder that follows recurses once per level and expands every alias in full,
/// which is where a 20 KB file nested 10,000 deep crashed and a 1 KB "billion laughs" reached 2 GB.
///
/// Refused: nesting deeper than `maxDepth`, more than `maxNodes` nodes once aliases are expanded,
/// a key repeated in one mapping (YAML forbids it; the tree builder would silently keep the last),
/// and a key that is not text (a sequence, mapping or alias as a key stopped the tree builder with
/// a trap; found by `make fuzz`).
enum YAMLLimits {
    static let maxDepth = 64
    static let maxNodes = 100_000

    /// The first problem, as a ConfigError naming the file, the key path and the line.
    static func check(yaml: String, file: String) throws {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw ConfigError(file: file, key: "", message: "the YAML parser could not start")
        }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(yaml.utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var walker = Walker(file: file)
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    // Syntax errors are reported by the parser proper, with its message.
                    return
                }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { return }
                try walker.visit(event)
            }
        }
    }

    /// What is open while the events stream by.
    private struct Walker {
        let file: String
        /// One entry per open collection: its node count so far, its anchor, and for mappings the
        /// keys seen and whether the next scalar is a key.
        struct Open {
            var isMapping: Bool
            var anchor: String?
            var nodes = 1
            var keys: Set<String> = []
            var expectingKey = true
            var lastKey: String?
        }
        var stack: [Open] = []
        /// Expanded node count of each anchored node.
        var anchored: [String: Int] = [:]
        var total = 0

        init(file: String) { self.file = file }

        var keyPath: String { stack.compactMap(\.lastKey).joined(separator: ".") }

        func fail(_ message: String, at event: yaml_event_t) -> ConfigError {
            ConfigError(file: file, key: keyPath, message: "\(message) (line \(event.start_mark.line + 1))")
        }

        static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        }

        mutating func visit(_ event: yaml_event_t) throws {
            switch event.type {
            case YAML_SCALAR_EVENT:
                let value = Self.string(event.data.scalar.value) ?? ""
                try keyOrValue(key: value, nodes: 1, at: event)
                if let anchor = Self.string(event.data.scalar.anchor) { anchored[anchor] = 1 }
            case YAML_ALIAS_EVENT:
                try requireTextKey(at: event, found: "an alias")
                let name = Self.string(event.data.alias.anchor) ?? ""
                // An alias stands for a full copy of its anchor's subtree once the tree is built.
                try keyOrValue(key: nil, nodes: anchored[name] ?? 1, at: event)
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                guard stack.count < YAMLLimits.maxDepth else {
                    throw fail("nested more than \(YAMLLimits.maxDepth) levels deep", at: event)
                }
                let mapping = event.type == YAML_MAPPING_START_EVENT
                try requireTextKey(at: event, found: mapping ? "a mapping" : "a sequence")
                let anchor = Self.string(mapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor)
                try count(1, at: event)
                stack.append(Open(isMapping: mapping, anchor: anchor))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                let closed = stack.removeLast()
                if let anchor = closed.anchor { anchored[anchor] = closed.nodes }
                // The closed collection is one value of its parent.
                if !stack.isEmpty {
                    stack[stack.count - 1].nodes += closed.nodes
                    if stack[stack.count - 1].isMapping { advance() }
                }
            default:
                break
            }
        }

        /// A scalar or alias inside the open collection: a mapping's key (checked for repeats) or a value.
        mutating func keyOrValue(key: String?, nodes: Int, at event: yaml_event_t) throws {
            try count(nodes, at: event)
            guard !stack.isEmpty else { return }
            stack[stack.count - 1].nodes += nodes
            guard stack[stack.count - 1].isMapping else { return }
            if stack[stack.count - 1].expectingKey, let key {
                stack[stack.count - 1].lastKey = key
                guard stack[stack.count - 1].keys.insert(key).inserted else {
                    throw fail("the key '\(key)' appears twice in one mapping", at: event)
                }
            }
            advance()
        }

        mutating func advance() { stack[stack.count - 1].expectingKey.toggle() }

        /// Config keys are text; YAML's complex keys (`? [a, b]: c`) have no meaning here, and the
        /// tree builder stops the process on them.
        func requireTextKey(at event: yaml_event_t, found: String) throws {
            if let open = stack.last, open.isMapping, open.expectingKey {
                throw fail("a mapping key must be text, not \(found)", at: event)
            }
        }

        mutating func count(_ nodes: Int, at event: yaml_event_t) throws {
            total += nodes
            guard total <= YAMLLimits.maxNodes else {
                throw fail("expands to more than \(YAMLLimits.maxNodes) nodes through its aliases", at: event)
            }
        }
    }
}
