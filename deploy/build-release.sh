#!/usr/bin/env bash
# Builds the release agentq with the Swift runtime linked in statically and lays out a relocatable tree:
#   OUTDIR/bin/agentq      the binary (needs only libc, libm, libstdc++, libgcc_s, zlib at run time)
#   OUTDIR/sql/*.sql       the migrations `agentq migrate` applies
# Copy OUTDIR anywhere (e.g. /opt/agentq): `agentq migrate` finds OUTDIR/sql by walking up from the
# executable, or set AGENTQ_ROOT=OUTDIR.
#
# Usage: deploy/build-release.sh OUTDIR
# Environment:
#   AGENTQ_SCRATCH_PATH  SwiftPM build folder (default: the project's .build, which reuses the
#                        dependency checkouts already there; a new folder fetches them again)
#   AGENTQ_NO_STRIP=1    keep debug info (by default it is stripped: the binary shrinks several-fold,
#                        crash backtraces still name functions)
# Used by deploy/Dockerfile's builder stage, and runnable as is on a machine with Swift 6.1+.
set -euo pipefail

out=${1:?usage: deploy/build-release.sh OUTDIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

flags=(-c release --product agentq --static-swift-stdlib)
[ -n "${AGENTQ_SCRATCH_PATH:-}" ] && flags+=(--scratch-path "$AGENTQ_SCRATCH_PATH")

swift build "${flags[@]}"
bin=$(swift build "${flags[@]}" --show-bin-path)/agentq
[ -x "$bin" ] || { echo "build-release: $bin was not built" >&2; exit 1; }

mkdir -p "$out/bin" "$out/sql"
out=$(cd "$out" && pwd)
install -m 0755 "$bin" "$out/bin/agentq"
install -m 0644 sql/*.sql "$out/sql/"
if [ "${AGENTQ_NO_STRIP:-}" != 1 ] && command -v strip >/dev/null; then
  strip --strip-debug "$out/bin/agentq"
fi

# A static-stdlib build must not load the Swift runtime from the toolchain at run time.
if command -v ldd >/dev/null && ldd "$out/bin/agentq" | grep -q 'libswift\|libFoundation\|libdispatch'; then
  echo "build-release: $out/bin/agentq still links Swift runtime libraries dynamically:" >&2
  ldd "$out/bin/agentq" >&2
  exit 1
fi
echo "build-release: $out/bin/agentq and $(find "$out/sql" -name '*.sql' | wc -l) migrations in $out/sql"
