"""Benchmark the vectorised losses, sampler and mean-shift against straightforward references.

Prints one table measured in one run:

* IS-Triplet loss + pixel sampler (is_triplet_coseg.txt, Sec. 3.2) at paper scale: 6 images x 64 channels x
  448 x 448, K = 5000, vs a per-image loop (torch.nonzero + torch.randperm per image, then the same maths).
* Discriminative loss (discriminative_loss.txt, Sec. 2), 20 clusters per image, vs a per-cluster loop.
* ``cosegkit.cluster.mean_shift`` vs ``sklearn.cluster.MeanShift(bin_seeding=True)`` on 65,536 x 8 embeddings.

Usage: ``python benchmarks/bench_losses.py [--quick] [--device cpu|cuda] [--threads N]``.

Timings are medians of repeated runs after a warm-up. On the CPU, peak memory is the peak resident set size
(VmHWM, reset through /proc/self/clear_refs) minus the resident set size before one call, each measured in a
fresh process (Linux only); on CUDA it is
``torch.cuda.max_memory_allocated`` above the inputs.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from cosegkit.cluster import mean_shift
from cosegkit.losses import discriminative_loss, is_triplet_from_sets, is_triplet_loss
from cosegkit.samplers import sample_fg_bg_pixels

SIZES = {
    "full": dict(is_b=6, is_d=64, is_hw=448, is_k=5000, disc_b=6, disc_d=16, disc_hw=448, disc_c=20, ms_n=65536),
    "quick": dict(is_b=2, is_d=64, is_hw=224, is_k=1000, disc_b=2, disc_d=16, disc_hw=224, disc_c=20, ms_n=16384),
}
MS_DIM, MS_CLUSTERS, MS_STD, MS_BANDWIDTH = 8, 10, 0.1, 0.5


# ----------------------------------------------------------------------------------------------- references
def is_triplet_loop(emb, masks, k, margin=3.0, generator=None, samples=None):
    """Reference: Python loop over images, torch.nonzero + torch.randperm per image, then the same maths."""
    losses = []
    for b in range(emb.shape[0]):
        m = masks[b].reshape(-1)
        fg, bg = torch.nonzero(m).squeeze(1), torch.nonzero(~m).squeeze(1)
        kb = min(k, fg.numel(), bg.numel())
        if kb == 0:
            continue
        if samples is None:
            f1 = fg[torch.randperm(fg.numel(), generator=generator, device=fg.device)[:kb]]
            f2 = fg[torch.randperm(fg.numel(), generator=generator, device=fg.device)[:kb]]
            b1 = bg[torch.randperm(bg.numel(), generator=generator, device=bg.device)[:kb]]
            b2 = bg[torch.randperm(bg.numel(), generator=generator, device=bg.device)[:kb]]
        else:
            f1, f2, b1, b2 = (samples[key][b, :kb] for key in ("f1", "f2", "b1", "b2"))
        e = emb[b].reshape(emb.shape[1], -1)
        rows = [e[:, idx].T for idx in (f1, f2, b1, b2)]
        losses.append(is_triplet_from_sets(*rows, margin=margin).mean())
    return torch.stack(losses).mean() if losses else emb.sum() * 0.0


def discriminative_loop(emb, labels, dv=0.5, dd=1.5, alpha=1.0, beta=1.0, gamma=0.001):
    """Reference: Python loop over images and over the clusters of each image (pairs via broadcasting)."""
    totals = []
    for b in range(emb.shape[0]):
        x = emb[b].reshape(emb.shape[1], -1)
        lab = labels[b].reshape(-1)
        ids = [c for c in torch.unique(lab).tolist() if c >= 0]
        if not ids:
            continue
        means, var = [], 0.0
        for c in ids:
            xc = x[:, lab == c]
            mu = xc.mean(1)
            means.append(mu)
            var = var + (F.relu(torch.linalg.vector_norm(xc - mu[:, None], dim=0) - dv) ** 2).mean()
        mus = torch.stack(means)
        n = len(ids)
        if n > 1:
            pd = torch.linalg.vector_norm(mus[:, None] - mus[None], dim=-1)
            off = ~torch.eye(n, dtype=torch.bool, device=emb.device)
            dist = (F.relu(2 * dd - pd[off]) ** 2).sum() / (n * (n - 1))
        else:
            dist = 0.0
        reg = torch.linalg.vector_norm(mus, dim=1).mean()
        totals.append(alpha * var / n + beta * dist + gamma * reg)
    return torch.stack(totals).mean()


# --------------------------------------------------------------------------------------------------- inputs
def make_is_inputs(s, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, d, hw = s["is_b"], s["is_d"], s["is_hw"]
    emb = torch.randn(b, d, hw, hw, generator=g)
    yy, xx = torch.meshgrid(torch.arange(hw), torch.arange(hw), indexing="ij")
    masks = torch.zeros(b, hw, hw, dtype=torch.bool)
    for i in range(b):  # one elliptic object per image, 10-50 % of the image
        cy, cx = (torch.rand(2, generator=g) * 0.4 + 0.3) * hw
        ry, rx = (torch.rand(2, generator=g) * 0.25 + 0.2) * hw
        masks[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return emb.to(device), masks.to(device)


def make_disc_inputs(s, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    b, d, hw, c = s["disc_b"], s["disc_d"], s["disc_hw"], s["disc_c"]
    emb = torch.randn(b, d, hw, hw, generator=g)
    # c Voronoi regions of random sites per image (instance-like blobs), 5 % of pixels ignored (-1)
    yy, xx = torch.meshgrid(torch.arange(hw), torch.arange(hw), indexing="ij")
    pix = torch.stack([yy, xx], -1).reshape(-1, 2).float()
    labels = torch.empty(b, hw * hw, dtype=torch.long)
    for i in range(b):
        sites = torch.rand(c, 2, generator=g) * hw
        labels[i] = torch.cdist(pix, sites).argmin(1)
    labels[torch.rand(b, hw * hw, generator=g) < 0.05] = -1
    return emb.to(device), labels.reshape(b, hw, hw).to(device)


def make_ms_points(n, seed=2):
    """10 Gaussian clusters in 8-D: centres N(0, 2^2) at least 2 * delta_d = 3 apart, per-dimension std 0.1,
    so points lie ~0.28 from their centre, inside the delta_v = 0.5 pull margin of a trained embedding."""
    g = torch.Generator().manual_seed(seed)
    while True:
        centres = torch.randn(MS_CLUSTERS, MS_DIM, generator=g) * 2.0
        if float(torch.pdist(centres).min()) >= 3.0:
            break
    y = torch.randint(0, MS_CLUSTERS, (n,), generator=g)
    return centres[y] + MS_STD * torch.randn(n, MS_DIM, generator=g)


# -------------------------------------------------------------------------------------------------- harness
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn, device, repeats):
    fn()  # warm-up
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _fwd_bwd(loss_fn, emb):
    def run():
        e = emb.detach().requires_grad_(True)
        loss_fn(e).backward()
    return run


def _callables(name, s, device):
    """(function, description) of one measured call; used for timing and in child processes for memory."""
    if name.startswith("is_"):
        emb, masks = make_is_inputs(s, device)
        k = s["is_k"]
        g = torch.Generator(device=device).manual_seed(0)
        fns = {
            "is_vec_fwd": lambda: is_triplet_loss(emb, masks, k, generator=g),
            "is_loop_fwd": lambda: is_triplet_loop(emb, masks, k, generator=g),
            "is_vec_bwd": _fwd_bwd(lambda e: is_triplet_loss(e, masks, k, generator=g), emb),
            "is_loop_bwd": _fwd_bwd(lambda e: is_triplet_loop(e, masks, k, generator=g), emb),
        }
    else:
        emb, labels = make_disc_inputs(s, device)
        fns = {
            "disc_vec_fwd": lambda: discriminative_loss(emb, labels),
            "disc_loop_fwd": lambda: discriminative_loop(emb, labels),
            "disc_vec_bwd": _fwd_bwd(lambda e: discriminative_loss(e, labels), emb),
            "disc_loop_bwd": _fwd_bwd(lambda e: discriminative_loop(e, labels), emb),
        }
    return fns[name]


def _status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child_peak(name, profile, device_str, threads, queue):
    torch.set_num_threads(threads)
    fn = _callables(name, SIZES[profile], torch.device(device_str))
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak RSS (VmHWM) to the current RSS
        fh.write("5")
    fn()
    queue.put((_status_kib("VmHWM") - before) / 1024.0)


def peak_memory_mb(name, profile, device, threads):
    if device.type == "cuda":
        fn = _callables(name, SIZES[profile], device)
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_peak, args=(name, profile, device.type, threads, queue))
    proc.start()
    proc.join()  # the child only puts one float in the queue, so joining first cannot deadlock
    if proc.exitcode != 0:
        raise RuntimeError(f"memory measurement of {name} failed (exit code {proc.exitcode})")
    return queue.get(timeout=10)


# ------------------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (default: the issue's sizes)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: like-for-like with single-process sklearn)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    profile = "quick" if args.quick else "full"
    s = SIZES[profile]
    rows = []

    # -- IS-Triplet: identical values on identical samples, then timings
    emb, masks = make_is_inputs(s, device)
    samples = sample_fg_bg_pixels(masks, s["is_k"], generator=torch.Generator(device=device).manual_seed(0))
    diff = abs(float(is_triplet_loss(emb, masks, samples=samples)) - float(is_triplet_loop(emb, masks, s["is_k"],
                                                                                           samples=samples)))
    del emb, masks, samples
    size = f'{s["is_b"]}x{s["is_d"]}x{s["is_hw"]}x{s["is_hw"]}, K={s["is_k"]}'
    for kind, label in (("fwd", "forward"), ("bwd", "forward+backward")):
        ref = timeit(_callables(f"is_loop_{kind}", s, device), device, args.repeats)
        ours = timeit(_callables(f"is_vec_{kind}", s, device), device, args.repeats)
        mem_ref = peak_memory_mb(f"is_loop_{kind}", profile, device, args.threads)
        mem_ours = peak_memory_mb(f"is_vec_{kind}", profile, device, args.threads)
        rows.append((f"IS-Triplet + sampler, {label}", size, "per-image loop", ref, ours, mem_ref, mem_ours,
                     f"same rows, abs diff {diff:.1e}"))

    # -- discriminative loss
    emb, labels = make_disc_inputs(s, device)
    diff = abs(float(discriminative_loss(emb, labels)) - float(discriminative_loop(emb, labels)))
    del emb, labels
    size = f'{s["disc_b"]}x{s["disc_d"]}x{s["disc_hw"]}x{s["disc_hw"]}, {s["disc_c"]} clusters'
    for kind, label in (("fwd", "forward"), ("bwd", "forward+backward")):
        ref = timeit(_callables(f"disc_loop_{kind}", s, device), device, max(1, args.repeats // 2))
        ours = timeit(_callables(f"disc_vec_{kind}", s, device), device, args.repeats)
        mem_ref = peak_memory_mb(f"disc_loop_{kind}", profile, device, args.threads)
        mem_ours = peak_memory_mb(f"disc_vec_{kind}", profile, device, args.threads)
        rows.append((f"Discriminative loss, {label}", size, "per-cluster loop", ref, ours, mem_ref, mem_ours,
                     f"abs diff {diff:.1e}"))

    # -- mean-shift vs sklearn
    from sklearn.cluster import MeanShift
    from sklearn.metrics import adjusted_rand_score

    points = make_ms_points(s["ms_n"])
    t = time.perf_counter()
    ref_labels = MeanShift(bandwidth=MS_BANDWIDTH, bin_seeding=True, n_jobs=1).fit(points.numpy()).labels_
    ref = time.perf_counter() - t
    pts = points.to(device)
    ours = timeit(lambda: mean_shift(pts, MS_BANDWIDTH), device, args.repeats)
    labels = mean_shift(pts, MS_BANDWIDTH).cpu().numpy()
    ari = adjusted_rand_score(ref_labels, labels)
    rows.append(("mean_shift (bin seeding)", f'{s["ms_n"]}x{MS_DIM}, {MS_CLUSTERS} clusters, std {MS_STD}',
                 "sklearn MeanShift", ref, ours, None, None,
                 f"ARI = {ari:.4f}, {labels.max() + 1} vs {ref_labels.max() + 1} clusters"))

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor()) if platform.system() == "Linux" else platform.processor()
    print(f"# bench_losses ({profile}) {datetime.date.today()} | device {device} | {cpu} | "
          f"torch {torch.__version__} | threads {torch.get_num_threads()}")
    header = "| benchmark | size | reference | ref ms | ours ms | speed-up | ref peak MB | ours peak MB | check |"
    print(header)
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for name, size, refname, t_ref, t_ours, m_ref, m_ours, check in rows:
        mem = ("-", "-") if m_ref is None else (f"{m_ref:.0f}", f"{m_ours:.0f}")
        print(f"| {name} | {size} | {refname} | {t_ref * 1e3:.1f} | {t_ours * 1e3:.1f} | {t_ref / t_ours:.1f}x | "
              f"{mem[0]} | {mem[1]} | {check} |")


if __name__ == "__main__":
    main()
