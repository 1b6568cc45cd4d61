#!/usr/bin/env bash
# Runs every Go native fuzz target for a fixed time and prints how many
# inputs each one tried.
#
#   FUZZTIME=60s ./fuzz.sh                 # every target, 60 s each
#   ./fuzz.sh FuzzParseCompact             # one target (default 10s)
#   FUZZPARALLEL=2 ./fuzz.sh               # workers per target (default 1)
#   FUZZMINIMIZE=60s ./fuzz.sh             # time to minimise each new input (default 5s;
#                                          # go test's own default, 60s, eats short runs)
#
# New failing inputs land in <package>/testdata/fuzz/<target>/ (go test's
# own behaviour); commit them as regression seeds once the bug is fixed.
set -uo pipefail
cd "$(dirname "$0")"
FUZZTIME=${FUZZTIME:-10s}
FUZZPARALLEL=${FUZZPARALLEL:-1}
FUZZMINIMIZE=${FUZZMINIMIZE:-5s}

# package:target
TARGETS=(
	./validator:FuzzParseCompact
	./validator:FuzzClaimPolicy
	./validator:FuzzRemoteAnswer
	./caddymodule:FuzzExtractToken
	./caddymodule:FuzzStripIdentity
	./resolver:FuzzNormalize
	./resolver:FuzzLDAPUserFilter
	./resolver:FuzzEndpointGroups
)

only=("$@")
failed=0
passes=0
failures=0
printf '%-22s %-14s %12s  %s\n' TARGET PACKAGE EXECS RESULT
echo "fuzztime $FUZZTIME per target, $FUZZPARALLEL worker(s)"
for entry in "${TARGETS[@]}"; do
	pkg=${entry%%:*}
	name=${entry##*:}
	if ((${#only[@]})) && [[ ! " ${only[*]} " == *" $name "* ]]; then
		continue
	fi
	corpus="$pkg/testdata/fuzz/$name"
	result=ok
	for attempt in 1 2; do
		before=$(ls "$corpus" 2>/dev/null | sort)
		log=$(mktemp)
		go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZE" -parallel "$FUZZPARALLEL" >"$log" 2>&1
		rc=$?
		after=$(ls "$corpus" 2>/dev/null | sort)
		# The last progress line carries the total: "fuzz: elapsed: 10s, execs: 12345 (...)".
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
		if ((rc == 0)); then
			break
		fi
		# Go's fuzz coordinator can fail a target with a bare "context deadline
		# exceeded" when -fuzztime runs out while a starved worker is still
		# busy (a race in internal/fuzz, seen on loaded 2-core runners). Such a
		# failure writes no failing input. It is retried once, and counts as a
		# failure if it happens again; anything that wrote an input, or any
		# other message, is a finding and fails at once.
		if ((attempt == 1)) && [[ "$before" == "$after" ]] &&
			grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q 'Failing input written' "$log"; then
			echo "$name: Go's fuzz deadline race (no failing input written); running it once more"
			sed 's/^/    /' "$log"
			rm -f "$log"
			result="ok (retried)"
			continue
		fi
		result=FAIL
		break
	done
	if [[ $result == FAIL ]]; then
		failed=1
	fi
	printf '%-22s %-14s %12s  %s\n' "$name" "$pkg" "${execs:-0}" "$result"
	if [[ $result == FAIL ]]; then
		sed 's/^/    /' "$log"
	fi
	rm -f "$log"
	if [[ $result == FAIL ]]; then failures=$((failures + 1)); else passes=$((passes + 1)); fi
done
echo "fuzz: $passes passed, $failures failed"
exit "$failed"
