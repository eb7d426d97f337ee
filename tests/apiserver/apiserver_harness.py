"""Starts cubelet-test-apiserver on a free loopback port for a test and talks to it.

Usable from other tests:  with TestApiServer(binary, nodes=["n1"]) as s: s.request(...)
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time


class TestApiServer:
    def __init__(self, binary, nodes=(), extra_args=()):
        self.binary = binary
        self.nodes = list(nodes)
        self.extra_args = list(extra_args)
        self.tmp = None
        self.proc = None

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="apiserver-test-")
        self.data = os.path.join(self.tmp, "data")
        args = [self.binary, "--listen", "127.0.0.1:0", "--data-dir", self.data]
        for n in self.nodes:
            args += ["--node", n]
        args += self.extra_args
        self.stderr = open(os.path.join(self.tmp, "stderr.log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("ready") or line == "":
                break
        if not line.startswith("ready"):
            self.__exit__(None, None, None)
            raise RuntimeError("apiserver did not start: %r" % line)
        self.url = line.split()[1]
        hostport = self.url[len("https://"):]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.tokens = {}
        with open(os.path.join(self.data, "tokens.csv")) as f:
            for row in f:
                parts = row.strip().split(",")
                if len(parts) >= 2:
                    self.tokens[parts[1]] = parts[0]
        self.ca = os.path.join(self.data, "ca.crt")
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmp and not os.environ.get("KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def context(self, cert=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert:
            ctx.load_cert_chain(os.path.join(self.data, cert + ".crt"),
                                os.path.join(self.data, cert + ".key"))
        return ctx

    def admin_token(self):
        return self.tokens["kubernetes-admin"]

    def node_token(self, name):
        return self.tokens["system:node:" + name]

    def request(self, method, path, body=None, token=None, cert=None,
                content_type="application/json", headers=None):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context(cert),
                                           timeout=30)
        h = {"User-Agent": "apiserver-test/1.0", "Accept": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None:
            if not isinstance(body, (str, bytes)):
                body = json.dumps(body)
            h["Content-Type"] = content_type
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read().decode()
        conn.close()
        return resp.status, data

    def json(self, method, path, body=None, **kw):
        status, data = self.request(method, path, body, **kw)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data

    def raw_watch(self, path, token, seconds):
        """Returns the raw HTTP/1.1 bytes of a watch (chunk framing intact)."""
        ctx = self.context()
        sock = socket.create_connection((self.host, self.port), timeout=seconds + 10)
        tls = ctx.wrap_socket(sock, server_hostname=self.host)
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
               "User-Agent: apiserver-test/1.0\r\nAccept: application/json\r\n"
               "Connection: close\r\n\r\n" % (path, self.host, self.port, token))
        tls.sendall(req.encode())
        out = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        tls.close()
        return out


def parse_chunked(raw):
    """Splits a raw HTTP/1.1 response into (status line, headers, [chunks])."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    chunks = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        chunks.append(rest[:size])
        body = rest[size + 2:]
    return lines[0], headers, chunks
