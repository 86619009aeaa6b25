import ArgumentParser
import BackdropTestSupport
import Foundation
import XCTest

@testable import backdrop

/// Every numeric option of every command, given 0, −1, NaN, ±∞ and huge values: refused by the
/// parser or by validation (a usage error naming the option), or accepted and then the command
/// ends with an exit code, never a signal (docs/security.md#validation-before-work).
final class NumericOptionSweepTests: XCTestCase {
    static let hostileValues = ["0", "-1", "nan", "inf", "-inf", "1e308", "99999999999999999999"]

    /// One leaf command and its arguments, from `--experimental-dump-help`.
    struct Command {
        var path: [String]
        var required: [(name: String?, positional: Bool)]
        var options: [String]
    }

    func commands() throws -> [Command] {
        let (status, output) = try TestSupport.runBackdrop(["--experimental-dump-help"])
        XCTAssertEqual(status, 0)
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        var found: [Command] = []
        func walk(_ command: [String: Any], _ path: [String]) {
            let subcommands = command["subcommands"] as? [[String: Any]] ?? []
            for sub in subcommands { walk(sub, path + [sub["commandName"] as! String]) }
            guard subcommands.isEmpty, path.first != "help" else { return }
            var leaf = Command(path: path, required: [], options: [])
            for argument in command["arguments"] as? [[String: Any]] ?? [] {
                let name = (argument["names"] as? [[String: Any]])?.first { $0["kind"] as? String == "long" }?["name"] as? String
                let kind = argument["kind"] as? String
                if argument["isOptional"] as? Bool == false { leaf.required.append((name, kind == "positional")) }
                else if kind == "option", let name { leaf.options.append(name) }
            }
            found.append(leaf)
        }
        walk(try XCTUnwrap(root["command"] as? [String: Any]), [])
        return found
    }

    /// Required options that take a number; the others get a distinct made-up path.
    static let numericRequired: Set<String> = ["count"]
    /// Arguments a command needs besides its required ones to parse at all.
    static let completions: [String: [String]] = ["panorama": ["--model=model", "--baseline"], "demo-call": ["--frames=2"]]

    /// The command with its required arguments filled in (paths that do not exist, numbers that are valid).
    func base(_ command: Command) -> [String] {
        command.path + command.required.flatMap { argument -> [String] in
            guard let name = argument.name else { return ["1"] }
            return Self.numericRequired.contains(name) ? ["--\(name)=1"] : ["--\(name)=missing-\(name)"]
        } + (Self.completions[command.path.joined(separator: " ")] ?? [])
    }

    enum Outcome { case refused(String), accepted }

    func parse(_ arguments: [String]) -> Outcome {
        do {
            _ = try Backdrop.parseAsRoot(arguments)
            return .accepted
        } catch {
            return .refused(Backdrop.message(for: error))
        }
    }

    func testEveryNumericOptionIsCheckedBeforeWork() throws {
        var accepted: [[String]] = []
        var checked = 0
        for command in try commands() {
            let base = base(command)
            guard case .accepted = parse(base) else {
                XCTFail("\(base.joined(separator: " ")) does not parse: fill its required arguments differently")
                continue
            }
            for option in command.options {
                // Only options that refuse text are numeric (or closed choices, which refuse numbers too).
                guard case .refused = parse(base + ["--\(option)=abc"]) else { continue }
                for value in Self.hostileValues {
                    let arguments = base + ["--\(option)=\(value)"]
                    checked += 1
                    switch parse(arguments) {
                    case .refused(let message):
                        XCTAssertTrue(message.contains(option) || message.contains(value), "\(arguments): \(message)")
                    case .accepted:
                        XCTAssertTrue(Double(value)?.isFinite ?? true,
                                      "\(arguments.joined(separator: " ")) accepts a non-finite value")
                        accepted.append(arguments)
                    }
                }
            }
        }
        print("numeric options: \(checked) hostile values tried, \(accepted.count) accepted")
        XCTAssertGreaterThan(checked, 500)
        // What validation let through must end with an exit code when it runs (here on inputs that
        // do not exist, in an empty folder), never with a signal.
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        for arguments in accepted {
            let process = Process()
            process.executableURL = try TestSupport.backdropExecutable()
            process.arguments = arguments
            process.currentDirectoryURL = folder
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .exit,
                           "\(arguments.joined(separator: " ")) ended by signal \(process.terminationStatus)")
        }
    }

    /// `--help` on every command, and `help CMD`, prints that command's help and exits 0. (It once
    /// printed "Error: CommandError(…helpRequested…)" because `main` handled ArgumentParser's help
    /// error as a failure of the command's work.)
    func testEveryCommandPrintsItsHelp() throws {
        let leaves = try commands()
        let groups = Set(leaves.filter { $0.path.count > 1 }.map { Array($0.path.dropLast()) })
        var asked = 0
        for path in [[]] + groups.sorted { $0.joined() < $1.joined() } + leaves.map(\.path) {
            let (status, output) = try TestSupport.runBackdrop(path + ["--help"])
            asked += 1
            let line = (["backdrop"] + path).joined(separator: " ")
            XCTAssertEqual(status, 0, "\(line) --help: \(output)")
            XCTAssertTrue(output.contains("USAGE: \(line)"), "\(line) --help: \(output)")
            XCTAssertFalse(output.contains("Error:"), "\(line) --help: \(output)")
        }
        let (status, output) = try TestSupport.runBackdrop(["help", "train"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("USAGE: backdrop train"), output)
        XCTAssertGreaterThan(asked, 20)
    }
}
