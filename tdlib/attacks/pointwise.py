"""foolbox 2.2.1's PointwiseAttack with the paper's Linf distance, all samples in lockstep.

foolbox 2 (``attacks/pointwise.py``) starts from its Salt&Pepper result and works on the flat
element vector ``x``:

1. Shuffle all element indices (python ``random``); reset the differing ones to the original one
   at a time; the first reset that stays adversarial is kept and the pass restarts with a new
   shuffle. A pass without such a reset ends the phase.
2. Passes over new shuffles: reset each differing element; if that is not adversarial, a 10-step
   bisection between the current and the original value keeps the adversarial end (and, when no
   midpoint was adversarial, leaves the element at the last midpoint: foolbox 2.2.1 does not restore
   it). A pass that changes nothing ends the attack.

What the attack returns is what its ``Adversarial`` stored: the first query that reached the
smallest Linf, not the final state (the state only lowers L0 and L2). tdlib replays this query
for query: phase 1 packs each sample's next differing elements into one forward (the first hit
wins, the rest are discarded), phase 2 evaluates the next few decisions of each element's
reset-then-bisection as a small decision tree, and only the queries foolbox 2 would have made are
recorded. Samples whose initialisation failed are failures (foolbox 2 warns and returns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.pixel import run_salt_and_pepper
from tdlib.attacks.queries import QueryModel
from tdlib.attacks.streams import ShuffleStream, sample_seed

__all__ = ["BISECTION_STEPS", "pointwise", "run_pointwise"]

BISECTION_STEPS = 10
_DONE, _PHASE1, _PHASE2 = 0, 1, 2
_ZERO = np.float32(0)


@dataclass
class _Sample:
    """One sample's place in foolbox 2's loops (phase 2 element state included)."""

    rng: ShuffleStream  # foolbox 2's ``rngs.rng`` (python ``random``) of this sample
    phase: int = _PHASE1
    perm: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pos: int = 0  # next position in perm
    misses: int = 0  # phase 1: misses since the pass began
    improved: bool = False  # phase 2: this pass changed something
    elem: int = -1  # phase 2: element being worked on
    level: int = 0  # 0: its reset query is next; t >= 1: bisection query t is next
    old: np.float32 = _ZERO
    adv_v: np.float32 = _ZERO
    non_v: np.float32 = _ZERO
    last_mid: np.float32 = _ZERO
    tried: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # phase 1 positions


def _shuffle(s: _Sample, size: int) -> None:
    """A new order of the element indices: ``rng.shuffle(list(range(size)))``."""
    s.perm = s.rng.permutation(size)
    s.pos = 0
    s.misses = 0


def _next_differing(s: _Sample, diff: np.ndarray, count: int) -> np.ndarray:
    """Positions in ``s.perm`` (from ``s.pos``) of the next ``count`` elements that differ."""
    d = diff[s.perm[s.pos:]]
    return np.flatnonzero(d)[:count] + s.pos


class _Lockstep:
    """All samples' foolbox 2 Pointwise loops; candidates are single-element changes of ``x``."""

    def __init__(self, qm: QueryModel, x0: Tensor, y: Tensor, start: Tensor, best_linf: Tensor,
                 rngs: list[ShuffleStream]) -> None:
        self.qm, self.y = qm, y
        self.shape = x0.shape[1:]
        self.orig = x0.detach().cpu().flatten(1).numpy().astype(np.float32)
        self.x = start.detach().cpu().flatten(1).numpy().astype(np.float32).copy()
        self.best = self.x.copy()
        self.best_linf = best_linf.detach().cpu().numpy().astype(np.float32).copy()
        self.samples = [_Sample(rng=r) for r in rngs]
        for s in self.samples:
            _shuffle(s, self.orig.shape[1])

    # --- candidate lists --------------------------------------------------------------------
    def _phase1(self, i: int, s: _Sample, width: int) -> list[tuple[int, float]] | None:
        """Next elements to try resetting; None once the pass is exhausted without a hit."""
        k = max(1, min(width, 1 + s.misses // 4))
        pos = _next_differing(s, self.x[i] != self.orig[i], k)
        if pos.size == 0:
            return None
        elems = s.perm[pos]
        s.tried = pos
        return [(int(e), float(self.orig[i, e])) for e in elems]

    def _phase2_element(self, i: int, s: _Sample) -> bool:
        """Make sure the sample has an element to work on; False once the attack is over."""
        while s.elem < 0:
            pos = _next_differing(s, self.x[i] != self.orig[i], 1)
            if pos.size:
                s.elem = int(s.perm[pos[0]])
                s.pos = int(pos[0]) + 1
                s.level = 0
                s.old = self.x[i, s.elem]
                return True
            if not s.improved:
                s.phase = _DONE
                return False
            s.improved = False
            _shuffle(s, self.orig.shape[1])
        return True

    def _tree(self, i: int, s: _Sample, depth: int) -> list[tuple[float, int, int]]:
        """The next ``depth`` decisions as a tree: (value, parent node, branch) in breadth order;
        branch 1 = the parent was adversarial."""
        nodes: list[tuple[float, int, int]] = []
        # frontier: (node id of parent, branch, level, adv_v, non_v)
        frontier: list[tuple[int, int, int, np.float32, np.float32]] = [(-1, 0, s.level, s.adv_v, s.non_v)]
        orig = self.orig[i, s.elem]
        for _ in range(depth):
            nxt: list[tuple[int, int, int, np.float32, np.float32]] = []
            for parent, branch, level, adv_v, non_v in frontier:
                if level > BISECTION_STEPS:
                    continue
                if level == 0:
                    value = orig
                    node = len(nodes)
                    nodes.append((float(value), parent, branch))
                    nxt.append((node, 0, 1, s.old, orig))  # not adversarial: bisection starts
                else:
                    value = (adv_v + non_v) / 2
                    node = len(nodes)
                    nodes.append((float(value), parent, branch))
                    nxt.append((node, 1, level + 1, value, non_v))
                    nxt.append((node, 0, level + 1, adv_v, value))
            frontier = nxt
        return nodes

    # --- one round ----------------------------------------------------------------------------
    def round(self, depth: int, width: int) -> bool:
        """Advance every sample by one packed forward; False when all are done."""
        rows: list[int] = []
        elems: list[int] = []
        vals: list[float] = []
        plan: list[tuple[int, int, int, list[tuple[float, int, int]] | None]] = []
        for i, s in enumerate(self.samples):
            if s.phase == _PHASE1:
                cands = self._phase1(i, s, width)
                if cands is None:
                    s.phase = _PHASE2
                    s.improved = False
                    _shuffle(s, self.orig.shape[1])
                else:
                    plan.append((i, len(rows), len(cands), None))
                    rows += [i] * len(cands)
                    elems += [e for e, _ in cands]
                    vals += [v for _, v in cands]
                    continue
            if s.phase == _PHASE2 and self._phase2_element(i, s):
                tree = self._tree(i, s, depth)
                plan.append((i, len(rows), len(tree), tree))
                rows += [i] * len(tree)
                elems += [s.elem] * len(tree)
                vals += [v for v, _, _ in tree]
        if not rows:
            return False
        r = np.asarray(rows)
        cand = self.x[r].copy()
        cand[np.arange(r.size), np.asarray(elems)] = np.asarray(vals, dtype=np.float32)
        linf = np.abs(cand - self.orig[r]).max(axis=1)
        xt = torch.from_numpy(cand).view(-1, *self.shape).to(self.y.device)
        adv = self.qm.misclassified(xt, self.y[torch.from_numpy(r).to(self.y.device)]).cpu().numpy()
        for i, start, count, nodes in plan:
            if nodes is None:
                self._resolve1(i, cand, linf, adv, start, count)
            else:
                self._resolve2(i, cand, linf, adv, start, nodes)
        return True

    def _record(self, i: int, cand: np.ndarray, linf: np.ndarray, j: int) -> None:
        if linf[j] < self.best_linf[i]:  # foolbox 2 keeps strictly better (Linf) adversarials
            self.best[i] = cand[j]
            self.best_linf[i] = linf[j]

    def _resolve1(self, i: int, cand: np.ndarray, linf: np.ndarray, adv: np.ndarray, start: int,
                  count: int) -> None:
        s = self.samples[i]
        hits = np.flatnonzero(adv[start:start + count])
        pos = s.tried
        if hits.size:
            j = start + int(hits[0])
            self._record(i, cand, linf, j)
            e = int(s.perm[pos[hits[0]]])
            self.x[i, e] = self.orig[i, e]
            _shuffle(s, self.orig.shape[1])
        else:
            s.pos = int(pos[-1]) + 1
            s.misses += count

    def _resolve2(self, i: int, cand: np.ndarray, linf: np.ndarray, adv: np.ndarray, start: int,
                  tree: list[tuple[float, int, int]]) -> None:
        s = self.samples[i]
        node = 0
        while True:
            value = np.float32(tree[node][0])
            is_adv = bool(adv[start + node])
            if is_adv:
                self._record(i, cand, linf, start + node)
            if s.level == 0:
                if is_adv:  # the reset is kept
                    self.x[i, s.elem] = value
                    s.improved = True
                    s.elem = -1
                    return
                s.level, s.adv_v, s.non_v = 1, s.old, value
            else:
                if is_adv:
                    s.adv_v = value
                else:
                    s.non_v = value
                s.last_mid = value
                s.level += 1
                if s.level > BISECTION_STEPS:
                    if s.adv_v != s.old:
                        self.x[i, s.elem] = s.adv_v
                        s.improved = True
                    else:  # foolbox 2.2.1 leaves the last midpoint in place
                        self.x[i, s.elem] = s.last_mid
                    s.elem = -1
                    return
            branch = 1 if is_adv else 0
            child = next((k for k in range(node + 1, len(tree))
                          if tree[k][1] == node and tree[k][2] == branch), None)
            if child is None:
                return
            node = child


def _depth(active: int) -> int:
    """Decisions evaluated per element and round: more speculation when few samples are left."""
    return 1 if active >= 24 else (2 if active > 4 else (3 if active > 1 else 4))


@torch.no_grad()
def run_pointwise(qm: QueryModel, x: Tensor, y: Tensor, start: Tensor, start_linf: Tensor,
                  rngs: list[ShuffleStream]) -> Tensor:
    """foolbox 2's two phases from adversarial ``start`` points; returns the stored adversarials."""
    run = _Lockstep(qm, x, y, start, start_linf, rngs)
    while True:
        active = sum(s.phase != _DONE for s in run.samples)
        if not run.round(_depth(active), width=max(8, 256 // max(active, 1))):
            break
    return torch.from_numpy(run.best).view_as(x).to(x.device, x.dtype)


def pointwise(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 2.2.1 PointwiseAttack (its default S&P initialisation, distance Linf)."""
    seeds = [sample_seed(ctx.seed, int(i)) for i in index]
    init = run_salt_and_pepper(ctx.qmodel, x, y, seeds)
    ok = torch.isfinite(init.best_linf)
    out = x.clone()
    sel = ok.nonzero().squeeze(1)
    if sel.numel():
        rngs = [ShuffleStream(sample_seed(ctx.seed, int(index[int(i)]))) for i in sel]
        out[sel] = run_pointwise(ctx.qmodel, x[sel], y[sel], init.best[sel], init.best_linf[sel], rngs)
    return out, ok
