#!/usr/bin/env bash
# RouterDC's split2 protocol: 3 seeds of every router family, then the comparison report.
#   bash experiments/routerdc_split2.sh
#   LAUNCH="hydra/launcher=local_gpus trainer=gpu" ROUTER_LAB_NUM_GPUS=4 bash experiments/routerdc_split2.sh
#   LAUNCH="hydra/launcher=slurm trainer=gpu hydra.launcher.partition=gpu" bash experiments/routerdc_split2.sh
# Each family runs its own split2 experiment (conf/experiment/<family>_split2.yaml) when there
# is one, else model=<family> data=split2 llm_pool=split2_model7. Knobs: experiments/lib.sh, and
#   SUFFIX=_minilm   prefer conf/experiment/<family>_split2_minilm.yaml where it exists (the CPU
#                    setting: frozen MiniLM with RouterDC's projection head)
# CPU-sized run (frozen MiniLM for every family, ~15 min on 2 cores):
#   SUFFIX=_minilm EXTRA="encoder=minilm encoder.frozen=true" bash experiments/routerdc_split2.sh
STUDY=routerdc_split2
SUFFIX=${SUFFIX:-}
source "$(dirname "$0")/lib.sh"
for family in $FAMILIES; do
  if [ -n "$SUFFIX" ] && [ -f "conf/experiment/${family}_split2${SUFFIX}.yaml" ]; then
    plan "$family" "+experiment=${family}_split2${SUFFIX}"
  elif [ -f "conf/experiment/${family}_split2.yaml" ]; then
    plan "$family" "+experiment=${family}_split2"
  else
    plan "$family" "model=$family" data=split2 llm_pool=split2_model7
  fi
done
run_all
write_report
