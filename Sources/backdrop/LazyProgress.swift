import Support

/// A `ProgressReporter` for work whose length only the library learns (the frames of a folder,
/// the images of a folder): started at the first report, finished when it reaches its total.
final class LazyProgress {
    let title: String
    private var reporter: ProgressReporter?

    init(_ title: String) { self.title = title }

    func update(_ completed: Int, of total: Int?, status: String = "") {
        let reporter = self.reporter ?? ProgressReporter(title: title, total: total)
        self.reporter = reporter
        reporter.update(completed, status: status)
        if let total, completed >= total { finish() }
    }

    func finish() {
        reporter?.finish()
        reporter = nil
    }
}
