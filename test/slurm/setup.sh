#!/usr/bin/env bash
# Installs what the localhost Slurm test needs (slurm.test.ts), from Debian apt only: slurm-wlm
# (slurmctld, slurmd, sbatch, squeue) and munge (its authentication). Idempotent: nothing is done
# when they are there. Exit 3: apt is unreachable (the test then skips, loudly).
set -euo pipefail
command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null && exit 0
echo "slurm setup: apt-get install slurm-wlm munge"
if ! apt-get update -qq; then exit 3; fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || exit 3
