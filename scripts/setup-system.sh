#!/usr/bin/env bash
# Optional system pieces that give codetune more languages and its sandbox (bubblewrap); each is skipped with a
# note when it cannot be had.
# codetune itself reports a missing toolchain or corpus as an `error:` with this hint, never as a pass.
set -u
have() { command -v "$1" >/dev/null 2>&1; }
for tool in javac java node gcc g++; do
  have "$tool" || echo "note: '$tool' not found; that language will report 'unavailable'" >&2
done
# bubblewrap isolates every sandboxed program (codetune falls back to weaker isolation, and says so, without it).
if ! have bwrap && have apt-get && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1)) || \
   echo "note: could not install bubblewrap; sandboxed programs get the fallback isolation" >&2
fi
have bwrap || echo "note: 'bwrap' not found (Debian: apt-get install bubblewrap); sandboxed programs get the fallback isolation" >&2
# The JDK's own sources are the default Java corpus.
if [ ! -f /usr/lib/jvm/openjdk-17/lib/src.zip ] && have apt-get && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q openjdk-17-source >/dev/null 2>&1 || \
   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q openjdk-17-source >/dev/null 2>&1)) || \
   echo "note: could not install openjdk-17-source; pass a Java source path with data.source=..." >&2
fi
exit 0
