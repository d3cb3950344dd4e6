#!/usr/bin/env bash
# The experiment grid as a Slurm job array: one shard of the sweep per array task.
#
#   sbatch --array=0-7 scripts/slurm_sweep.sh paper        # 8 shards of the paper profile
#   sbatch --dependency=afterok:<array job id> --export=ALL,SHARDS=results scripts/slurm_sweep.sh paper
#
# Every task runs `python -m tdlib sweep --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`: the
# independent jobs (training, attacks, Grad-CAM) are split between the tasks; the Results page
# (06_results) depends on all of them and runs only once every one is done, so the second,
# dependent submission renders it (SHARDS=results) before the book is built.
#
# All tasks share one results root ($TDLIB_RUNS, on a shared file system): run folders are keyed
# by the hash of their configuration and results by experiment/profile/parameter hash, so shards
# never write the same file; two tasks that need the same trained model wait for each other on the
# run folder's lock and the second reuses the first one's model. With a node-local root instead,
# copy every task's runs/ into one folder afterwards (the file names do not collide) and point
# TDLIB_RUNS at it.
#
#SBATCH --job-name=td-sweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --output=td-sweep-%A_%a.out
set -euo pipefail
PROFILE=${1:-paper}
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
export TDLIB_RUNS=${TDLIB_RUNS:-$PWD/runs}
export TDLIB_DATA=${TDLIB_DATA:?set TDLIB_DATA to the data root}
PY=${PY:-.venv/bin/python}
if [ "${SHARDS:-}" = results ]; then
  "$PY" -m tdlib sweep --profile "$PROFILE" --only 06_results
  exit 0
fi
"$PY" -m tdlib sweep --profile "$PROFILE" --shard "${SLURM_ARRAY_TASK_ID:-0}/${SLURM_ARRAY_TASK_COUNT:-1}"
