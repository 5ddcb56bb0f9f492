#!/usr/bin/env bash
# Embedding reuse on re-ingestion, against a running service: a text of N KB (default 200 KB of war-and-peace.txt) is
# ingested, then re-ingested under the same id with one paragraph changed (the indexed version's vectors are reused),
# then ingested under a new id with one paragraph appended (the silo's chunk cache answers). Per phase: wall time,
# chunks, and where the chunk embeddings came from (the service's rag_ingestion_chunk_embeddings counter by source).
# Usage: bench/Ingest/reuse.sh <service url> <operator key> [text file] [KB]
set -euo pipefail
url=${1:?service url}; op=${2:?operator key}
file=${3:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data/docs/txt/war-and-peace.txt}; kb=${4:-200}
tenant="reuse-$(date +%s)"
admin=$(curl -sf -X POST "$url/v1/tenants" -H "Authorization: Bearer $op" -H 'Content-Type: application/json' \
  -d "{\"id\":\"$tenant\",\"name\":\"reuse bench\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["adminKey"])')
curl -sf -X POST "$url/v1/collections" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d '{"name":"docs"}' >/dev/null
python3 - "$url" "$admin" "$file" "$kb" <<'PY'
import json, re, sys, time, urllib.request
url, key, path, kb = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
text = open(path, encoding="utf-8-sig").read()[: kb * 1024]
text = text[: text.rfind("\n\n")]
paras = text.split("\n\n")

def counters():
    body = urllib.request.urlopen(url + "/metrics").read().decode()
    out = {}
    for line in body.splitlines():
        m = re.match(r'^rag_ingestion_chunk_embeddings[a-z_]*\{(.*)\} (\S+)', line)
        if m:
            s = re.search(r'source="([^"]+)"', m.group(1)).group(1)
            out[s] = out.get(s, 0) + float(m.group(2))
    return out

def ingest(doc_id, body_text):
    req = urllib.request.Request(f"{url}/v1/collections/docs/documents?wait=true&timeoutSeconds=3600",
        data=json.dumps({"id": doc_id, "text": body_text}).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    before = counters(); t = time.time()
    doc = json.load(urllib.request.urlopen(req))
    el = time.time() - t; after = counters()
    d = {k: int(after.get(k, 0) - before.get(k, 0)) for k in ("model", "indexed", "cache")}
    return doc, el, d

rows = []
doc, el, d = ingest("doc", text)
rows.append(("first ingestion", doc, el, d))
mid = len(paras) // 2
while len(paras[mid]) < 200: mid += 1
edited = paras.copy(); edited[mid] = edited[mid].replace(" the ", " a ", 1) if " the " in edited[mid] else edited[mid] + " (edited)"
doc, el, d = ingest("doc", "\n\n".join(edited))
rows.append(("same id, one paragraph changed", doc, el, d))
doc, el, d = ingest("copy", "\n\n".join(paras + ["An appended closing paragraph that no other document has."]))
rows.append(("new id, one paragraph appended", doc, el, d))
print(f"text: {len(text)} chars of {path.split('/')[-1]}, {len(paras)} paragraphs")
print(f"{'phase':34s} {'status':8s} {'chunks':>6s} {'model':>6s} {'indexed':>7s} {'cache':>6s} {'reused':>7s} {'seconds':>8s}")
base = rows[0][2]
for name, doc, el, d in rows:
    reused = (d['indexed'] + d['cache']) / max(1, doc['chunkCount'])
    print(f"{name:34s} {doc['status']:8s} {doc['chunkCount']:6d} {d['model']:6d} {d['indexed']:7d} {d['cache']:6d} {100*reused:6.1f}% {el:8.2f}  ({base/el:.1f}x faster)" if name != rows[0][0] else
          f"{name:34s} {doc['status']:8s} {doc['chunkCount']:6d} {d['model']:6d} {d['indexed']:7d} {d['cache']:6d} {100*reused:6.1f}% {el:8.2f}")
PY
