#!/bin/sh
# bin/python3 of the CPU speed pack: the PyTorch side of bench/speed.mjs (torch/torch_speed.py)
# runs with the machine's own environment. run-speed.sh puts the pack's lib/ (Debian's oneDNN,
# libgomp, libOpenCL, for the Node process's oneDNN addon) on LD_LIBRARY_PATH; PyTorch must not
# pick up those copies, so the variable is restored to what it was before run-speed.sh, and the
# machine's python3 (MRL_SPEED_PYTHON) runs.
if [ -n "${MRL_SPEED_LD_LIBRARY_PATH:-}" ]; then
  export LD_LIBRARY_PATH="$MRL_SPEED_LD_LIBRARY_PATH"
else
  unset LD_LIBRARY_PATH
fi
exec "${MRL_SPEED_PYTHON:?run-speed.sh sets MRL_SPEED_PYTHON to the machine python3}" "$@"
