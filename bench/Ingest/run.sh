#!/usr/bin/env bash
# End-to-end ingestion of every file under shared/data/docs through the public HTTP API (multipart uploads,
# content sniffing), against a running service: documents/s, chunks/s, and the share of server time per
# pipeline step read from the service's own /metrics (rag_ingestion_step histogram sums, before vs after).
# Usage: bench/Ingest/run.sh <service url> <operator key> [docs dir] [concurrency]
set -euo pipefail
url=${1:?service url}; op=${2:?operator key}
docs=${3:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data/docs}; conc=${4:-4}
tenant="ingest-$(date +%s)"
admin=$(curl -sf -X POST "$url/v1/tenants" -H "Authorization: Bearer $op" -H 'Content-Type: application/json' \
  -d "{\"id\":\"$tenant\",\"name\":\"ingest bench\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["adminKey"])')
curl -sf -X POST "$url/v1/collections" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d '{"name":"docs"}' >/dev/null
steps() { curl -sf "$url/metrics" | grep -E '^rag_ingestion_step[a-z_]*_(sum|count)\{' || true; }
before=$(steps)
files=$(find "$docs" -type f ! -name README.md | sort)
n=$(wc -l <<<"$files")
start=$(date +%s.%N)
export url admin
xargs -P "$conc" -I{} sh -c 'curl -s -o /dev/null -w "%{http_code}\n" -X POST "$url/v1/collections/docs/documents" -H "Authorization: Bearer $admin" -F "file=@{}"' <<<"$files" | sort | uniq -c
while :; do
  summary=$(curl -sf "$url/v1/collections/docs/documents?limit=1000" -H "Authorization: Bearer $admin" | python3 -c '
import json,sys; d=json.load(sys.stdin)["documents"]
s={}
for x in d: s[x["status"]]=s.get(x["status"],0)+1
print(len(d), s.get("indexed",0)+s.get("failed",0), s.get("indexed",0), s.get("failed",0), sum(x["chunkCount"] for x in d))')
  read -r total done indexed failed chunks <<<"$summary"
  [ "$done" -ge "$total" ] && break
  sleep 1
done
end=$(date +%s.%N)
after=$(steps)
python3 - "$start" "$end" "$n" "$indexed" "$failed" "$chunks" <<PY
import sys,re
start,end,n,indexed,failed,chunks=float(sys.argv[1]),float(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]),int(sys.argv[5]),int(sys.argv[6])
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
el=end-start
print(f"{n} files uploaded; documents: {indexed} indexed, {failed} failed, {chunks} chunks in {el:.1f} s: {(indexed+failed)/el:.2f} docs/s, {chunks/el:.1f} chunks/s")
for s,v in sorted(secs.items(), key=lambda x:-x[1]):
    print(f"  {s:6s} {v:8.2f} s server time  {100*v/total:5.1f} %")
PY
