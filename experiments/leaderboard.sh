#!/usr/bin/env bash
# One leaderboard: every router family (every conf/model/*.yaml) x every benchmark x seeds,
# one report (tables mean ± std beside random / best single / per-task best / oracle, cost
# and AIQ where the data has costs, plots) per benchmark, all under outputs/ only:
#   bash experiments/leaderboard.sh
#   BENCHMARKS="synthetic split2" SEEDS=1 bash experiments/leaderboard.sh
#   FAMILIES="knn mf" EXTRA="encoder=e5_small" bash experiments/leaderboard.sh
# A family gets its rows by adding conf/model/<family>.yaml; a benchmark-specific setting by
# adding conf/experiment/<family>_<benchmark>.yaml (used when present, e.g. knn_split2 with
# its validation-chosen k; SUFFIX=_minilm, the default, prefers <family>_<benchmark>_minilm.yaml,
# the CPU setting; SUFFIX= for the GPU experiments). Benchmarks (BENCHMARKS, default all four):
#   synthetic   the built-in benchmark
#   split2      RouterDC's split2 (held-out validation where the family's experiment says so)
#   routerbench data=routerbench (ROUTERBENCH="data.train=..." to point at your file)
#   clinc150    CLINC150 domains (label data: score-based families are reported as failed)
# Writes outputs/leaderboard/<time>/<benchmark>/{<family>/,report/} and LEADERBOARD.md there.
STUDY=leaderboard
source "$(dirname "$0")/lib.sh"
BENCHMARKS=${BENCHMARKS:-synthetic split2 routerbench clinc150}
ROUTERBENCH=${ROUTERBENCH:-}
SUFFIX=${SUFFIX-_minilm}
ROOT_OUT=${OUT}
mkdir -p "$ROOT_OUT"
for bench in $BENCHMARKS; do
  case $bench in
    synthetic) data="data=synthetic" ;;
    split2) data="data=split2 llm_pool=split2_model7" ;;
    routerbench) data="data=routerbench $ROUTERBENCH" ;;
    clinc150) data="data=clinc150" ;;
    *) echo "error: unknown benchmark '$bench'; expected some of synthetic split2 routerbench clinc150" >&2; exit 2 ;;
  esac
  OUT=$ROOT_OUT/$bench
  ARGS=(); ORDER=()
  for family in $FAMILIES; do
    if [ -n "$SUFFIX" ] && [ -f "conf/experiment/${family}_${bench}${SUFFIX}.yaml" ]; then
      plan "$family" "+experiment=${family}_${bench}${SUFFIX}"
    elif [ -f "conf/experiment/${family}_${bench}.yaml" ]; then
      # shellcheck disable=SC2086
      plan "$family" "+experiment=${family}_${bench}"
    else
      # shellcheck disable=SC2086
      plan "$family" "model=$family" $data
    fi
  done
  run_all
  python -m router_lab.report "roots=$OUT" "out=$OUT/report" || echo "== leaderboard: no report for $bench" >&2
done
{
  echo "# Leaderboard ($(date -u +%Y-%m-%d), seeds $SEEDS, families: $FAMILIES)"
  for bench in $BENCHMARKS; do
    echo; echo "## $bench"; echo
    if [ -f "$ROOT_OUT/$bench/report/report.md" ]; then cat "$ROOT_OUT/$bench/report/report.md"; else echo "(no finished runs)"; fi
  done
} > "$ROOT_OUT/LEADERBOARD.md"
echo "== leaderboard: $ROOT_OUT/LEADERBOARD.md"
if [ ${#FAILED[@]} -gt 0 ]; then echo "== leaderboard: failed (family per benchmark): ${FAILED[*]}" >&2; fi
