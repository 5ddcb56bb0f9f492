#!/usr/bin/env bash
# Runs the whole test suite: build once, run every test project, and print "N passed, M failed".
# Usage: scripts/test.sh [extra dotnet test args]
set -uo pipefail
cd "$(dirname "$0")/.."
results="$(pwd)/artifacts/test-results"
rm -rf "$results" && mkdir -p "$results"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

if ! dotnet build RagOrleans.sln -c Release -nologo -v quiet; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

# The web page's end-to-end tests drive headless Chromium through the system chromedriver: install the Debian
# packages when missing (as root). Only when that is impossible are those tests skipped, saying why; a browser
# missing without this script's say-so fails them.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    export RAG_BROWSER_UNAVAILABLE="chromium or chromedriver is missing and installing them needs root"
  else
    echo "installing chromium chromium-driver" >&2
    if ! { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium chromium-driver >/dev/null; } >&2; then
      export RAG_BROWSER_UNAVAILABLE="apt-get could not install chromium and chromium-driver"
    fi
  fi
  echo "${RAG_BROWSER_UNAVAILABLE:-chromium installed}" >&2
fi

# Integration tests talk to real PostgreSQL and Redis: start throwaway servers on loopback (installing the
# Debian packages if missing) and stop them afterwards, whatever happens.
if ! bash scripts/test-services.sh up >&2; then
  echo "could not start PostgreSQL and Redis for the integration tests"
  echo "0 passed, 1 failed"
  exit 1
fi
trap 'bash scripts/test-services.sh down >&2 || true' EXIT
set -a
# shellcheck disable=SC1091
. artifacts/test-services.env
set +a

status=0
for project in tests/*/*.csproj; do
  name=$(basename "$project" .csproj)
  echo "=== $name"
  dotnet test "$project" -c Release --no-build -nologo \
    --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
    --logger "console;verbosity=normal" "$@" || status=1
done

passed=0; failed=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
# A project that crashed before writing results counts as a failure.
expected=$(ls tests/*/*.csproj | wc -l)
found=$(ls "$results"/*.trx 2>/dev/null | wc -l)
if [ "$found" -lt "$expected" ]; then failed=$((failed + expected - found)); status=1; fi
[ "$failed" -gt 0 ] && status=1
# Name the failed tests just above the summary, where a reader of only the log's tail still sees them.
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  grep -o '<UnitTestResult [^>]*outcome="Failed"[^>]*>' "$trx" | sed -n 's/.* testName="\([^"]*\)".*/FAILED \1/p'
done
echo "$passed passed, $failed failed"
exit $status
