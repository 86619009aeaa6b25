/// How the benchmark asks itself, in a fresh child process, to run one workload: `FLAG NAME` plus
/// integer options such as `--threads N` and `--repeats N` (a fresh process per workload keeps peak
/// memory measurements apart).
struct ChildRequest {
    let workload: String
    private let arguments: [String]

    init?(flag: String, _ arguments: [String]) {
        guard let index = arguments.firstIndex(of: flag), index + 1 < arguments.count else { return nil }
        workload = arguments[index + 1]
        self.arguments = arguments
    }

    /// The integer after `name`, or `fallback`.
    func integer(_ name: String, _ fallback: Int) -> Int {
        arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? Int(arguments[$0 + 1]) : nil } ?? fallback
    }
}
