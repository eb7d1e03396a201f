"""A tiny Kubernetes API client for the benchmark harness (Python 3 standard library only).

The harness observes the cluster through this client (watches and GETs with the testenv
admin kubeconfig); the commands being measured (kubectl, kubectl-canary) run as separate
processes with their own kubeconfig.
"""

import base64
import http.client
import json
import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse


def _load_yaml_kubeconfig(path):
    """Reads the few fields we need from a kubeconfig without a YAML parser.

    testenv writes a flat, block-style kubeconfig (see scripts/testenv); `kubectl config
    view --raw -o json` would also do, but costs a process. We use kubectl when in doubt.
    """
    import subprocess

    out = subprocess.run(
        ["kubectl", "config", "view", "--raw", "--minify", "-o", "json", "--kubeconfig", path],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


class Kube:
    """HTTP(S) client for one API server, built from a kubeconfig."""

    def __init__(self, kubeconfig):
        cfg = _load_yaml_kubeconfig(kubeconfig)
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        self.server = cluster["server"]
        u = urllib.parse.urlparse(self.server)
        self.host, self.port = u.hostname, u.port or 443
        self._tmp = tempfile.mkdtemp(prefix="kcbench-tls-")
        os.chmod(self._tmp, 0o700)
        ctx = ssl.create_default_context()
        if "certificate-authority-data" in cluster:
            ca = os.path.join(self._tmp, "ca.crt")
            with open(ca, "wb") as f:
                f.write(base64.b64decode(cluster["certificate-authority-data"]))
            ctx.load_verify_locations(ca)
        elif "certificate-authority" in cluster:
            ctx.load_verify_locations(cluster["certificate-authority"])
        self.token = user.get("token")
        if "client-certificate-data" in user:
            crt = os.path.join(self._tmp, "client.crt")
            key = os.path.join(self._tmp, "client.key")
            with open(crt, "wb") as f:
                f.write(base64.b64decode(user["client-certificate-data"]))
            with open(key, "wb") as f:
                f.write(base64.b64decode(user["client-key-data"]))
            ctx.load_cert_chain(crt, key)
        elif "client-certificate" in user:
            ctx.load_cert_chain(user["client-certificate"], user["client-key"])
        self.ctx = ctx
        self.ca_data = cluster.get("certificate-authority-data")
        self._local = threading.local()

    # -- plumbing -------------------------------------------------------------------------

    def _conn(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def _headers(self, ctype=None):
        h = {"Accept": "application/json", "User-Agent": "kubectl-canary-bench"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if ctype:
            h["Content-Type"] = ctype
        return h

    def request(self, method, path, body=None, ctype="application/json", ok=(200, 201, 202)):
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
        for attempt in range(3):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=self._headers(ctype if data is not None else None))
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                self._local.conn = None
                try:
                    conn.close()
                except Exception:
                    pass
                if attempt == 2:
                    raise
                time.sleep(0.2)
                continue
            if resp.status not in ok:
                raise ApiError(resp.status, method, path, raw[:500].decode(errors="replace"))
            if resp.getheader("Content-Type", "").startswith("application/json"):
                return json.loads(raw)
            return raw.decode(errors="replace")
        return None

    def get(self, path, ok=(200,)):
        return self.request("GET", path, ok=ok)

    def get_or_none(self, path):
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def post(self, path, body):
        return self.request("POST", path, body)

    def delete(self, path, body=None):
        try:
            return self.request("DELETE", path, body, ok=(200, 202))
        except ApiError as e:
            if e.status != 404:
                raise
        return None

    def patch(self, path, body, kind="merge"):
        ctype = {"merge": "application/merge-patch+json",
                 "strategic": "application/strategic-merge-patch+json"}[kind]
        return self.request("PATCH", path, body, ctype=ctype)

    def metrics(self):
        return self.request("GET", "/metrics")

    def ready(self):
        try:
            return self.request("GET", "/readyz") is not None
        except Exception:
            return False

    # -- watches --------------------------------------------------------------------------

    def watch(self, path, rv, stop, on_event, conns, timeout_seconds=60):
        """Streams watch events of `path` from resourceVersion `rv` until `stop` is set (the
        caller then shuts down the sockets in `conns`) or the server ends the watch.

        Calls on_event(type, object, t_monotonic). Returns the last resourceVersion, or None
        when the watch must be relisted (410 Gone).
        """
        sep = "&" if "?" in path else "?"
        q = f"{path}{sep}watch=1&allowWatchBookmarks=true&timeoutSeconds={timeout_seconds}&resourceVersion={rv}"
        # blocking reads: a read timeout in the middle of a chunk would break the framing
        conn = self._conn(timeout=None)
        conns.append(conn)
        try:
            conn.request("GET", q, headers=self._headers())
            resp = conn.getresponse()
            if resp.status != 200:
                resp.read()
                return None
            buf = b""
            while not stop.is_set():
                try:
                    chunk = resp.read1(65536)
                except (OSError, http.client.HTTPException, ValueError):
                    return rv
                if not chunk:
                    return rv
                t = time.monotonic()
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    typ, obj = ev.get("type"), ev.get("object", {})
                    if typ == "ERROR":
                        return None
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if typ != "BOOKMARK":
                        on_event(typ, obj, t)
            return rv
        finally:
            try:
                conns.remove(conn)
            except ValueError:
                pass
            try:
                conn.close()
            except Exception:
                pass


class ApiError(Exception):
    def __init__(self, status, method, path, body):
        super().__init__(f"{method} {path}: HTTP {status}: {body}")
        self.status = status


class Informer:
    """List+watch of one collection, kept in a dict by name, with change notifications.

    Records for every object the monotonic time it was first seen and, through the optional
    `observe` callback, anything else the benchmark wants to timestamp.
    """

    def __init__(self, kube, path, observe=None, cond=None):
        self.kube, self.path, self.observe = kube, path, observe
        self.items = {}
        self.first_seen = {}
        self.gone = {}
        self.cond = cond or threading.Condition()
        self.stop = threading.Event()
        self.synced = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.synced.wait(30):
            raise RuntimeError(f"informer {path}: no initial list")

    def _apply(self, typ, obj, t):
        name = obj["metadata"]["name"]
        with self.cond:
            if typ == "DELETED":
                self.items.pop(name, None)
                self.gone.setdefault(name, t)
            else:
                self.items[name] = obj
                self.first_seen.setdefault(name, t)
            if self.observe:
                self.observe(typ, obj, t)
            self.cond.notify_all()

    def _run(self):
        while not self.stop.is_set():
            try:
                lst = self.kube.get(self.path)
            except Exception:
                time.sleep(0.3)
                continue
            t = time.monotonic()
            with self.cond:
                names = set()
                for obj in lst.get("items", []):
                    names.add(obj["metadata"]["name"])
                    self._apply("ADDED", obj, t)
                for name in list(self.items):
                    if name not in names:
                        self._apply("DELETED", self.items[name], t)
            self.synced.set()
            rv = lst["metadata"]["resourceVersion"]
            while rv is not None and not self.stop.is_set():
                try:
                    rv = self.kube.watch(self.path, rv, self.stop, self._apply, self.conns)
                except Exception:
                    time.sleep(0.2)
                    break

    def wait_for(self, pred, timeout):
        """Waits until pred(items) is true; returns the monotonic time it became true, or None."""
        return wait_until(self.cond, lambda: pred(self.items), timeout)

    def snapshot(self):
        with self.cond:
            return dict(self.items)

    def close(self):
        self.stop.set()
        for conn in list(self.conns):
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass


def wait_until(cond, pred, timeout):
    """Waits on `cond` (shared by informers) until pred() is true; returns the monotonic time
    it was seen true, or None on timeout."""
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            if pred():
                return time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            cond.wait(min(left, 0.5))
