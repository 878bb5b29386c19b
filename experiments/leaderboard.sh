#!/usr/bin/env bash
# One leaderboard: every router family (every conf/model/*.yaml) x every benchmark x seeds,
# ONE report (a table per benchmark, mean ± std beside random / best single / per-task best /
# oracle; cost and AIQ where the data has costs; one acc_predict figure per benchmark, plus the
# cost-quality figures where there are costs), all under outputs/ only:
#   bash experiments/leaderboard.sh
#   BENCHMARKS="synthetic routerbench" SEEDS=1 bash experiments/leaderboard.sh
#   FAMILIES="knn mf" EXTRA="encoder=e5_small" bash experiments/leaderboard.sh
#   PUBLISH=1 bash experiments/leaderboard.sh   # also rewrite the tables in experiments/leaderboard/README.md
# A family gets its rows by adding conf/model/<family>.yaml; a benchmark-specific setting by
# adding conf/experiment/<family>_<benchmark>.yaml (used when present, e.g. knn_split2 with its
# validation-chosen k; SUFFIX=_minilm, the default, prefers <family>_<benchmark>_minilm.yaml,
# the CPU setting; SUFFIX= for the GPU experiments; sweep_<benchmark>_<family>.yaml is used
# too, as the synthetic study does). Benchmarks (BENCHMARKS, default all four):
#   synthetic   the built-in benchmark (its own validation split)
#   split2      RouterDC's split2 (held-out validation where the family's experiment says so)
#   routerbench data=routerbench: every <task>_train.csv in <data_dir>/routerbench, a seeded 20 %
#               test split and 20 % validation carved out of train (ROUTERBENCH="data.dir=<dir>")
#   clinc150    CLINC150 domains (label data: only label routers run; score-based families
#               are reported as failed)
# Prints the wall time and the CPU time (user + sys of every job) at the end: the machine may be
# shared, so both are needed to compare with the 60-minute target on 2 idle cores.
# Writes outputs/leaderboard/<time>/<benchmark>/<family>/, outputs/leaderboard/<time>/report/
# and LEADERBOARD.md there.
STUDY=leaderboard
source "$(dirname "$0")/lib.sh"
BENCHMARKS=${BENCHMARKS:-synthetic routerbench clinc150 split2}
ROUTERBENCH=${ROUTERBENCH:-}
SUFFIX=${SUFFIX-_minilm}
ROOT_OUT=${OUT}
mkdir -p "$ROOT_OUT"
DIRS=()
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
      exp="${family}_${bench}${SUFFIX}"
    elif [ -f "conf/experiment/${family}_${bench}.yaml" ]; then
      exp="${family}_${bench}"
    elif [ -f "conf/experiment/sweep_${bench}_${family}.yaml" ]; then
      exp="sweep_${bench}_${family}"
    else
      exp=""
    fi
    extra=""; if [ "$bench" = routerbench ]; then extra=$ROUTERBENCH; fi
    if [ -n "$exp" ]; then set -- "+experiment=$exp" $extra; else set -- "model=$family" $data; fi
    # A family that cannot run on this benchmark (e.g. a score-based router on CLINC150's label
    # data) is named by check_overrides in one line and skipped; the others still run.
    if ! plan "$family" "$@"; then
      echo "== leaderboard: $family skipped on $bench (the line above says why)" >&2
      FAILED+=("$family@$bench")
    fi
  done
  run_all
  DIRS+=("$OUT")
done
REPORT_ARGS=("roots=[$(IFS=,; echo "${DIRS[*]}")]" "out=$ROOT_OUT/report")
if [ "${PUBLISH:-0}" = 1 ]; then REPORT_ARGS+=("readme=${PUBLISH_TO:-experiments/leaderboard/README.md}"); fi
python -m router_lab.report "${REPORT_ARGS[@]}" || echo "== leaderboard: no report" >&2
{
  echo "# Leaderboard ($(date -u +%Y-%m-%d), seeds $SEEDS, families: $FAMILIES, benchmarks: $BENCHMARKS)"
  echo
  if [ -f "$ROOT_OUT/report/report.md" ]; then cat "$ROOT_OUT/report/report.md"; else echo "(no finished runs)"; fi
} > "$ROOT_OUT/LEADERBOARD.md"
echo "== leaderboard: $ROOT_OUT/LEADERBOARD.md (figures: $ROOT_OUT/report/*.png)"
if [ ${#FAILED[@]} -gt 0 ]; then echo "== leaderboard: failed (family per benchmark): ${FAILED[*]}" >&2; fi
# bash's `times` (run in this shell, not a pipe's subshell): second line = user and sys CPU
# time of every job this script ran.
times > "$ROOT_OUT/.times"
echo "== leaderboard: wall ${SECONDS} s; CPU time of the jobs (user, sys): $(tail -1 "$ROOT_OUT/.times")"
