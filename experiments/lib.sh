# Shared by the study scripts (source it): sweep each router family, then write the report.
#   SEEDS=1,2,3                      seeds per router (default 1,2,3)
#   FAMILIES="classifier routerdc"   router families (default: every conf/model/*.yaml)
#   LAUNCH="hydra/launcher=local_gpus trainer=gpu"   how jobs run (default: one after another here)
#   EXTRA="encoder=minilm"           more overrides for every job
#   PUBLISH=1                        also copy the report's tables into the tracked
#                                    experiments/<study>/README.md (default: no tracked file
#                                    is touched; everything goes under outputs/)
# Every sweep's overrides are checked before anything runs (one line per problem, exit 2).
# A family whose sweep fails is reported and skipped; the report covers what finished.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SEEDS=${SEEDS:-1,2,3}
LAUNCH=${LAUNCH:-}
EXTRA=${EXTRA:-}
FAMILIES=${FAMILIES:-$(ls conf/model/*.yaml | xargs -n1 basename | sed 's/\.yaml$//' | tr '\n' ' ')}
STAMP=$(date +%Y-%m-%d_%H-%M-%S)
OUT=${OUT:-outputs/experiments/$STUDY/$STAMP}   # OUT=<existing study dir> adds families to it
declare -A ARGS=()
ORDER=()
FAILED=()

# plan FAMILY OVERRIDES...: check the family's sweep now, run it in run_all.
plan() {
  local family=$1; shift
  # shellcheck disable=SC2086
  python experiments/check_overrides.py "$@" "seed=$SEEDS" $LAUNCH $EXTRA || return $?
  ARGS[$family]="$*"
  ORDER+=("$family")
}

run_all() {
  for family in "${ORDER[@]}"; do
    echo "== $STUDY: $family (${ARGS[$family]}) seeds $SEEDS -> $OUT/$family"
    # shellcheck disable=SC2086
    if ! python -m router_lab.train -m ${ARGS[$family]} "seed=$SEEDS" "task_name=$STUDY" \
        "hydra.sweep.dir=$OUT/$family" extras.print_config=false $LAUNCH $EXTRA; then
      echo "== $STUDY: $family failed; the report covers the others" >&2
      FAILED+=("$family")
    fi
  done
}

write_report() {
  python -m router_lab.report "roots=$OUT" "out=$OUT/report"
  echo "== $STUDY: report in $OUT/report/report.md"
  local publish="python -m router_lab.report roots=$OUT out=$OUT/report readme=${PUBLISH_TO:-experiments/$STUDY/README.md}"
  if [ "${PUBLISH:-0}" = 1 ]; then
    $publish
    echo "== $STUDY: tables published into ${PUBLISH_TO:-experiments/$STUDY/README.md}"
  else
    echo "== $STUDY: to publish its tables into the tracked experiments/$STUDY/README.md: $publish"
  fi
  if [ ${#FAILED[@]} -gt 0 ]; then echo "== $STUDY: failed families: ${FAILED[*]}" >&2; fi
}
