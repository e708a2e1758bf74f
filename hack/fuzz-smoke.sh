#!/usr/bin/env bash
# Runs every fuzz target for a short while, one after the other, with one worker each:
# FUZZTIME each (default 5s). `make test` runs it after the tests (plain `go test`
# already replays every seed corpus); `make fuzz FUZZTIME=1m` runs it longer.
#
# A failing input is written to the package's testdata/fuzz/<target>/ and the script
# fails: fix the code, commit the input with the fix, and `go test` replays it.
# docs/fuzzing.md lists the targets and what each checks.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-5s}
# Go minimizes every input that finds new coverage, for up to a minute by default;
# on the slower targets that would eat the whole budget.
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-20x}
GO=${GO:-go}

targets=(
	"./internal/config FuzzParse"
	"./internal/xdsgen FuzzTranslate"
	"./internal/proxy/runtime FuzzApply"
	"./internal/proxy/runtime FuzzRouteMatch"
	"./internal/proxy/authz FuzzNormalizeDeny"
	"./internal/proxy/authz FuzzRBACHeader"
	"./internal/proxy/forward FuzzForwardHeaders"
	"./internal/proxy/jwt FuzzAuthenticate"
	"./internal/proxy/jwt FuzzJWKS"
	"./internal/ca/casvc FuzzCreateCertificate"
	"./internal/proxy/h1server FuzzServeConn"
)

start=$SECONDS
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	echo "fuzz: $pkg $name for $FUZZTIME"
	"$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" -parallel 1 "$pkg"
done
echo "fuzz: ${#targets[@]} targets in $((SECONDS - start))s"
