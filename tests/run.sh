#!/bin/sh
# Runs every test binary in $BUILD/tests; exit 77 from a test means skipped (reason printed).
BUILD=${BUILD:-build}
pass=0; fail=0; skip=0; failed=""
tmp=$(mktemp -d); export TDM_TEST_TMP="$tmp"
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *.o|*.d) continue;; esac
  name=$(basename "$t")
  out=$("$t" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then pass=$((pass+1)); echo "ok    $name"
  elif [ $rc -eq 77 ]; then skip=$((skip+1)); echo "skip  $name: $(echo "$out" | grep SKIP | head -1)"
  else fail=$((fail+1)); failed="$failed $name"; echo "FAIL  $name (exit $rc)"; echo "$out" | tail -30 | sed 's/^/      /'
  fi
done
rm -rf "$tmp"
echo "tests: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
