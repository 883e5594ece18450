"""SparseGPT (Frantar & Alistarh 2023): prune with second-order error compensation.

One :class:`SparseGPT` per Linear: ``add_batch`` accumulates the Hessian ``H = 2XᵀX/N`` (fp32),
``prune`` chooses the mask block by block from ``w² / [H⁻¹]_jj²`` and propagates each pruned column's
error to the columns not yet processed (the OBS update, using the upper Cholesky factor of ``H⁻¹``),
``free`` drops the Hessian. Nothing else lives here.

The unstructured mask is chosen per 128-column block over all rows together (the reference algorithm's
adaptive mask selection), not per row: on rows of different scales this halves the reconstruction
error, and each block still prunes exactly ``round(s · rows · width)`` weights.
"""

from __future__ import annotations

import torch

from prunescale.errors import PrunescaleError
from prunescale.prune.masks import matrix_mask, nm_mask
from prunescale.prune.wanda import InputStats


def _damped_inverse_cholesky(H: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, float]:
    """Upper Cholesky factor of (H + λI)⁻¹, λ = percdamp · mean(diag H), and the damping fraction used:
    λ grows ×10 (up to 1000×) while H + λI is not positive definite. The caller records a raised damping
    in the manifest, so the recorded percdamp is the one that was used."""
    eye = torch.eye(H.shape[0], device=H.device)
    mean_diag = torch.mean(torch.diag(H))
    for attempt in range(4):
        try:
            used = percdamp * 10**attempt
            damped = H + used * mean_diag * eye
            return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(damped)), upper=True), used
        except torch.linalg.LinAlgError:
            continue
    raise PrunescaleError("SparseGPT: the calibration Hessian is not positive definite even with 1000× damping")


class SparseGPT:
    def __init__(self, in_features: int, device: torch.device | str = "cpu") -> None:
        self.H: torch.Tensor | None = torch.zeros(in_features, in_features, dtype=torch.float32, device=device)
        self.tokens = 0
        self.sequences = 0
        self.candidates: torch.Tensor | None = None  # prune(keep_candidates=True): each weight's value if kept
        self.s1 = torch.zeros(in_features, dtype=torch.float32, device=device)  # Σ x_j (DSnoT's mean)
        self.percdamp_used: float | None = None  # set by prune(): the damping fraction that was needed

    @staticmethod
    def summarise(x: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor]:
        """This batch's ``Σ x xᵀ`` (fp32), token count and ``Σ x``; computed once for Linears sharing an
        input (q,k,v; gate,up), where it is the dominant cost of a statistics pass."""
        x = x.detach().reshape(-1, x.shape[-1]).float()
        return x.T @ x, x.shape[0], x.sum(0)

    def fold(self, xtx: torch.Tensor, n: int, s1: torch.Tensor | None = None) -> None:
        """Fold a batch into the running mean ``H = 2 Σ x xᵀ / N`` (and the feature sums)."""
        assert self.H is not None, "add_batch after free()"
        if n == 0:
            return
        if s1 is not None:
            self.s1 += s1
        self.sequences += 1
        total = self.tokens + n
        self.H.mul_(self.tokens / total).add_(xtx, alpha=2.0 / total)
        self.tokens = total

    def add_batch(self, x: torch.Tensor) -> None:
        """Fold calibration inputs (…, d_in) into the running mean of ``2 x xᵀ``."""
        self.fold(*self.summarise(x))

    @torch.no_grad()
    def prune(
        self,
        weight: torch.Tensor,
        sparsity: float | None = None,
        nm: tuple[int, int] | None = None,
        blocksize: int = 128,
        percdamp: float = 0.01,
        keep_candidates: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (updated weight in its dtype, mask of pruned weights). ``weight`` is not modified.

        With ``keep_candidates`` the value each weight had when its column was processed (what it would
        have kept, after the error updates of the columns before it) is kept in ``self.candidates``
        (fp32): DSnoT regrows pruned weights with these values."""
        assert self.H is not None, "prune after free()"
        W = weight.detach().clone().float()
        H = self.H.clone()
        rows, cols = W.shape
        dead = torch.diag(H) == 0
        H[dead, dead] = 1.0
        W[:, dead] = 0.0
        Hinv, self.percdamp_used = _damped_inverse_cholesky(H, percdamp)
        mask = torch.zeros_like(W, dtype=torch.bool)
        cand = torch.zeros_like(W) if keep_candidates else None
        if nm is not None and blocksize % nm[1]:
            blocksize = nm[1] * max(1, blocksize // nm[1])
        for i1 in range(0, cols, blocksize):
            i2 = min(i1 + blocksize, cols)
            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]
            d = torch.diag(Hinv1)
            if nm is None:
                assert sparsity is not None
                # one threshold over the whole block (all rows), as in the reference algorithm: rows of
                # different scale may prune different amounts; the block total is exact
                mask1 = matrix_mask(W1**2 / d.unsqueeze(0) ** 2, sparsity)
            else:
                mask1 = torch.zeros_like(W1, dtype=torch.bool)
            for i in range(i2 - i1):
                if nm is not None and i % nm[1] == 0:
                    j = i + nm[1]
                    mask1[:, i:j] = nm_mask(W1[:, i:j] ** 2 / d[i:j].unsqueeze(0) ** 2, *nm)
                w = W1[:, i]
                if cand is not None:
                    cand[:, i1 + i] = w
                q = w.clone()
                q[mask1[:, i]] = 0.0
                Q1[:, i] = q
                err = (w - q) / d[i]
                W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
                Err1[:, i] = err
            W[:, i1:i2] = Q1
            mask[:, i1:i2] = mask1
            W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
        W[mask] = 0.0
        self.candidates = cand
        return W.to(weight.dtype), mask

    def input_stats(self) -> InputStats:
        """The per-feature input statistics DSnoT reads, from the Hessian's diagonal and the sums."""
        assert self.H is not None, "input_stats after free()"
        sq_mean = torch.diag(self.H) / 2
        n = max(1, self.tokens)
        return InputStats((sq_mean * n).sqrt(), self.s1 / n, sq_mean.clone(), self.tokens, max(1, self.sequences))

    def free(self) -> None:
        self.H = None
        self.candidates = None
