#!/usr/bin/python3
# PyTorch CUDA ms/step of the GPU check's models: bench/torch_speed.py's models, batch sizes and
# optimisers (the Case class, imported), moved to the GPU. Prints one JSON line per model:
#   {"model": "resnet18", "batch": 16, "ms_per_step": ..., "losses": [...], "device": "NVIDIA ..."}
# Usage: python3 torch_cuda.py --models mlp,resnet18,vit,bert --steps 3 [--batch-scale 1] [--device cpu]
# Exits 4 when torch has no CUDA device (run.sh then prints that and goes on without it);
# `--device cpu` runs the same code on the CPU, to check the script on a machine without a GPU.
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

from torch_speed import Case  # noqa: E402

SPECS = {'mlp': {'batch': 256}, 'resnet18': {'batch': 16}, 'vit': {'batch': 16}, 'bert': {'batch': 8, 'seq': 128}}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--models', default='mlp,resnet18,vit,bert')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--batch-scale', type=float, default=1.0)
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    args = parser.parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        print(json.dumps({'error': f'torch {torch.__version__} sees no CUDA device'}), flush=True)
        sys.exit(4)
    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device(args.device)
    cuda = args.device == 'cuda'
    for name in args.models.split(','):
        spec = dict(SPECS[name], model=name)
        spec['batch'] = max(1, round(spec['batch'] * args.batch_scale))
        if name == 'bert':
            n, t = spec['batch'], spec['seq']
            spec['positions'] = [i for i in range(n * t) if (i * 2654435761) % 100 < 15]
        case = Case(spec)
        # Module.to moves parameters in place, so the optimiser built in Case keeps them.
        case.model.to(device)
        if case.head is not None:
            case.head.to(device)
        for attr in ('x', 'labels', 'ids', 'mask', 'positions'):
            if hasattr(case, attr):
                setattr(case, attr, getattr(case, attr).to(device))
        losses, times = [], []
        for _ in range(args.steps):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            # (wall ms, cpu ms, loss); loss.item() inside waits for the step to finish on the GPU
            loss = case.step('mrl')[2]
            times.append((time.perf_counter() - t0) * 1000)
            losses.append(loss)
        print(
            json.dumps(
                {
                    'model': name,
                    'batch': spec['batch'],
                    'ms_per_step': statistics.median(times[1:]) if len(times) > 1 else times[0],
                    'first_step_ms': times[0],
                    'losses': losses,
                    'device': torch.cuda.get_device_name(0) if cuda else 'cpu',
                    'torch': torch.__version__,
                }
            ),
            flush=True,
        )


if __name__ == '__main__':
    main()
