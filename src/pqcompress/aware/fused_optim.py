"""Optimizer steps fused with the compressor, one pass per tensor: the optimizers PQSGD, PQAdam
and PQAdamW, :func:`fuse` (a user's torch optimizer -> its fused counterpart), and
:func:`attach_step_hooks`, through which a compressor fuses the steps of a user's own
``torch.optim.SGD``/``Adam``/``AdamW`` in the loop ``opt.step(); comp.step()`` unchanged."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from pqcompress.errors import ConfigError
from pqcompress.ops.fused import (
    AdamTerms,
    AdamUpdate,
    FusedUpdate,
    SGDTerms,
    SGDUpdate,
    numba_eligible,
)

if TYPE_CHECKING:  # the compressor imports this module to attach its hooks
    from pqcompress.aware.compressor import Compressor

Params = Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]]
Hidden = list[tuple[torch.Tensor, torch.Tensor]]
# model -> its newest compressor with step hooks: an older one left alive (a notebook's earlier
# cell) must not compress the model a second time at every step
_OWNERS: weakref.WeakKeyDictionary[Any, weakref.ref[Any]] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------- one kind of optimizer each
def _eligible(opt: torch.optim.Optimizer, p: torch.Tensor, grad: torch.Tensor) -> bool:
    """``p``, its gradient and the state tensors it already has, in one layout."""
    state = [v for v in opt.state[p].values() if isinstance(v, torch.Tensor) and v.dim()]
    return numba_eligible(p, grad, *state)


def _sgd_fusable(group: dict[str, Any]) -> bool:
    return not (group.get("maximize") or group.get("differentiable"))


def _sgd_update(
    opt: torch.optim.Optimizer, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]
) -> SGDUpdate | None:
    """SGD's update of ``p`` (its momentum buffer created as torch would), or None when its
    tensors cannot go to the kernels together (e.g. state restored in another memory layout):
    torch's step takes it, then the compressor."""
    if not _eligible(opt, p, grad):
        return None
    terms = SGDTerms(
        lr=float(group["lr"]),
        momentum=float(group["momentum"]),
        dampening=float(group["dampening"]),
        weight_decay=float(group["weight_decay"]),
        nesterov=bool(group["nesterov"]),
    )
    state = opt.state[p]
    buf = state.get("momentum_buffer")
    first = buf is None
    if terms.momentum != 0 and buf is None:
        buf = torch.empty_like(p)  # p's layout: the kernel pairs them in memory order
        state["momentum_buffer"] = buf
    return SGDUpdate(grad, buf if terms.momentum != 0 else None, first, terms)


def _adam_fusable(group: dict[str, Any]) -> bool:
    """torch's ``fused=True`` is no obstacle: the same update, in one pass either way (a
    GradScaler stepping such an optimizer passes its scale, and the hooks leave that step)."""
    off = ("amsgrad", "maximize", "capturable", "differentiable")
    return not any(group.get(k) for k in off)


def _adam_update(
    opt: torch.optim.Optimizer, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]
) -> AdamUpdate | None:
    """Adam's (AdamW's) update of ``p``, its state created and its step advanced as torch's."""
    if not _eligible(opt, p, grad):
        return None
    state = opt.state[p]
    if not state:  # as torch.optim.Adam creates it
        state["step"] = torch.tensor(0.0, dtype=torch.float32)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    state["step"] += 1
    beta1, beta2 = group["betas"]
    terms = AdamTerms(
        lr=float(group["lr"]),
        step=int(state["step"].item()),
        beta1=float(beta1),
        beta2=float(beta2),
        eps=float(group["eps"]),
        weight_decay=float(group["weight_decay"]),
        decoupled=bool(group.get("decoupled_weight_decay", False)),
    )
    return AdamUpdate(grad, state["exp_avg"], state["exp_avg_sq"], terms)


Kind = tuple[
    Callable[[dict[str, Any]], bool],
    Callable[[torch.optim.Optimizer, torch.Tensor, torch.Tensor, dict[str, Any]], Any],
]
# the torch optimizers with a fused kernel (exact classes: a subclass may change the step)
KINDS: dict[type[torch.optim.Optimizer], Kind] = {
    torch.optim.SGD: (_sgd_fusable, _sgd_update),
    torch.optim.Adam: (_adam_fusable, _adam_update),
    torch.optim.AdamW: (_adam_fusable, _adam_update),
}


def _take_updates(
    opt: torch.optim.Optimizer, comp: Compressor, kind: Kind
) -> tuple[dict[str, FusedUpdate], Hidden]:
    """The fused update of every compressed tensor of ``opt`` with a dense gradient; their
    gradients are hidden (``p.grad = None``) so that torch's step leaves them alone."""
    fusable, make = kind
    by_param = {id(t.param): t for t in comp.fused_targets()}
    updates: dict[str, FusedUpdate] = {}
    hidden: Hidden = []
    try:
        for group in opt.param_groups:
            if not fusable(group):
                continue
            for p in group["params"]:
                target = by_param.get(id(p))
                grad = p.grad
                if target is None or grad is None or grad.is_sparse:
                    continue
                update = make(opt, p, grad, group)
                if update is None:
                    continue
                updates[target.name] = update
                hidden.append((p, grad))
                p.grad = None
    except BaseException:  # a group torch would refuse too: leave every gradient in place
        _restore(hidden)
        raise
    return updates, hidden


def _restore(hidden: Hidden) -> None:
    for p, grad in hidden:
        p.grad = grad


# ---------------------------------------------------------------- the fused optimizers
class _Fused(torch.optim.Optimizer):
    """The step the fused optimizers share: every compressed tensor's update is taken out of
    torch's step (its gradient hidden) and run fused with its P->Q application by
    :meth:`Compressor.step_fused`; torch's step takes the other parameters."""

    compressor: Compressor
    kind: Kind

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        comp = self.compressor
        if not comp.can_fuse():
            super().step()
            return loss
        updates, hidden = _take_updates(self, comp, self.kind)
        try:
            super().step()
        finally:
            _restore(hidden)
        comp.step_fused(updates)
        return loss


class PQSGD(_Fused, torch.optim.SGD):
    """``torch.optim.SGD`` that updates the compressed tensors and compresses them in one fused
    pass (``ops.fused.sgd_compress_``), reading each weight, gradient and momentum once for
    the update and the compressor's statistics and once more to compress.

    Use it in place of SGD and keep calling ``compressor.step()`` after ``optimizer.step()``:
    that call then only closes the step. Other parameters (biases, BatchNorm) take torch's own
    SGD step. When the compressor cannot fuse (``Compressor.can_fuse``: a per-epoch or
    post-training schedule, a sticky mask, CUDA tensors, the torch backend) or a group uses
    ``maximize``, the step is plain SGD and ``compressor.step()`` compresses as usual. The
    state dict is SGD's (``momentum_buffer`` per parameter), so checkpoints move freely between
    SGD and PQSGD. The update is torch's formula in float32, element by element; it can differ
    from torch's vectorised kernels in the last bit (fused multiply-add), not in the method.
    """

    kind = KINDS[torch.optim.SGD]

    def __init__(self, params: Params, compressor: Compressor, **sgd: Any) -> None:
        """``sgd``: ``torch.optim.SGD``'s keyword arguments (lr, momentum, dampening,
        weight_decay, nesterov, ...)."""
        super().__init__(params, **sgd)
        self.compressor = compressor


class PQAdam(_Fused, torch.optim.Adam):
    """``torch.optim.Adam`` fused with the compressor, as :class:`PQSGD` fuses SGD: for each
    compressed tensor, Adam's update (weight decay as L2, or decoupled for AdamW; bias
    corrections; float32 element by element) and the compressor's statistics share one pass,
    then one more pass compresses. The state dict is Adam's (``step``, ``exp_avg``,
    ``exp_avg_sq``), so checkpoints move freely between Adam and PQAdam. Groups with
    ``amsgrad``, ``maximize``, ``capturable`` or ``differentiable`` take torch's own step, and
    ``compressor.step()`` compresses their tensors as usual."""

    kind = KINDS[torch.optim.Adam]

    def __init__(self, params: Params, compressor: Compressor, **adam: Any) -> None:
        """``adam``: ``torch.optim.Adam``'s keyword arguments (lr, betas, eps, weight_decay,
        amsgrad, decoupled_weight_decay, ...)."""
        super().__init__(params, **adam)
        self.compressor = compressor


class PQAdamW(PQAdam):
    """``torch.optim.AdamW`` fused with the compressor: :class:`PQAdam` with decoupled weight
    decay, and AdamW's default ``weight_decay=0.01``."""

    def __init__(self, params: Params, compressor: Compressor, **adamw: Any) -> None:
        adamw.setdefault("weight_decay", 0.01)
        super().__init__(params, compressor, decoupled_weight_decay=True, **adamw)


FUSED: dict[type[torch.optim.Optimizer], type[_Fused]] = {
    torch.optim.SGD: PQSGD,
    torch.optim.Adam: PQAdam,
    torch.optim.AdamW: PQAdamW,
}


def fuse(optimizer: torch.optim.Optimizer, compressor: Compressor) -> torch.optim.Optimizer:
    """The fused counterpart of a user's ``torch.optim.SGD``, ``Adam`` or ``AdamW``: the same
    param groups, hyperparameters and state, with every compressed tensor's update fused
    with the compressor's application (what brings the pass from a separate read of every
    weight to a share of the optimizer's own pass). The loop stays ``opt.step();
    comp.step()``. Build a learning-rate scheduler on the returned optimizer, not the old one.
    An optimizer already fused is returned as it is; any other optimizer is a
    ``ConfigError`` naming the ones accepted (keep it and call ``comp.step()`` after it: the
    result is the same, the pass is separate)."""
    if isinstance(optimizer, _Fused):
        if optimizer.compressor is not compressor:
            raise ConfigError("this optimizer is already fused with another compressor")
        return optimizer
    cls = FUSED.get(type(optimizer))
    if cls is None:
        accepted = ", ".join(f"torch.optim.{k.__name__}" for k in FUSED)
        raise ConfigError(
            f"no fused counterpart for {type(optimizer).__module__}.{type(optimizer).__name__}; "
            f"fuse() accepts {accepted}. Other optimizers work unfused: call comp.step() after "
            "opt.step()"
        )
    fused = cls([dict(g) for g in optimizer.param_groups], compressor)  # the groups' settings
    fused.defaults = dict(optimizer.defaults)
    fused.load_state_dict(optimizer.state_dict())
    return fused


# ---------------------------------------------------------------- the user's own optimizer
def attach_step_hooks(comp: Compressor) -> Callable[[], None]:
    """Fuse the steps of the user's own optimizer with ``comp``'s applications, leaving the
    loop ``opt.step(); comp.step()`` as it is. torch's global optimizer step hooks run around
    every ``step()``: before it, when the optimizer is exactly a ``torch.optim.SGD``, ``Adam``
    or ``AdamW`` that holds every tensor ``comp`` compresses, is stepped without a closure and
    ``comp`` can fuse, the compressed tensors' updates are taken out of torch's step (as the
    fused optimizers do); after it, they run fused with P->Q and ``comp.step()`` only closes
    the step. Any other optimizer, or one holding only some of the tensors, steps as it is
    and ``comp.step()`` compresses after it. Of several compressors of one model, the newest
    fuses. Returns the function that removes the hooks; they hold ``comp`` weakly and go with
    it."""
    ref = weakref.ref(comp)
    _OWNERS[comp.model] = ref  # the newest compressor of a model is the one that fuses
    pending: dict[int, tuple[dict[str, FusedUpdate], Hidden]] = {}

    def before(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        comp = ref()
        stale = pending.pop(id(opt), None)
        if stale is not None:  # the last step raised between the hooks: give back the grads
            _restore([(p, g) for p, g in stale[1] if p.grad is None])  # not over newer ones
        if comp is None or _OWNERS.get(comp.model) is not ref:
            return  # gone, or a newer compressor of the same model took over
        kind = KINDS.get(type(opt))
        # args[0] is the optimizer itself; a wrapper may pass closure=None explicitly
        closure = any(a is not None for a in (*args[1:], *kwargs.values()))
        if kind is None or closure or not comp.can_fuse():
            return
        held = {id(p) for g in opt.param_groups for p in g["params"]}
        if not all(id(t.param) in held for t in comp.fused_targets()):
            return  # a second optimizer owns some of them: one application per step stays
        with torch.no_grad():
            pending[id(opt)] = _take_updates(opt, comp, kind)

    def after(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        taken = pending.pop(id(opt), None)
        if taken is None:
            return
        updates, hidden = taken
        _restore(hidden)
        comp = ref()
        if comp is not None:
            with torch.no_grad():
                comp.step_fused(updates)

    handles = [
        register_optimizer_step_pre_hook(before),
        register_optimizer_step_post_hook(after),
    ]

    def remove() -> None:
        for h in handles:
            h.remove()

    weakref.finalize(comp, remove)
    return remove
