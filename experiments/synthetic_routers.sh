#!/usr/bin/env bash
# Every router family on the built-in synthetic benchmark (frozen MiniLM, CPU-friendly):
# 3 seeds each, then the comparison report.
#   bash experiments/synthetic_routers.sh
#   SEEDS=1,2,3,4,5 LAUNCH="hydra/launcher=local_gpus" ROUTER_LAB_NUM_GPUS=2 bash experiments/synthetic_routers.sh
# A family with conf/experiment/sweep_synthetic_<family>.yaml runs that; else model=<family>.
STUDY=synthetic_routers
source "$(dirname "$0")/lib.sh"
for family in $FAMILIES; do
  if [ -f "conf/experiment/sweep_synthetic_${family}.yaml" ]; then
    plan "$family" "+experiment=sweep_synthetic_${family}"
  else
    plan "$family" "model=$family" data=synthetic
  fi
done
run_all
write_report
