#!/usr/bin/env bash
# End-to-end ingestion of every file under shared/data/docs through the public HTTP API (multipart uploads,
# content sniffing), against a running service: documents/s, chunks/s, and the share of server time per
# pipeline step read from the service's own /metrics (rag_ingestion_step histogram sums, before vs after).
# With PROBE_QUERIES=1 it also sends one uncached search every 0.25 s while ingesting and prints their latency
# percentiles: how long a user's query waits behind document work on the same model. MODEL=minilm-int8 (any catalog
# model name) creates the collection with that embedding model. WORKERS: the service's embedding batcher workers
# (default: nproc, the service's own default). WARMUP: files ingested untimed into a scratch collection first (default 96).
# LIMIT_DB: the service's rag.db, to measure the embedding limit on the ingested chunks right after (see the end); LIMIT_RETIMES
# (default 3): how many more times the limit grid's three best settings are timed after the pick (0: the grid alone).
# JSON=FILE writes the summary as JSON.
# Usage: bench/Ingest/run.sh <service url> <operator key> [docs dir] [concurrency]
set -euo pipefail
# The interpreter behind python3, resolved once: a version manager's shim (pyenv's on the benchmark machine) is a shell
# script that cost ~0.4 s of CPU per start, and the poller starts while the service is ingesting.
py=$(python3 -c 'import sys; print(sys.executable)')
url=${1:?service url}; op=${2:?operator key}
docs=${3:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data/docs}; conc=${4:-4}
tenant="ingest-$(date +%s)"
admin=$(curl -sf -X POST "$url/v1/tenants" -H "Authorization: Bearer $op" -H 'Content-Type: application/json' \
  -d "{\"id\":\"$tenant\",\"name\":\"ingest bench\"}" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["adminKey"])')
curl -sf -X POST "$url/v1/collections" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d "{\"name\":\"docs\"${MODEL:+,\"model\":\"$MODEL\"}}" >/dev/null
steps() { curl -sf "$url/metrics" | grep -E '^rag_ingestion_step[a-z_]*_(sum|count)\{' || true; }
# Seconds the model spent on document texts (the batcher's per-call timer): chunks / that = the model's own rate on
# exactly these chunks, so chunks/s end to end over it is the share of the embedding limit the pipeline reaches.
model_busy() { curl -sf "$url/metrics" | awk '/^rag_embedding_duration_seconds_sum\{/ && /purpose="document"/ { s += $NF } END { printf "%.3f", s + 0 }'; }
# One uploading process with a thread per concurrent upload (not a curl process per file: with 4 at a time the curl,
# sh and xargs starts took ~18 % of the 2 cores from the service being measured). Prints the status counts.
upload() {
  local list; list=$(mktemp); cat >"$list"
  "$py" - "$url" "$admin" "$1" "$2" "$list" <<'PY'
import collections, concurrent.futures, os, sys, time, urllib.error, urllib.request, uuid
url, key, conc, collection, listed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def send(path):
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        data = f.read()
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{os.path.basename(path)}"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n').encode()
    body = head + data + f'\r\n--{boundary}--\r\n'.encode()
    req = urllib.request.Request(f"{url}/v1/collections/{collection}/documents", data=body, method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req) as r:
            r.read()
            return r.status, time.perf_counter() - started
    except urllib.error.HTTPError as e:
        return e.code, time.perf_counter() - started
paths = [l.strip() for l in open(listed) if l.strip()]
with concurrent.futures.ThreadPoolExecutor(conc) as pool:
    results = list(pool.map(send, paths))
counts = collections.Counter(code for code, _ in results)
for code, count in sorted(counts.items()):
    print(f"{count:7d} {code}")
# How long an upload waited for its 202 while earlier documents were being ingested: the write path's latency.
accepted = sorted(1000 * t for code, t in results if code == 202)
if accepted:
    p = lambda q: accepted[min(len(accepted) - 1, int(q * len(accepted)))]
    print(f"upload accepted in p50 {p(0.5):.1f} ms, p90 {p(0.9):.1f} ms, p99 {p(0.99):.1f} ms, max {accepted[-1]:.1f} ms")
PY
  rm -f "$list"
}
# Waits until every document of the collection is indexed or failed; prints "total done indexed failed chunks first last"
# (first: the earliest document's creation, last: the latest one's final update, both epoch seconds on the service's clock).
wait_indexed() {
  "$py" - "$url" "$admin" "$1" <<'PY'
import datetime, json, sys, time, urllib.request
url, key, collection = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(f"{url}/v1/collections/{collection}/documents?limit=1000", headers={"Authorization": f"Bearer {key}"})
while True:
    d = json.load(urllib.request.urlopen(req))["documents"]
    s = {}
    for x in d: s[x["status"]] = s.get(x["status"], 0) + 1
    done = s.get("indexed", 0) + s.get("failed", 0)
    if done >= len(d):
        # The service's own clock: the first document's creation (its upload accepted) and the last one's final
        # update (indexed or failed), so the span leaves out the client's start and the poll interval.
        at = lambda v: datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
        first, last = min(at(x["createdAt"]) for x in d), max(at(x["updatedAt"]) for x in d)
        print(len(d), done, s.get("indexed", 0), s.get("failed", 0), sum(x["chunkCount"] for x in d), f"{first:.3f}", f"{last:.3f}")
        break
    time.sleep(0.5)
PY
}
files=$(find "$docs" -type f ! -name README.md | sort)
n=$(wc -l <<<"$files")

# A fresh process spends seconds of CPU compiling its hot paths (the JIT's tier-1 thread took ~7 % of a 26 s run), which
# a running service paid long ago: WARMUP documents (default 96, 0 for none) are ingested into a scratch collection
# first. Code run once per document is recompiled twice on its way to optimized code (after ~30 calls with
# instrumentation for dynamic PGO, after ~30 more optimized): with 24 documents the JIT took 10 % of the machine in the
# timed uploads' first 3 s, with 48 it still took 1.1-1.9 % of the timed run, with 96 0.3-0.5 % (session 15). They are measured
# files picked evenly over the set, with their letters rotated (ROT13; in HTML and XML only the text between tags):
# the same Markdown tables, code fences and markup, so the parsers' code for them is compiled before the clock starts
# (shuffled words, as before, left the table and code-block parsers to the timed run), and no chunk of the timed run
# is a cache hit from them. Files that are not text (PDF, DOCX) are left out of the warm-up: their shuffled bytes,
# as sent before, were refused as an unsupported type anyway.
warmup=${WARMUP:-96}
if [ "$warmup" -gt 0 ]; then
  curl -sf -X POST "$url/v1/collections" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d "{\"name\":\"warmup\"${MODEL:+,\"model\":\"$MODEL\"}}" >/dev/null
  warm_dir=$(mktemp -d)
  "$py" -c '
import os, re, sys
out, count = sys.argv[1], int(sys.argv[2])
paths = [l.strip() for l in sys.stdin if l.strip()]
count = min(count, len(paths))
picked = [paths[i * len(paths) // count] for i in range(count)]
rot = str.maketrans("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM")
for i, path in enumerate(picked):
    name, ext = os.path.splitext(path)
    try:
        text = open(path, encoding="utf-8").read()
    except UnicodeDecodeError:
        text = None
    if text is not None and ext.lower() in (".md", ".markdown", ".txt", ".html", ".htm", ".xml"):
        # Same structure (headings, tables, code fences, markup), so the parsers run the code paths the timed files
        # need; letters rotated, so no chunk repeats a timed one (the chunk cache would answer it).
        # Entity references (&amp;) stay as they are, or the XML would no longer parse.
        rotate = lambda t: re.sub(r"(&#?[A-Za-z0-9]+;)|([^&]+|&)", lambda m: m.group(1) or m.group(2).translate(rot), t)
        if ext.lower() in (".html", ".htm", ".xml"):
            text = re.sub(r">([^<]+)<", lambda m: ">" + rotate(m.group(1)) + "<", text)
        else:
            text = rotate(text)
        open(f"{out}/warmup-{i}{ext}", "w", encoding="utf-8").write(text)
' "$warm_dir" "$warmup" <<<"$files"
  find "$warm_dir" -type f | upload "$conc" warmup >/dev/null
  rm -rf "$warm_dir"
  # The exporter's code, too, is compiled on first use: scrape once while the warm-up still runs.
  model_busy >/dev/null
  read -r _ _ warm_indexed _ warm_chunks _ _ <<<"$(wait_indexed warmup)"
  echo "warm-up: $warm_indexed documents, $warm_chunks chunks (not timed)"
fi
before=$(steps)
busy_before=$(model_busy)
start=$(date +%s.%N)
probe_log=$(mktemp); probe_pid=
if [ "${PROBE_QUERIES:-0}" = 1 ]; then
  words=(replication membership cluster grain silo reminder stream journal storage placement timer activation)
  ( i=0; while :; do
      i=$((i+1)); q="${words[$((i % 12))]} ${words[$((i * 7 % 12))]} probe $i"
      curl -s -o /dev/null -w "%{http_code} %{time_total}\n" -X POST "$url/v1/collections/docs/search" \
        -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d "{\"query\":\"$q\",\"topK\":5}" >>"$probe_log"
      sleep 0.25
    done ) &
  probe_pid=$!
fi
upload "$conc" docs <<<"$files"
# One polling process for the whole wait (not a curl and an interpreter a second).
summary=$(wait_indexed docs)
read -r total done indexed failed chunks first last <<<"$summary"
end=$(date +%s.%N)
after=$(steps)
busy_after=$(model_busy)
if [ -n "$probe_pid" ]; then
  kill "$probe_pid" 2>/dev/null; wait "$probe_pid" 2>/dev/null || true
  "$py" - "$probe_log" <<'PY'
import sys
rows=[l.split() for l in open(sys.argv[1]) if l.strip()]
ok=sorted(float(t)*1000 for c,t in rows if c=='200')
bad=len(rows)-len(ok)
if ok:
    p=lambda q: ok[min(len(ok)-1,int(q*len(ok)))]
    print(f"searches during ingestion: {len(ok)} ok, {bad} not 200; latency p50 {p(0.5):.0f} ms, p90 {p(0.9):.0f} ms, p99 {p(0.99):.0f} ms, max {ok[-1]:.0f} ms")
PY
fi
rm -f "$probe_log"
# LIMIT_DB=<the service's Rag:DataDir>/rag.db: the embedding limit on exactly the chunks just ingested, measured right
# after in this run (bench/Embed's direct grid on those texts, best setting), and ingest's share of it.
limit_json=
if [ -n "${LIMIT_DB:-}" ]; then
  limit_json=$(mktemp)
  root=$(cd "$(dirname "$0")/../.." && pwd)
  dotnet build -c Release "$root/bench/Embed" >/dev/null
  dotnet "$root/bench/Embed/bin/Release/net10.0/RagOrleans.Bench.Embed.dll" --model "${MODEL:-minilm}" --rounds 1 --short 64 --direct-only 1 \
    --retime-best "${LIMIT_RETIMES:-3}" --chunks "$chunks" --ingested-db "$LIMIT_DB" --ingested-collection docs --latency 10 --json "$limit_json" >/dev/null
fi
"$py" - "$start" "$end" "$n" "$indexed" "$failed" "$chunks" "$busy_before" "$busy_after" "$first" "$last" "$limit_json" "${JSON:-}" <<PY
import json,sys,re
start,end,n,indexed,failed,chunks=float(sys.argv[1]),float(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]),int(sys.argv[5]),int(sys.argv[6])
busy=float(sys.argv[8])-float(sys.argv[7])
first,last,limit_json,json_out=float(sys.argv[9]),float(sys.argv[10]),sys.argv[11],sys.argv[12]
def parse(text):
    out={}
    for line in text.splitlines():
        m=re.match(r'^(\S+?)_(sum|count)\{(.*)\} (\S+)',line)
        if not m: continue
        step=re.search(r'step="([^"]+)"',m.group(3))
        if step: out[(step.group(1),m.group(2))]=out.get((step.group(1),m.group(2)),0)+float(m.group(4))
    return out
b=parse("""$before"""); a=parse("""$after""")
secs={k[0]:a[k]-b.get(k,0) for k in a if k[1]=='sum'}
total=sum(secs.values()) or 1
# The headline span is the service's: from the first upload it accepted to the last document it finished. The client's
# span also holds its interpreter start and up to one poll interval, which are not the service's time.
el=last-first
client=end-start
summary={"benchmark":"ingest","files":n,"indexed":indexed,"failed":failed,"chunks":chunks,"serviceSeconds":el,"clientSeconds":client,
         "chunksPerSecond":chunks/el,"clientChunksPerSecond":chunks/client,"stepSeconds":secs}
print(f"{n} files uploaded; documents: {indexed} indexed, {failed} failed, {chunks} chunks in {el:.1f} s: {(indexed+failed)/el:.2f} docs/s, {chunks/el:.1f} chunks/s "
      f"(service clock: first upload accepted {first-start:.2f} s after the client started, last document done {end-last:.2f} s before it saw so; client clock {client:.1f} s, {chunks/client:.1f} chunks/s)")
if busy > 0:
    # The batcher runs WORKERS model calls at once (one per core by default), each timed on its own.
    workers=int("${WORKERS:-$(nproc)}")
    alone=chunks/(busy/workers)
    summary.update({"modelBusySeconds":busy,"workers":workers,"modelBusyShare":busy/el/workers,"modelChunksPerBusySecond":alone})
    print(f"model busy on document texts {busy:.1f} s over {workers} workers = {100*busy/el/workers:.1f} % of their wall time; "
          f"the model alone at that speed: {alone:.1f} chunks/s, ingest at {chunks/el/alone:.2f}x of it")
for s,v in sorted(secs.items(), key=lambda x:-x[1]):
    print(f"  {s:6s} {v:8.2f} s server time  {100*v/total:5.1f} %")
if limit_json:
    report=json.load(open(limit_json))
    w=next(x for x in report["workloads"] if x["name"]=="ingested chunks")
    best=max(w["directGrid"], key=lambda g: g["textsPerSecond"])
    limit=best["textsPerSecond"]
    summary.update({"limitChunksPerSecond":limit,"limitSetting":best["setting"],"shareOfLimit":chunks/el/limit})
    print(f"embedding limit on these {w['texts']} chunks ({w['meanTokens']:.1f} tokens on average), best direct setting, measured right after: "
          f"{limit:.1f} chunks/s; ingest = {chunks/el/limit:.2f}x of it (client clock {chunks/client/limit:.2f}x)")
    # The grid's best is the largest of a dozen noisy timings: it overstates its setting (the winner's curse), and a
    # setting can win by noise alone. bench/Embed times the grid's three best settings LIMIT_RETIMES more times each
    # (default 3), interleaved, after the pick; the best of their medians is a limit with little of that bias.
    retimed=sorted(w.get("retimed") or [])
    if retimed:
        unbiased=retimed[len(retimed)//2] if len(retimed)%2 else (retimed[len(retimed)//2-1]+retimed[len(retimed)//2])/2
        summary.update({"limitRetimedSetting":w["retimedSetting"]["label"],"limitRetimed":retimed,"limitRetimedMedian":unbiased,"shareOfRetimedLimit":chunks/el/unbiased})
        print(f"the grid's three best settings timed {len(retimed)} more times each after the pick: best median {unbiased:.1f} chunks/s ({w['retimedSetting']['label']}; "
              f"{unbiased/limit:.2f}x the grid's best figure); ingest = {chunks/el/unbiased:.2f}x of it")
if json_out:
    json.dump(summary, open(json_out,"w"), indent=2)
PY
[ -z "$limit_json" ] || rm -f "$limit_json"
