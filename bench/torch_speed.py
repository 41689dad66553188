#!/usr/bin/python3
# PyTorch side of bench/speed.mjs: the same four models, built to match mrl's model files
# (packages/core/src/mlp.ts, packages/vision/src/models/{resnet,vit,attention,layers}.ts,
# packages/text/src/{bert,mlm}.ts), trained one step at a time on request so that the Node
# harness can interleave its own steps with ours on a loaded machine.
#
# Protocol (one JSON object per line on stdin, one per line on stdout):
#   {"cmd": "init", "model": "resnet18", "batch": 16, ...}  -> {"ok": true, "params": N}
#   {"cmd": "step", "head": "mrl" | "plain"}                 -> {"ms": ..., "cpu_ms": ..., "loss": ..., "maxrss_mb": ...}
#   {"cmd": "info"}                                           -> {"torch": ..., "blas": ..., "threads": N}
# Run by the harness with MRL_TORCH_THREADS=N and OMP_NUM_THREADS=N OPENBLAS_NUM_THREADS=N (the
# thread count of `node bench/speed.mjs --threads N`, default 1); a bench script only, never a
# dependency of the library.
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get('MRL_TORCH_THREADS', '1')))
torch.manual_seed(0)


def nesting_dims(d, min_dim=8):
    dims, m = [], min_dim
    while m < d:
        dims.append(m)
        m *= 2
    return dims + [d]


def prefix_logits(z, w, b, dims):
    """Shared head (MRL-E) logits of every prefix from chunk products and a running sum:
    mrl's `SharedHead` 'fused' / `runningSumPrefixLogits` form. w is [d, C]."""
    out, start, running = [], 0, b
    for m in dims:
        running = running + z[:, start:m] @ w[start:m]
        out.append(running)
        start = m
    return out


class SharedHead(nn.Module):
    def __init__(self, d, classes):
        super().__init__()
        bound = 1 / math.sqrt(d)
        self.w = nn.Parameter(torch.empty(d, classes).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.empty(classes).uniform_(-bound, bound))

    def loss(self, z, labels, dims):
        return sum(F.cross_entropy(l, labels) for l in prefix_logits(z, self.w, self.b, dims))


# --- MLP (core/src/mlp.ts): ReLU hidden layers, linear last layer ---------------------------
class Mlp(nn.Module):
    def __init__(self, input_dim, hidden, d):
        super().__init__()
        widths = [input_dim, *hidden, d]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))

    def forward(self, x):
        h = x.reshape(x.shape[0], -1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = F.relu(h)
        return h


# --- ResNet (vision/src/models/resnet.ts): CIFAR stem, basic blocks, no conv bias, BN -------
def conv(k, cin, cout, stride):
    return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1, self.bn1 = conv(3, cin, width, stride), nn.BatchNorm2d(width, momentum=0.1, eps=1e-5)
        self.conv2, self.bn2 = conv(3, width, width, 1), nn.BatchNorm2d(width, momentum=0.1, eps=1e-5)
        self.shortcut = None
        if stride != 1 or cin != width:
            self.shortcut = nn.Sequential(conv(1, cin, width, stride), nn.BatchNorm2d(width, momentum=0.1, eps=1e-5))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    def __init__(self, layers, widths, stem, d, channels_last):
        super().__init__()
        self.stem = nn.Sequential(conv(3, 3, stem, 1), nn.BatchNorm2d(stem, momentum=0.1, eps=1e-5), nn.ReLU())
        blocks, c = [], stem
        for s, (count, width) in enumerate(zip(layers, widths)):
            for b in range(count):
                blocks.append(BasicBlock(c, width, 2 if s > 0 and b == 0 else 1))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.proj = None if c == d else nn.Linear(c, d)
        self.channels_last = channels_last

    def forward(self, x):  # x: [N, C, H, W]
        h = self.blocks(self.stem(x)).mean(dim=(2, 3))
        return h if self.proj is None else self.proj(h)


# --- ViT (vision/src/models/vit.ts, attention.ts, layers.ts): pre-norm, GELU (tanh) ---------
class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads, self.dh = heads, width // heads
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3 * self.heads, self.dh).permute(0, 2, 1, 3)  # [B, 3H, T, dh]
        q, k, v = (p.reshape(b * self.heads, t, self.dh) for p in qkv.chunk(3, dim=1))
        scores = (q @ k.transpose(1, 2)) * (1 / math.sqrt(self.dh))
        mixed = scores.softmax(-1) @ v  # [B*H, T, dh]
        return self.out(mixed.reshape(b, self.heads, t, self.dh).permute(0, 2, 1, 3).reshape(b, t, d))


class VitBlock(nn.Module):
    def __init__(self, width, heads, mlp_ratio):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(width, eps=1e-6), Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.fc1, self.fc2 = nn.Linear(width, round(width * mlp_ratio)), nn.Linear(round(width * mlp_ratio), width)

    def forward(self, x):
        a = x + self.attn(self.norm1(x))
        return a + self.fc2(F.gelu(self.fc1(self.norm2(a)), approximate='tanh'))


class Vit(nn.Module):
    def __init__(self, image, patch, width, depth, heads, mlp_ratio, d):
        super().__init__()
        self.tokens = (image // patch) ** 2
        self.patch = nn.Conv2d(3, width, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 1 + self.tokens, width) * 0.02)
        self.blocks = nn.Sequential(*[VitBlock(width, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.proj = None if width == d else nn.Linear(width, d)

    def forward(self, x):  # [N, C, H, W]
        n = x.shape[0]
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # [N, T, D]
        x = torch.cat([self.cls.expand(n, -1, -1), tokens], 1) + self.pos
        pooled = self.norm(self.blocks(x))[:, 0]
        return pooled if self.proj is None else self.proj(pooled)


# --- BERT (text/src/bert.ts): post-LN, separate q/k/v, GELU (tanh), dropout 0.1 -------------
class BertLayer(nn.Module):
    def __init__(self, d, heads, ff, eps, dropout):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask_bias, b, t):  # x: [B*T, d]
        split = lambda y: y.reshape(b, t, self.heads, self.dh).permute(0, 2, 1, 3)  # [B, H, T, dh]
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = (q @ k.transpose(2, 3)) * (1 / math.sqrt(self.dh)) + mask_bias  # [B, H, T, T]
        context = (self.drop(scores.softmax(-1)) @ v).permute(0, 2, 1, 3).reshape(b * t, -1)
        x = self.ln1(x + self.drop(self.o(context)))
        return self.ln2(x + self.drop(self.ff2(F.gelu(self.ff1(x), approximate='tanh'))))


class Bert(nn.Module):
    def __init__(self, vocab, d, layers, heads, ff, max_pos=512, types=2, eps=1e-12, dropout=0.1):
        super().__init__()
        self.token = nn.Parameter(torch.randn(vocab, d) * 0.02)
        self.position = nn.Parameter(torch.randn(max_pos, d) * 0.02)
        self.segment = nn.Parameter(torch.randn(types, d) * 0.02)
        self.ln = nn.LayerNorm(d, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(BertLayer(d, heads, ff, eps, dropout) for _ in range(layers))
        self.mlm_bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, ids, mask):  # [B, T] each -> [B*T, d]
        b, t = ids.shape
        x = F.embedding(ids.reshape(-1), self.token) + self.position[:t].repeat(b, 1) + F.embedding(torch.zeros_like(ids).reshape(-1), self.segment)
        x = self.drop(self.ln(x))
        mask_bias = ((1 - mask.float()) * -1e9).reshape(b, 1, 1, t)
        for layer in self.layers:
            x = layer(x, mask_bias, b, t)
        return x

    def mlm_loss(self, states, labels, dims):
        # TiedMlmObjective: prefix logits against the tied embedding table, running sums.
        return sum(F.cross_entropy(l, labels) for l in prefix_logits(states, self.token.t(), self.mlm_bias, dims))


class Case:
    def __init__(self, spec):
        g = torch.Generator().manual_seed(1)
        name, n = spec['model'], spec['batch']
        self.name = name
        if name == 'mlp':
            self.model, d = Mlp(784, [512], 512), 512
            self.head = SharedHead(d, 10)
            self.x = torch.randn(n, 784, generator=g)
            self.labels = torch.randint(0, 10, (n,), generator=g)
        elif name == 'resnet18':
            self.model, d = ResNet([2, 2, 2, 2], [64, 128, 256, 512], 64, 512, spec.get('channelsLast', False)), 512
            self.head = SharedHead(d, 10)
            self.x = torch.randn(n, 3, 32, 32, generator=g)
            if self.model.channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
                self.x = self.x.contiguous(memory_format=torch.channels_last)
            self.labels = torch.randint(0, 10, (n,), generator=g)
        elif name == 'vit':
            self.model, d = Vit(32, 4, 192, 12, 3, 4, 192), 192
            self.head = SharedHead(d, 10)
            self.x = torch.randn(n, 3, 32, 32, generator=g)
            self.labels = torch.randint(0, 10, (n,), generator=g)
        elif name == 'bert':
            t, vocab = spec['seq'], 30522
            self.model, d = Bert(vocab, 256, 4, 4, 1024), 256
            self.head = None
            self.ids = torch.randint(5, vocab, (n, t), generator=g)
            self.mask = torch.ones(n, t, dtype=torch.int64)
            self.positions = torch.tensor(spec['positions'], dtype=torch.int64)
            self.labels = torch.randint(5, vocab, (len(spec['positions']),), generator=g)
        else:
            raise ValueError(f'unknown model {name}')
        self.d = d
        params = list(self.model.parameters()) + ([] if self.head is None else list(self.head.parameters()))
        self.params = sum(p.numel() for p in params)
        # Same optimisers as the Node side: AdamW for the MLP and transformers, SGD momentum for the ResNet.
        if name == 'resnet18':
            self.opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
        else:
            self.opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        self.model.train()

    def step(self, head):
        dims = nesting_dims(self.d) if head == 'mrl' else [self.d]
        t0 = time.perf_counter()
        c0 = time.process_time()
        self.opt.zero_grad(set_to_none=True)
        if self.name == 'bert':
            states = self.model(self.ids, self.mask)[self.positions]
            loss = self.model.mlm_loss(states, self.labels, dims)
        else:
            loss = self.head.loss(self.model(self.x), self.labels, dims)
        loss.backward()
        self.opt.step()
        value = loss.item()
        # CPU time of the process (every thread), as process.cpuUsage() on mrl's side
        return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000, value


def blas():
    with open('/proc/self/maps') as maps:
        libs = sorted({line.split()[-1] for line in maps if 'blas' in line.lower() or 'mkl' in line.lower()})
    return libs


def main():
    case = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg['cmd'] == 'info':
            torch.randn(64, 64) @ torch.randn(64, 64)  # loads the BLAS
            out = {'torch': torch.__version__, 'blas': blas(), 'threads': torch.get_num_threads()}
        elif msg['cmd'] == 'init':
            case = Case(msg)
            out = {'ok': True, 'params': case.params}
        elif msg['cmd'] == 'step':
            ms, cpu_ms, loss = case.step(msg['head'])
            out = {'ms': ms, 'cpu_ms': cpu_ms, 'loss': loss, 'maxrss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        else:
            out = {'error': f"unknown cmd {msg['cmd']}"}
        print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
