#!/usr/bin/env python3
"""Search latency with and without the request-rate check, and throughput under load.

Starts two real frontends (embedded mode) from the Release build: one enforcing rate limits (the tenant
limited to --rpm requests per minute for the tenant and for the user, so every request spends a leased token
and a lease goes to the quota grain every 10% of the minute's budget, at most 1000 tokens), one with
Rag:EnforceRateLimits=false. Rounds are interleaved so machine load lands on both. Run from the checkout
after `dotnet build RagOrleans.sln -c Release`.
"""
import argparse, http.client, json, os, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DLL = os.path.join(ROOT, "src", "Frontend", "bin", "Release", "net10.0", "RagOrleans.Frontend.dll")
OP = "bench-operator-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, name, enforce, max_lease=None):
        self.name, self.port = name, free_port()
        env = dict(os.environ, Rag__DataDir=tempfile.mkdtemp(prefix="quota-bench-"), Rag__OperatorKey=OP,
                   Orleans__SiloPort=str(free_port()), Orleans__GatewayPort=str(free_port()),
                   Rag__EnforceRateLimits="true" if enforce else "false", Logging__LogLevel__Default="Warning")
        if max_lease:
            env["Rag__MaxRateLease"] = str(max_lease)
        self.proc = subprocess.Popen(["dotnet", DLL, "--urls", f"http://127.0.0.1:{self.port}"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=os.path.dirname(DLL))
        for _ in range(300):
            try:
                if self.call("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(name + " did not start")

    def call(self, method, path, body=None, key=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, (json.loads(data) if data else None)

    def setup(self, rpm, docs):
        status, t = self.call("POST", "/v1/tenants", {"id": "bench"}, OP)
        assert status == 201, (status, t)
        self.key = t["adminKey"]
        if rpm:
            status, body = self.call("PUT", "/v1/tenants/bench/limits", {"requestsPerMinute": rpm, "userRequestsPerMinute": rpm}, OP)
            assert status == 200, body
        assert self.call("POST", "/v1/collections", {"name": "c"}, self.key)[0] == 201
        for i, text in enumerate(docs):
            status, body = self.call("POST", "/v1/collections/c/documents?wait=true", {"id": f"d{i}", "text": text}, self.key)
            assert status == 200, body

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def timed_searches(svc, conn, n, mode):
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        status, _ = svc.call("POST", "/v1/collections/c/search", {"query": f"ocean tides {i % 7}", "topK": 5, "mode": mode}, svc.key, conn)
        out.append((time.perf_counter() - t0) * 1000)
        assert status == 200, status
    return out


def throughput(svc, seconds, threads, mode):
    count, stop = [0] * threads, time.perf_counter() + seconds
    refused = [0] * threads

    def work(k):
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=120)
        while time.perf_counter() < stop:
            status, _ = svc.call("POST", "/v1/collections/c/search", {"query": "ocean tides", "topK": 5, "mode": mode}, svc.key, conn)
            count[k] += status == 200
            refused[k] += status == 429
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return sum(count) / seconds, sum(refused)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=200)
    ap.add_argument("--rpm", type=int, default=10_000_000)
    ap.add_argument("--mode", default="keyword")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--max-lease", type=int, default=None, help="tokens per lease for the 'with' frontend (1 = a grain call per request)")
    a = ap.parse_args()
    docs = [f"Note {i}: the moon pulls the ocean and the tides rise and fall; item {i} is about topic {i % 5}." for i in range(30)]
    load0 = os.getloadavg()
    on, off = Service("with", True, a.max_lease), Service("without", False)
    try:
        on.setup(a.rpm, docs)
        off.setup(None, docs)
        conns = {s.name: http.client.HTTPConnection("127.0.0.1", s.port, timeout=120) for s in (on, off)}
        for s in (on, off):
            timed_searches(s, conns[s.name], 200, a.mode)
        lat = {"with": [], "without": []}
        ratios = []
        for r in range(a.rounds):
            order = (on, off) if r % 2 == 0 else (off, on)
            p50 = {}
            for s in order:
                xs = timed_searches(s, conns[s.name], a.per_round, a.mode)
                lat[s.name] += xs
                p50[s.name] = statistics.median(xs)
            ratios.append(p50["with"] / p50["without"])
        res = {k: {"p50_ms": round(statistics.median(v), 3), "p95_ms": round(sorted(v)[int(len(v) * 0.95)], 3)} for k, v in lat.items()}
        res["paired_p50_ratio_median"] = round(statistics.median(ratios), 4)
        res["p50_overhead_ms"] = round(res["with"]["p50_ms"] - res["without"]["p50_ms"], 3)
        for s in (off, on):
            rps, refused = throughput(s, a.seconds, a.threads, a.mode)
            res[s.name]["throughput_rps"] = round(rps, 1)
            res[s.name]["refused"] = refused
        res["settings"] = vars(a)
        res["loadavg_start_end"] = [load0, os.getloadavg()]
        print(json.dumps(res, indent=2))
    finally:
        on.stop()
        off.stop()


if __name__ == "__main__":
    sys.exit(main())
