#!/usr/bin/env bash
# Issue 14 item 4, a trial only: compile the engine's hot modules with mypyc (it comes with
# mypy) in a scratch copy of the engine, check that every catalog verdict and count is
# byte-identical to the pure-Python engine's, and time the largest catalog variant in both.
#   bash scripts/try_mypyc.sh            (about 3-5 minutes of gcc on a loaded 2-CPU machine)
# Nothing in the checkout changes: the compiled modules live in the scratch copy only (an
# in-tree build would shadow engine/*.py in the editable install until rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
scratch=$(mktemp -d /tmp/pagerace-mypyc.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
git ls-files engine | tar cf - -T - | tar xf - -C "$scratch"
MODULES="engine/state.py engine/kernel/machine.py engine/explore.py engine/model.py
  engine/kernel/fault.py engine/kernel/reclaim.py engine/kernel/refs.py engine/kernel/tlb.py
  engine/kernel/oracle.py engine/kernel/swap.py"
# No pyproject.toml in the copy: mypyc's setuptools run would validate the project's metadata.
(cd "$scratch" && nice -n 10 "$ROOT/.venv/bin/mypyc" $MODULES >"$scratch/build.log" 2>&1) || {
  tail -20 "$scratch/build.log"; exit 1; }
dump() { # $1: the directory whose engine package to import
  (cd "$1" && nice -n 10 "$PY" -c "
import json, sys; sys.path.insert(0, '.')
import engine
out = {}
for sc in engine.load_catalog().values():
    for v in sc.variants or (None,):
        body = engine.exploration_to_json(engine.explore(sc, engine.make_config(sc, v.name if v else None)))
        body.pop('elapsed_ms', None)
        out[f\"{sc.id}/{v.name if v else 'default'}\"] = body
json.dump(out, sys.stdout, indent=1, sort_keys=True)")
}
dump "$ROOT" >"$scratch/pure.json"
dump "$scratch" >"$scratch/compiled.json"
if cmp -s "$scratch/pure.json" "$scratch/compiled.json"; then
  echo "catalog: compiled and pure-Python explorations byte-identical"
else
  echo "catalog: compiled results DIFFER"; diff "$scratch/pure.json" "$scratch/compiled.json" | head
fi
bench() {
  (cd "$1" && nice -n 10 "$PY" -c "
import sys, time; sys.path.insert(0, '.')
import engine
sc = engine.load_catalog()['swapin-skip-swapcache-aba']; cfg = engine.make_config(sc, 'buggy')
engine.explore(sc, cfg)
best = min((lambda t: (engine.explore(sc, cfg), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(5))
print(f'{sys.argv[1]:8} largest variant: {best * 1000:.1f} ms, best of 5 (wall clock)')" "$2")
}
bench "$ROOT" pure
bench "$scratch" compiled
