"""A loopback fake of the Hugging Face hub endpoints that `gptoss pull` and huggingface_hub use.

Two servers on 127.0.0.1: the hub (JSON API and /resolve) and a "CDN" on another port that LFS
files redirect to, as the real hub redirects to its storage hosts. Responses carry the headers
huggingface_hub reads (X-Repo-Commit, X-Linked-Etag, X-Linked-Size, ETag, X-Error-Code), the
CDN honours Range, and hooks simulate failures: drop the connection mid-file, serve corrupt
bytes, ignore Range, refuse without a token.
"""

import hashlib
import http.server
import json
import threading
import time
import urllib.parse

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


class Repo:
    def __init__(self, repo_id, files, commit=None, gated=False, revisions=None):
        self.repo_id = repo_id
        self.files = dict(files)  # path -> bytes
        self.commit = commit or hashlib.sha1((repo_id + "".join(sorted(self.files))).encode()).hexdigest()
        self.gated = gated
        self.revisions = {"main": self.commit, self.commit: self.commit, **(revisions or {})}

    def is_lfs(self, path):
        return path.endswith(LFS_SUFFIXES)

    def entry(self, path):
        data = self.files[path]
        e = {"path": path, "size": len(data)}
        if self.is_lfs(path):
            ptr = lfs_pointer(data)
            e["oid"] = git_blob_sha1(ptr)
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(ptr)}
        else:
            e["oid"] = git_blob_sha1(data)
        return e

    def etag(self, path):
        e = self.entry(path)
        return e["lfs"]["oid"] if "lfs" in e else e["oid"]


class FakeHub:
    def __init__(self, token="hf_good_token"):
        self.repos = {}
        self.token = token
        self.log = []  # (server, method, path, headers dict)
        self.lock = threading.Lock()
        # hooks
        self.drop_after = {}  # path -> (bytes, times): close the connection after `bytes` bytes, `times` times
        self.corrupt = set()  # paths whose CDN bytes are altered
        self.oversize = set()  # paths the CDN serves with extra bytes appended
        self.cdn_forbid = {}  # path -> n: the next n CDN GETs answer 403 (an expired signed URL)
        self.ignore_range = False
        self.tree_page_size = 0  # >0: paginate /tree with Link headers
        self.cdn_delay = 0.0  # seconds each CDN GET waits before its body (to observe concurrency)
        self.cdn_active = 0
        self.cdn_max_active = 0
        self._servers = []

    def add_repo(self, repo):
        self.repos[repo.repo_id] = repo
        return repo

    # -- plumbing --------------------------------------------------------------------------
    def start(self):
        self.hub = self._serve("hub")
        self.cdn = self._serve("cdn")
        self.endpoint = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"
        return self

    def stop(self):
        for s in self._servers:
            s.shutdown()
            s.server_close()

    def requests(self, server=None, method=None, contains=None):
        with self.lock:
            return [
                r
                for r in self.log
                if (server is None or r[0] == server)
                and (method is None or r[1] == method)
                and (contains is None or contains in r[2])
            ]

    def clear_log(self):
        with self.lock:
            self.log.clear()

    def _serve(self, kind):
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._handle("GET")

            def do_HEAD(self):
                self._handle("HEAD")

            def _handle(self, method):
                with hub.lock:
                    hub.log.append((kind, method, self.path, {k.lower(): v for k, v in self.headers.items()}))
                try:
                    if kind == "hub":
                        hub._hub(self, method)
                    else:
                        hub._cdn(self, method)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # clients dropping keep-alive connections is normal here

        srv = Server(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self._servers.append(srv)
        return srv

    @staticmethod
    def _send(h, status, body=b"", headers=None, method="GET"):
        h.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if method != "HEAD" and body:
            h.wfile.write(body)

    def _json(self, h, obj, headers=None):
        self._send(h, 200, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, h, status, code, message, method="GET", extra=None):
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
        headers.update(extra or {})
        self._send(h, status, body, headers, method)

    def _authorized(self, h, repo, api=False):
        # gated=True: everything needs the token; gated="files": the listing is public and only the
        # files are refused (the real hub's gated models behave this way).
        if not repo.gated or (api and repo.gated == "files"):
            return True
        return h.headers.get("Authorization") == f"Bearer {self.token}"

    # -- the hub -----------------------------------------------------------------------------
    def _find_repo(self, parts):
        # parts after the prefix: org, name, ...
        for n in (2, 1):
            rid = "/".join(parts[:n])
            if rid in self.repos:
                return self.repos[rid], parts[n:]
        return None, None

    def _hub(self, h, method):
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:2] == ["api", "models"]:
            repo, rest = self._find_repo(parts[2:])
            if repo is None:
                return self._error(h, 404, "RepoNotFound", "Repository not found", method)
            if not self._authorized(h, repo, api=True):
                return self._error(h, 401, "GatedRepo", "Access to this gated repo is restricted", method)
            if rest and rest[0] == "revision" and len(rest) == 2:
                return self._revision(h, repo, rest[1], query)
            if rest and rest[0] == "tree" and len(rest) >= 2:
                return self._tree(h, repo, rest[1], query)
            return self._error(h, 404, "EntryNotFound", "no such API route", method)
        if "resolve" in parts:
            i = parts.index("resolve")
            repo = self.repos.get("/".join(parts[:i]))
            if repo is None:
                return self._error(h, 404, "RepoNotFound", "Repository not found", method)
            if not self._authorized(h, repo):
                return self._error(h, 401, "GatedRepo", "Access to this gated repo is restricted", method)
            if len(parts) < i + 3:
                return self._error(h, 404, "EntryNotFound", "no file", method)
            rev, path = parts[i + 1], "/".join(parts[i + 2 :])
            commit = repo.revisions.get(rev)
            if commit is None:
                return self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}", method)
            if path not in repo.files:
                return self._error(h, 404, "EntryNotFound", f"{path} does not exist", method,
                                   {"X-Repo-Commit": commit})
            return self._resolve(h, method, repo, commit, path)
        return self._error(h, 404, "RepoNotFound", "unknown route", method)

    def _revision(self, h, repo, rev, query):
        commit = repo.revisions.get(rev)
        if commit is None:
            return self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}")
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for p in sorted(repo.files):
            s = {"rfilename": p}
            if blobs:
                e = repo.entry(p)
                s.update({"size": e["size"], "blobId": e["oid"]})
                if "lfs" in e:
                    s["lfs"] = {"sha256": e["lfs"]["oid"], "size": e["size"], "pointerSize": e["lfs"]["pointerSize"]}
            siblings.append(s)
        self._json(h, {"_id": "x", "id": repo.repo_id, "modelId": repo.repo_id, "sha": commit, "private": False,
                       "gated": "manual" if repo.gated else False, "disabled": False, "siblings": siblings,
                       "tags": [], "downloads": 0, "likes": 0})

    def _tree(self, h, repo, rev, query):
        if repo.revisions.get(rev) is None:
            return self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}")
        entries, dirs = [], set()
        for p in sorted(repo.files):
            segs = p.split("/")
            for k in range(1, len(segs)):
                d = "/".join(segs[:k])
                if d not in dirs:
                    dirs.add(d)
                    entries.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0,
                                    "path": d})
            entries.append({"type": "file", **repo.entry(p)})
        headers = {}
        if self.tree_page_size:
            start = int(query.get("cursor", ["0"])[0])
            end = start + self.tree_page_size
            if end < len(entries):
                nq = {k: v[0] for k, v in query.items()}
                nq["cursor"] = str(end)
                nxt = f"{self.endpoint}{urllib.parse.urlsplit(h.path).path}?{urllib.parse.urlencode(nq)}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            entries = entries[start:end]
        self._json(h, entries, headers)

    def _resolve(self, h, method, repo, commit, path):
        e = repo.entry(path)
        common = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if "lfs" in e:
            sha = e["lfs"]["oid"]
            loc = f"{self.cdn_url}/blobs/{sha}?repo={urllib.parse.quote(repo.repo_id)}&path={urllib.parse.quote(path)}"
            headers = {**common, "Location": loc, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(e["size"]),
                       "ETag": f'"{e["oid"]}"'}
            return self._send(h, 302, b"Found. Redirecting", headers, method)
        data = repo.files[path]
        if path in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return self._bytes(h, method, data, f'"{e["oid"]}"', path, common)

    # -- the CDN ------------------------------------------------------------------------------
    def _cdn(self, h, method):
        url = urllib.parse.urlsplit(h.path)
        q = urllib.parse.parse_qs(url.query)
        repo = self.repos.get(q.get("repo", [""])[0])
        path = q.get("path", [""])[0]
        if repo is None or path not in repo.files:
            return self._send(h, 404, b"NoSuchKey", method=method)
        data = repo.files[path]
        with self.lock:
            forbid = method == "GET" and self.cdn_forbid.get(path, 0) > 0
            if forbid:
                self.cdn_forbid[path] -= 1
        if forbid:
            return self._send(h, 403, b"<Error>Request has expired</Error>", method=method)
        if path in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if path in self.oversize:
            data = data + b"\0" * 100_000
        with self.lock:
            self.cdn_active += 1
            self.cdn_max_active = max(self.cdn_max_active, self.cdn_active)
        try:
            if self.cdn_delay and method == "GET":
                time.sleep(self.cdn_delay)
            return self._bytes(h, method, data, f'"{hashlib.sha256(data).hexdigest()}"', path, {})
        finally:
            with self.lock:
                self.cdn_active -= 1

    def _bytes(self, h, method, data, etag, path, extra):
        start = 0
        status = 200
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream", **extra}
        rng = h.headers.get("Range")
        if rng and not self.ignore_range:
            spec = rng.split("=", 1)[1]
            start = int(spec.split("-")[0])
            if start >= len(data):
                return self._send(h, 416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"}, method)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if method == "HEAD":
            return
        with self.lock:
            cut = self.drop_after.get(path)
            if cut and cut[1] > 0:
                self.drop_after[path] = (cut[0], cut[1] - 1)
            else:
                cut = None
        if cut:
            n = max(0, cut[0] - start)
            h.wfile.write(body[:n])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)  # both directions: the client sees a short body
            return
        h.wfile.write(body)
