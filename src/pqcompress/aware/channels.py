"""Channel granularity: whole output channels pruned by the std rule lifted to channels, the
channels that must go together found by Torch-Pruning's dependency graph, and shrinking a
model to the channels it kept.

The rule (docs/compression.md §7). Element pruning drops ``w`` when ``|w| < alpha * std(W)``.
Channel pruning drops output channel ``c`` (a conv filter, a linear row) when its root mean
square is under the same threshold: ``rms(W[c]) < alpha * std(W)``. The RMS (the L2 norm
divided by the square root of the channel's size) is the channel's typical magnitude, on the
scale of ``std(W)`` itself: for weights centred on zero ``std(W)^2`` is the mean of the
channels' ``rms^2``, so one alpha means the same in both granularities and a layer's size does
not move the threshold (an L1 or L2 norm grows with the filter's size; an L1 mean weighs a few
large weights less than the L2 the quantizer's max is driven by).

Coupled channels (a residual addition, a depthwise conv, a concatenation, a flatten into a
linear layer) form one *group*: every layer whose output channels are coupled scores the
channel (its ratio ``rms / std``; the group's score is the mean of those ratios), and a pruned
channel is zeroed in every parameter of the group: the producing layers' rows and biases, the
BatchNorm scale and shift that follow (so the channel's activation is exactly zero), and the
consuming layers' input columns (so nothing downstream reads it). Then removing the channel
changes no output, which is what :func:`shrink` does at export.

Torch-Pruning (an optional extra, ``pip install 'pqcompress[channels]'``) traces the model;
pqcompress never follows a graph by hand. A group that holds a layer whose channels we cannot
zero exactly (a LayerNorm or GroupNorm over the channels, a grouped conv, an attention or
recurrent layer, a bare parameter) or whose channels are the model's outputs stays dense, and
:meth:`ChannelPlan.records` says why.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pqcompress.config import CompressionConfig
from pqcompress.errors import ConfigError, ShrinkError

SHRINK_ATOL = 1e-4  # the most a shrunk model's float outputs may move (absolute, + relative)


def _tp() -> Any:
    try:
        import torch_pruning
    except ImportError:
        raise ConfigError(
            "channel granularity and shrinking need Torch-Pruning (it finds the coupled "
            "channels): pip install 'pqcompress[channels]' (torch-pruning>=1.5)"
        ) from None
    return torch_pruning


@dataclass(frozen=True)
class Slice:
    """The positions of one parameter that belong to a group's channels."""

    param: str  # full parameter name
    module: str  # its module's name
    dim: int  # the dimension the positions index
    index: torch.Tensor  # positions along ``dim`` (int64)
    root: torch.Tensor  # the group channel each position belongs to (int64)
    direction: str  # "out": the module's output channels; "in": its input channels


@dataclass
class ChannelGroup:
    """Channels that are pruned together, and how."""

    root: str  # the module whose output channels index the group
    channels: int
    slices: list[Slice]
    producers: list[Slice]  # output slices of compressed weights: they score the channels
    reason: str | None = None  # None: prunable; else why the group stays dense
    alpha: float = 0.0
    solved: bool = False  # takes the alpha solved for target_density / target_flops
    weights: int = 0  # elements of the producers (for solve_min_share)

    @property
    def prunable(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class LayerMacs:
    """Multiply-accumulates of one conv/linear layer per sample, as a function of the
    channels it keeps."""

    module: str
    out_channels: int
    in_channels: int
    per_pair: float  # MACs per (output channel, input channel) pair (kernel x positions)
    depthwise: bool  # one input channel per output channel

    def macs(self, out_kept: int, in_kept: int) -> float:
        if self.depthwise:
            return out_kept * self.per_pair
        return out_kept * in_kept * self.per_pair


# ---------------------------------------------------------------------------- the graph
def _call(model: nn.Module, example: Any) -> Any:
    args, kwargs = example
    return model(*args, **kwargs)


def as_example(example: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) for a forward call from a tensor, a tuple/list of inputs, a dict of
    keyword inputs or an (args, kwargs) pair as captured from a forward."""
    if isinstance(example, torch.Tensor):
        return (example,), {}
    if isinstance(example, Mapping):
        return (), dict(example)
    if (
        isinstance(example, tuple)
        and len(example) == 2
        and isinstance(example[0], tuple)
        and isinstance(example[1], dict)
    ):
        return example
    if isinstance(example, (tuple, list)):
        return tuple(example), {}
    raise ConfigError(
        "example inputs must be a tensor, a tuple of inputs or a dict of keyword inputs, "
        f"got {type(example).__name__}"
    )


def _dependency_graph(model: nn.Module, example: Any) -> Any:
    tp = _tp()
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(
                model, example_inputs=example, forward_fn=_call, verbose=False
            )
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            f"Torch-Pruning could not trace the model to find its coupled channels ({detail}); "
            "use granularity='element', or make the forward traceable by autograd"
        ) from None
    finally:
        model.train(was_training)


_CONV = nn.modules.conv._ConvNd
_NORM_AFFINE = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def _is_depthwise(m: nn.Module) -> bool:
    return (
        isinstance(m, _CONV)
        and m.groups > 1
        and m.groups == m.in_channels
        and m.out_channels % m.in_channels == 0
        and m.out_channels == m.in_channels
    )


def _param_dims(m: nn.Module, direction: str) -> dict[str, int] | str:
    """{parameter attribute: dim} that a channel of ``m`` (``direction`` out or in) occupies,
    or why such a channel cannot be zeroed exactly."""
    if isinstance(m, _CONV):
        if m.groups > 1 and not _is_depthwise(m):
            return f"a grouped {type(m).__name__} (groups={m.groups})"
        transposed = bool(m.transposed)
        if direction == "in":
            if _is_depthwise(m):
                return {}  # its input channels are its output channels (the "out" slice)
            return {"weight": 0 if transposed else 1}
        out = {"weight": 1 if transposed else 0}
        return {**out, "bias": 0} if m.bias is not None else out
    if isinstance(m, nn.Linear):
        if direction == "in":
            return {"weight": 1}
        return {"weight": 0, "bias": 0} if m.bias is not None else {"weight": 0}
    if isinstance(m, _NORM_AFFINE):
        if direction == "in":
            return {}
        return {a: 0 for a in ("weight", "bias") if getattr(m, a, None) is not None}
    if isinstance(m, nn.PReLU):
        return {"weight": 0} if m.num_parameters > 1 else {}
    if not any(True for _ in m.parameters(recurse=False)):
        return {}  # no parameters of its own (an activation, a pooling layer)
    return f"a {type(m).__name__}, whose channels pqcompress does not prune"


def _groups(
    dg: Any, model: nn.Module, compressed: set[str] | None
) -> tuple[list[ChannelGroup], set[str]]:
    """The model's channel groups (with why a group stays dense), and the compressed weights
    that some group scores (``compressed=None``: the groups as they are, for shrinking)."""
    names = {m: n for n, m in model.named_modules()}
    params = dict(model.named_parameters())
    out: list[ChannelGroup] = []
    scored: set[str] = set()
    for group in dg.get_all_groups():
        root_module = group[0].dep.target.module
        root = names.get(root_module, "?")
        slices: list[Slice] = []
        reason: str | None = None
        consumers = 0
        for item in group:
            dep, module = item.dep, item.dep.target.module
            if isinstance(module, nn.Parameter):
                reason = reason or "it couples with a bare parameter (nn.Parameter)"
                continue
            if module not in names:
                continue  # an operation Torch-Pruning records (add, cat, flatten ...)
            direction = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
            consumers += direction == "in"
            dims = _param_dims(module, direction)
            if isinstance(dims, str):
                reason = reason or f"it couples with {dims} ('{names[module]}')"
                continue
            index = torch.as_tensor(list(item.idxs), dtype=torch.int64)
            roots = torch.as_tensor(list(item.root_idxs), dtype=torch.int64)
            for attr, dim in dims.items():
                full = f"{names[module]}.{attr}" if names[module] else attr
                if full not in params:
                    continue
                slices.append(Slice(full, names[module], dim, index, roots, direction))
        channels = int(max((int(s.root.max()) + 1 for s in slices if s.root.numel()), default=0))
        producers = [
            s
            for s in slices
            if s.direction == "out"
            and s.param.endswith("weight")
            and (compressed is None or s.param in compressed)
        ]
        if reason is None and consumers == 0:
            reason = "its channels are the model's outputs"
        if reason is None and compressed is not None:
            loose = [
                s.param
                for s in slices
                if s.direction == "out"
                and s.param.endswith("weight")
                and s.param not in compressed
                and isinstance(model.get_submodule(s.module), (_CONV, nn.Linear))
            ]
            if loose:
                reason = f"'{loose[0]}' produces its channels and is not compressed"
            elif not producers:
                reason = "no compressed layer produces its channels"
        g = ChannelGroup(root, channels, slices, producers, reason)
        g.weights = sum(params[s.param].numel() for s in producers)
        if g.prunable:
            scored.update(s.param for s in producers)
        out.append(g)
    return out, scored


def _layer_macs(model: nn.Module, example: Any) -> list[LayerMacs]:
    """Per-sample MACs of every conv and linear layer, from one forward's output shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (_CONV, nn.Linear)):

            def hook(mod: nn.Module, _inp: Any, out: Any, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    shapes[name] = tuple(out.shape)

            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _call(model, example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    out = []
    for name, m in model.named_modules():
        shape = shapes.get(name)
        if shape is None:
            continue
        batch = shape[0] if len(shape) > 1 else 1
        if isinstance(m, nn.Linear):
            positions = max(1, (int(torch.tensor(shape).prod()) // max(batch, 1)) // m.out_features)
            out.append(LayerMacs(name, m.out_features, m.in_features, float(positions), False))
            continue
        assert isinstance(m, _CONV)
        positions = int(torch.tensor(shape[2:]).prod()) if len(shape) > 2 else 1
        kernel = int(torch.tensor(m.kernel_size).prod())
        depthwise = _is_depthwise(m)
        per_pair = kernel * positions / (1 if depthwise else m.groups)
        out.append(LayerMacs(name, m.out_channels, m.in_channels, float(per_pair), depthwise))
    return out


# ---------------------------------------------------------------------------- the plan
@dataclass
class ChannelPlan:
    """The channel groups of one model and how a compressor scores and masks them."""

    groups: list[ChannelGroup]
    macs: list[LayerMacs]
    unscored: dict[str, str] = field(default_factory=dict)  # compressed weight -> why dense
    dead: dict[int, torch.Tensor] = field(default_factory=dict)  # sticky: group -> pruned

    @classmethod
    def build(
        cls,
        model: nn.Module,
        example: Any,
        config: CompressionConfig,
        targets: Sequence[Any],
    ) -> ChannelPlan:
        """Trace a copy of ``model`` (its BatchNorm statistics are untouched) on ``example``
        and decide, per group, its alpha and whether it takes the solved one."""
        example = as_example(example)
        twin = copy.deepcopy(model)
        dg = _dependency_graph(twin, example)
        compressed = {t.name for t in targets if t.spec.kind != "quantize"}
        groups, scored = _groups(dg, twin, compressed)
        macs = _layer_macs(twin, example)
        by_name = {t.name: t for t in targets}
        solving = config.target_density is not None or config.target_flops is not None
        total = sum(g.weights for g in groups if g.prunable) or 1
        for g in groups:
            if not g.prunable:
                continue
            alphas = [by_name[s.param].alpha for s in g.producers]
            fixed = [by_name[s.param].fixed_alpha for s in g.producers]
            g.alpha = min(alphas)  # the least aggressive of its layers' settings
            g.solved = solving and not any(fixed) and g.weights >= config.solve_min_share * total
        if solving and not any(g.solved for g in groups):
            raise ConfigError(
                "target_density/target_flops has no channel group to solve: every group is "
                "dense, or has an alpha of its own, or holds less than solve_min_share of the "
                "weights (Compressor.channel_records() lists each group and why)"
            )
        unscored: dict[str, str] = {}
        for t in targets:
            if t.name in scored or t.spec.kind == "quantize":
                continue
            why = next(
                (g.reason for g in groups for s in g.slices if s.param == t.name and g.reason),
                "no channel group holds its output channels",
            )
            unscored[t.name] = str(why)
        return cls(groups, macs, unscored)

    # ------------------------------------------------------------------ scoring
    def scores(self, weights: Callable[[str], torch.Tensor]) -> dict[int, torch.Tensor]:
        """Per prunable group, each channel's score: the mean over the producing layers of
        ``rms(W[c]) / std(W)`` (``weights(name)`` gives a layer's float weights)."""
        out: dict[int, torch.Tensor] = {}
        for i, g in enumerate(self.groups):
            if not g.prunable:
                continue
            total = torch.zeros(g.channels, dtype=torch.float64)
            count = torch.zeros(g.channels, dtype=torch.float64)
            for s in g.producers:
                w = weights(s.param).detach()
                rows = w.movedim(s.dim, 0).reshape(w.shape[s.dim], -1).float()
                var = torch.var(rows, correction=0)  # the layer's std; float32 suffices to score
                std = float(var.sqrt()) if w.numel() > 1 else 0.0
                rms = torch.linalg.vector_norm(rows, dim=1).div_(rows.shape[1] ** 0.5)
                rms = rms.double().cpu()[s.index]
                ratio = rms / std if std > 0 else torch.zeros_like(rms)
                total.index_add_(0, s.root, ratio)
                count.index_add_(0, s.root, torch.ones_like(ratio))
            out[i] = total / count.clamp_min(1)
        return out

    def keep(self, scores: dict[int, torch.Tensor], alphas: dict[int, float]) -> dict[int, Any]:
        """Per prunable group, the channels kept at ``alphas`` (score >= alpha; at least the
        best channel; never one a sticky mask pruned)."""
        out = {}
        for i, s in scores.items():
            k = s >= alphas[i]
            dead = self.dead.get(i)
            if dead is not None:
                k &= ~dead
            if not bool(k.any()):
                k = torch.zeros_like(k)
                k[int(torch.argmax(torch.where(dead, -1.0, s) if dead is not None else s))] = True
            out[i] = k
        return out

    def channel_share(self, keep: Mapping[int, torch.Tensor]) -> float:
        """The share of the prunable groups' channels kept."""
        total = sum(self.groups[i].channels for i in keep)
        return sum(int(k.sum()) for k in keep.values()) / total if total else 1.0

    def mac_share(self, keep: Mapping[int, torch.Tensor]) -> float:
        """The share of the dense model's conv/linear MACs kept."""
        removed: dict[tuple[str, str], int] = {}
        for i, k in keep.items():
            gone = ~k
            for s in self.groups[i].slices:
                if s.param.endswith("weight"):
                    key = (s.module, s.direction)
                    removed[key] = removed.get(key, 0) + int(gone[s.root].sum())
        dense = self.dense_macs() or 1.0
        kept = sum(
            m.macs(
                m.out_channels - removed.get((m.module, "out"), 0),
                m.in_channels - removed.get((m.module, "in"), 0),
            )
            for m in self.macs
        )
        return kept / dense

    def solve(
        self, scores: dict[int, torch.Tensor], fixed: dict[int, float], target: float, flops: bool
    ) -> float:
        """The one alpha for the solved groups that keeps ``target`` of the channels (or, with
        ``flops``, of the MACs), the other groups at their ``fixed`` alphas; by bisection
        (the share kept only falls as alpha grows)."""
        share = self.mac_share if flops else self.channel_share
        solved = [i for i in scores if self.groups[i].solved]
        top = max(float(scores[i].max()) for i in solved) + 1e-6

        def kept(alpha: float) -> float:
            return share(self.keep(scores, {**fixed, **dict.fromkeys(solved, alpha)}))

        if kept(0.0) <= target:
            return 0.0
        lo, hi = 0.0, top
        for _ in range(40):
            mid = (lo + hi) / 2
            if kept(mid) >= target:
                lo = mid
            else:
                hi = mid
        return lo

    # ------------------------------------------------------------------ masking
    def masks(self, keep: Mapping[int, torch.Tensor]) -> dict[str, list[tuple[int, torch.Tensor]]]:
        """{parameter: [(dim, positions to zero), ...]} for the channels ``keep`` drops."""
        out: dict[str, list[tuple[int, torch.Tensor]]] = {}
        for i, k in keep.items():
            gone = ~k
            if not bool(gone.any()):
                continue
            for s in self.groups[i].slices:
                pos = s.index[gone[s.root]]
                if pos.numel():
                    out.setdefault(s.param, []).append((s.dim, pos))
        return out

    def dense_macs(self) -> float:
        """The dense model's conv/linear MACs per sample."""
        return float(sum(m.macs(m.out_channels, m.in_channels) for m in self.macs))

    def summary(self, keep: Mapping[int, torch.Tensor]) -> dict[str, Any]:
        """MACs per sample before and after removing the pruned channels, and the shares of
        MACs and of the prunable groups' channels kept."""
        share = self.mac_share(keep)
        dense = self.dense_macs()
        return {
            "macs_before": dense,
            "macs_after": dense * share,
            "mac_share": share,
            "channel_share": self.channel_share(keep),
            "groups": len(self.groups),
            "prunable_groups": sum(g.prunable for g in self.groups),
        }

    def records(self, keep: Mapping[int, torch.Tensor] | None = None) -> list[dict[str, Any]]:
        """One record per group: root, channels, kept, members, alpha, solved, reason."""
        out = []
        for i, g in enumerate(self.groups):
            k = keep.get(i) if keep is not None else None
            out.append(
                {
                    "root": g.root,
                    "channels": g.channels,
                    "kept": int(k.sum()) if k is not None else g.channels,
                    "members": sorted({s.module for s in g.slices}),
                    "alpha": g.alpha if g.prunable else None,
                    "solved": g.solved,
                    "reason": g.reason,
                }
            )
        return out


def zero_positions(t: torch.Tensor, where: Sequence[tuple[int, torch.Tensor]]) -> None:
    """Zero ``t`` in place at each (dim, positions)."""
    for dim, pos in where:
        t.index_fill_(dim, pos.to(t.device), 0)


def keep_mask(shape: torch.Size, where: Sequence[tuple[int, torch.Tensor]], device: Any) -> Any:
    """A bool tensor of ``shape``: False at each (dim, positions)."""
    mask = torch.ones(shape, dtype=torch.bool, device=device)
    zero_positions(mask, where)
    return mask


# ---------------------------------------------------------------------------- shrinking
@dataclass(frozen=True)
class ShrinkReport:
    """What :func:`shrink` removed: per group its channels before and after, and the model's
    parameters and per-sample conv/linear MACs before and after."""

    groups: list[dict[str, Any]]
    params_before: int
    params_after: int
    macs_before: float
    macs_after: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "macs_before": self.macs_before,
            "macs_after": self.macs_after,
        }


def _flat_outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [t for v in out.values() for t in _flat_outputs(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in _flat_outputs(v)]
    return []


def _max_diff(ref: list[torch.Tensor], got: list[torch.Tensor]) -> float:
    if len(ref) != len(got) or any(a.shape != b.shape for a, b in zip(ref, got, strict=True)):
        return float("inf")
    worst = 0.0
    for a, b in zip(ref, got, strict=True):
        if a.is_floating_point():
            excess = (a - b).abs() - SHRINK_ATOL * a.abs()
            worst = max(worst, float(excess.max()) if excess.numel() else 0.0)
        elif not torch.equal(a, b):
            return float("inf")
    return worst


def count_macs(model: nn.Module, example: Any) -> float:
    """Multiply-accumulates of the model's conv and linear layers per sample, from one
    forward on ``example`` (a tensor, a tuple of inputs or a dict of keyword inputs)."""
    example = as_example(example)
    return sum(m.macs(m.out_channels, m.in_channels) for m in _layer_macs(model, example))


def shrink(model: nn.Module, example: Any) -> ShrinkReport:
    """Remove, in place, every channel whose parameters are all zero in its whole group (the
    channels channel-granularity P->Q pruned), with their BatchNorm entries and the next
    layers' input columns. Outputs stay those of the unshrunk model (float: within
    ``SHRINK_ATOL``), checked after each group on ``example``: a group Torch-Pruning cannot
    follow is one :class:`ShrinkError` naming its layer, never a silently wrong model."""
    example = as_example(example)
    model.eval()
    with torch.no_grad():
        reference = _flat_outputs(_call(model, example))
    params_before = sum(p.numel() for p in model.parameters())
    macs_before = count_macs(model, example)
    dg = _dependency_graph(model, example)
    groups, _ = _groups(dg, model, None)
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    records = []
    for g in groups:
        if g.reason is not None:
            continue
        alive = torch.zeros(g.channels, dtype=torch.int64)
        for s in g.slices:
            p = params[s.param].detach()
            rows = p.movedim(s.dim, 0).reshape(p.shape[s.dim], -1)[s.index].cpu()
            alive.index_add_(0, s.root, rows.ne(0).any(dim=1).long())
        gone = torch.nonzero(alive == 0).flatten().tolist()
        if not gone or len(gone) == g.channels:
            continue
        root = modules[g.root]
        pruner = dg.get_pruner_of_module(root)
        try:
            dg.get_pruning_group(root, pruner.prune_out_channels, gone).prune()
            with torch.no_grad():
                got = _flat_outputs(_call(model, example))
            diff = _max_diff(reference, got)
            problem = None if diff <= SHRINK_ATOL else f"changed the model's outputs by {diff:.3g}"
        except Exception as exc:
            problem = "made its forward fail (" + " ".join(str(exc).split())[:200] + ")"
        if problem is not None:
            raise ShrinkError(
                f"removing the {len(gone)} pruned channels of '{g.root}' (with "
                f"{', '.join(sorted({s.module for s in g.slices} - {g.root})) or 'nothing else'}) "
                f"{problem}: Torch-Pruning could not follow how this model uses them. Save "
                f"without shrink, or leave '{g.root}' out of channel pruning (exclude=...)"
            )
        records.append({"root": g.root, "channels": g.channels, "kept": g.channels - len(gone)})
    return ShrinkReport(
        records,
        params_before,
        sum(p.numel() for p in model.parameters()),
        macs_before,
        count_macs(model, example),
    )
