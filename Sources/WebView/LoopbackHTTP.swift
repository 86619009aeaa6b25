import Foundation

/// A blocking HTTP/1.1 client for 127.0.0.1, one connection per request: the browser tests talk to
/// chromedriver with it, and `backdrop-bench --serve` plays its raters with it.
public enum LoopbackHTTP {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public struct Reply {
        public var status: Int
        /// Header names in lower case; a repeated header keeps its first value.
        public var headers: [String: String]
        public var body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public static func request(port: Int, method: String, path: String, headers: [String: String] = [:], body: Data = Data()) throws -> Reply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        let reply = try exchange(port: port, Data(head.utf8) + body)
        guard let split = reply.range(of: Data("\r\n\r\n".utf8)) else { throw Failure("\(method) \(path): no HTTP reply") }
        let lines = String(decoding: reply[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        guard let statusLine = lines.first?.split(separator: " "), statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw Failure("\(method) \(path): no status line")
        }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            if fields[name] == nil { fields[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return Reply(status: status, headers: fields, body: Data(reply[split.upperBound...]))
    }

    /// Sends `bytes` to 127.0.0.1:`port` and reads until the server closes.
    public static func exchange(port: Int, _ bytes: Data) throws -> Data {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoopbackHTTP.Failure("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { throw LoopbackHTTP.Failure("connect to port \(port): \(String(cString: strerror(errno)))") }
        try bytes.withUnsafeBytes { buffer in
            var sent = 0
            while sent < buffer.count {
                let n = send(fd, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw LoopbackHTTP.Failure("send: \(String(cString: strerror(errno)))") }
                sent += n
            }
        }
        // Until the headers and Content-Length bytes of body are in (chromedriver may keep the
        // connection open), or the server closes it.
        var reply = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let end = reply.range(of: Data("\r\n\r\n".utf8)) {
                let head = String(decoding: reply[..<end.lowerBound], as: UTF8.self).lowercased()
                if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                   let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)),
                   reply.count - end.upperBound >= length { return reply }
            }
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { break }
            guard n > 0 else { throw LoopbackHTTP.Failure("recv: \(String(cString: strerror(errno)))") }
            reply.append(contentsOf: chunk[0..<n])
        }
        return reply
    }

}
