import Foundation

/// The cause of a failure in a few words, for an error message that already names the file and
/// the action ("x.png: cannot write: Read-only file system"): Foundation's errors give their
/// underlying POSIX reason instead of "The operation could not be completed", Backdrop's own errors
/// their message instead of "(Torch.TorchError error 1.)". Always one line.
public func failureReason(_ error: Error) -> String {
    let text: String
    if let error = error as? CocoaError, let underlying = error.underlying as NSError?, underlying.domain == NSPOSIXErrorDomain {
        text = String(cString: strerror(Int32(underlying.code)))
    } else if let error = error as? POSIXError {
        text = String(cString: strerror(error.code.rawValue))
    } else if (error as NSError).domain == NSCocoaErrorDomain || error is LocalizedError {
        text = error.localizedDescription
    } else {
        text = String(describing: error)
    }
    return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }.joined(separator: " ")
}
