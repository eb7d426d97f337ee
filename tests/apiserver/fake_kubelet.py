#!/usr/bin/env python3
"""A tiny kubelet stand-in for the log proxy test: HTTPS on 127.0.0.1:<free port>, requires a
client certificate signed by the cluster CA (the apiserver's kubelet client cert) and serves
/containerLogs/<ns>/<pod>/<container> with the query parameters applied."""
import http.server
import socketserver
import ssl
import sys
import time
import urllib.parse

LINES = ["hello from web", "second line", "third line"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-kubelet: " + fmt % args + "\n")

    def do_GET(self):
        cert = self.connection.getpeercert() or {}
        cn = ""
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    cn = v
        if cn != "kube-apiserver-kubelet-client":
            self.reply(401, "Unauthorized\n")
            return
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path != "/containerLogs/default/web/main":
            self.reply(404, "pod %s not found\n" % u.path)
            return
        lines = list(LINES)
        if "tailLines" in q:
            lines = lines[-int(q["tailLines"][0]):]
        if q.get("timestamps") == ["true"]:
            lines = ["2026-01-01T00:00:00.000000000Z " + l for l in lines]
        if q.get("follow") == ["true"]:
            # Stream slowly so the proxy has to flush as data arrives.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for l in lines + ["followed"]:
                data = (l + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(0.2)
            self.wfile.write(b"0\r\n\r\n")
            return
        self.reply(200, "".join(l + "\n" for l in lines))

    def reply(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    cert, key, ca = sys.argv[1], sys.argv[2], sys.argv[3]
    srv = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
