#!/usr/bin/python3
"""The PyTorch side of agon's benchmark (bench/run.sh, docs/performance.md).

Plays the same GAN game as `agon run bench/w1.yaml` / `bench/w2.yaml`, step
for step, and prints how many steps per second it sustains:

  D step: a real batch (shuffled indices into an in-memory tensor) and z;
          fake = G(z) without a graph into G; D(real) and D(fake) as two
          forward passes (batch norm sees two batches, as in the DCGAN
          reference); L_D = mean softplus(-l_real) + mean softplus(l_fake);
          backward into D; Adam step of D.
  G step: a fresh z; L_G = mean softplus(-D(G(z))) (non-saturating);
          backward through D into G; Adam step of G.

--variant freeze turns requires_grad off for D's parameters during the G
step, so autograd skips D's weight gradients (agon never computes them
there); --variant plain leaves them on, as most reference code does, and
the next D step discards them.  bench/run.sh measures both and keeps the
faster.

The timed part starts after --warmup seconds (allocator, oneDNN primitive
caches).  The last line of output is machine-readable:
  RESULT workload=w1 threads=1 variant=freeze steps=4000 seconds=10.002
         steps_per_s=399.9 loss_d=... loss_g=...
(one line; wrapped here).  Use Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


# ---- data -----------------------------------------------------------------

def ring_dataset(n, gen):
    """n points of the ring of 8 Gaussians (radius 2, std 0.02)."""
    angles = torch.arange(8, dtype=torch.float64) * (2.0 * np.pi / 8)
    centres = torch.stack([2.0 * torch.cos(angles), 2.0 * torch.sin(angles)], 1).float()
    modes = torch.randint(0, 8, (n,), generator=gen)
    return centres[modes] + 0.02 * torch.randn(n, 2, generator=gen)


def fashion_mnist(directory):
    """The 60000 training images as [60000, 1, 28, 28] floats in [-1, 1]."""
    path = os.path.join(directory, "train-images-idx3-ubyte.gz")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 2051 or rows != 28 or cols != 28:
        sys.exit(f"{path}: not an IDX file of 28x28 images (magic {magic})")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, rows, cols)
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)


class Batches:
    """Batches of an in-memory tensor by shuffled index, reshuffled each epoch."""

    def __init__(self, data, batch, gen):
        self.data, self.batch, self.gen = data, batch, gen
        self.perm, self.pos = None, len(data)

    def next(self):
        if self.pos + self.batch > len(self.data):
            self.perm = torch.randperm(len(self.data), generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return self.data.index_select(0, idx)


# ---- models ---------------------------------------------------------------

def w1_models():
    g = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                      nn.Linear(128, 2))
    d = nn.Sequential(nn.Linear(2, 128), nn.LeakyReLU(0.2), nn.Linear(128, 128),
                      nn.LeakyReLU(0.2), nn.Linear(128, 1))
    return g, d


def w2_models():
    # Layers followed by batch norm have no bias (agon's dcgan default).
    g = nn.Sequential(
        nn.Linear(100, 128 * 7 * 7, bias=False), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=True), nn.Tanh())
    d = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1, bias=True), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(128 * 7 * 7, 1, bias=True))
    for net in (g, d):
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                # As agon's dcgan (and the DCGAN reference): gamma ~ N(1, 0.02).
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
    return g, d


WORKLOADS = {
    # name: (models, latent dim, batch, lr)
    "w1": (w1_models, 64, 512, 1e-4),
    "w2": (w2_models, 100, 64, 2e-4),
}


# ---- the game -------------------------------------------------------------

class Game:
    def __init__(self, workload, variant, seed):
        make_models, self.latent, self.batch, lr = WORKLOADS[workload]
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        data = ring_dataset(65536, gen) if workload == "w1" else fashion_mnist(FASHION_MNIST_DIR)
        self.real = Batches(data, self.batch, gen)
        self.G, self.D = make_models()
        self.G.train()
        self.D.train()
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.999))
        self.freeze = variant == "freeze"
        self.d_params = list(self.D.parameters())
        self.loss_d = self.loss_g = float("nan")

    def step(self):
        # D step
        real = self.real.next()
        with torch.no_grad():
            fake = self.G(torch.randn(self.batch, self.latent))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d = F.softplus(-self.D(real)).mean() + F.softplus(self.D(fake)).mean()
        loss_d.backward()
        self.opt_d.step()
        # G step
        if self.freeze:
            for p in self.d_params:
                p.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g = F.softplus(-self.D(self.G(torch.randn(self.batch, self.latent)))).mean()
        loss_g.backward()
        self.opt_g.step()
        if self.freeze:
            for p in self.d_params:
                p.requires_grad_(True)
        self.loss_d, self.loss_g = loss_d, loss_g


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed duration")
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="seconds of untimed steps first (at least 3 steps)")
    ap.add_argument("--variant", choices=["freeze", "plain"], default="freeze",
                    help="freeze: D's parameters need no gradient during the G step")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads < 1 or args.seconds <= 0 or args.warmup < 0:
        ap.error("--threads must be >= 1, --seconds > 0 and --warmup >= 0")

    torch.set_num_threads(args.threads)
    game = Game(args.workload, args.variant, args.seed)

    t0 = time.perf_counter()
    warm = 0
    while warm < 3 or time.perf_counter() - t0 < args.warmup:
        game.step()
        warm += 1

    steps = 0
    t0 = time.perf_counter()
    while True:
        game.step()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= args.seconds:
            break
    loss_d, loss_g = float(game.loss_d), float(game.loss_g)
    if not (np.isfinite(loss_d) and np.isfinite(loss_g)):
        sys.exit(f"non-finite loss after {steps} steps: loss_d {loss_d} loss_g {loss_g}")
    print(f"RESULT workload={args.workload} threads={args.threads} variant={args.variant} "
          f"steps={steps} seconds={elapsed:.3f} steps_per_s={steps / elapsed:.3f} "
          f"loss_d={loss_d:.4f} loss_g={loss_g:.4f} "
          f"torch={torch.__version__} torch_threads={torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
