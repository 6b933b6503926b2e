"""Permutation specs derived by tracing a model with `torch.fx`: which permutation group acts on each
axis of each state entry, and where each group's channels can be watched (activation matching).

The tracer follows the channel axis (axis 1) of every value through the graph. A convolution or
linear layer starts a new group on its output and reads its input's group on its weight's input axis;
BatchNorm carries its input's group; ReLU, pooling, dropout, the mean over spatial axes and a
flatten once the spatial axes are 1x1 keep it; adding two tensors ties their groups (union-find), so
a residual stream is one group. The model's input and output channels are never permuted: every group
tied to them is left out. Any other operation is refused with `AlignmentUnsupported`, so a spec is
derived only when every operation on the way is one known to commute with channel permutations.

Why one module: the tracer's rules for every supported operation are one walk over the graph; split by
operation they would share the walk's state.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

SUPPORTED = ("nn.Conv1d/2d/3d with groups=1, nn.Linear on [N, C] features, BatchNorm (1d/2d/3d), ReLU "
             "(module, torch.relu, F.relu, .relu()), identity, dropout, avg/max/adaptive pooling, mean/sum/amax "
             "over spatial axes, flatten/view/squeeze once the spatial axes are 1x1, add/sub of two tensors of the "
             "same channels (residual connections), and add/sub/mul/div by numbers")
_FIXED = 0   # the union-find element of the model's input and output channels


@dataclass(frozen=True)
class PermutationSpec:
    """`axes`: state name -> one group name (or None) per axis.
    `points`: group -> names of modules whose ReLU'd outputs show that group's channels."""

    axes: dict[str, tuple[str | None, ...]]
    points: dict[str, tuple[str, ...]]
    groups: dict[str, tuple[tuple[str, int], ...]] = field(init=False)

    def __post_init__(self) -> None:
        groups: dict[str, list[tuple[str, int]]] = {}
        for name, axis_groups in self.axes.items():
            for axis, group in enumerate(axis_groups):
                if group is not None:
                    groups.setdefault(group, []).append((name, axis))
        object.__setattr__(self, "groups", {g: tuple(v) for g, v in groups.items()})


class AlignmentUnsupported(ValueError):
    """A model whose permutation spec cannot be derived: `node` (fx node name) does `op`, for `reason`."""

    def __init__(self, model: str, node: str, op: str, reason: str):
        self.model, self.node, self.op, self.reason = model, node, op, reason
        super().__init__(f"cannot align {model}: node `{node}` ({op}) {reason}. The permutation tracer "
                         f"supports {SUPPORTED}; use path kinds without 'aligned' for this model")

    def __reduce__(self):
        return type(self), (self.model, self.node, self.op, self.reason)


@dataclass(frozen=True)
class _Value:
    """What the tracer knows of a tensor: its channel group (union-find element), its number of axes
    (None: unknown) and whether its spatial axes are known to be 1."""
    group: int
    ndim: int | None
    flat: bool = False

    @property
    def spatial_free(self) -> bool:   # [N, C] or [N, C, 1, ...]: flattening keeps the channel axis
        return self.ndim == 2 or self.flat


_SHAPE = object()   # a non-tensor value computed from shapes (x.size(0), x.shape)
_RELU_FUNCTIONS = (torch.relu, torch.relu_, F.relu, F.relu_)
_KEEP_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout)
_KEEP_METHODS = ("contiguous", "clone", "float", "detach", "to")
_POOL_FUNCTIONS = {F.avg_pool1d: False, F.avg_pool2d: False, F.avg_pool3d: False, F.max_pool1d: False,
                   F.max_pool2d: False, F.max_pool3d: False, F.adaptive_avg_pool1d: True,
                   F.adaptive_avg_pool2d: True, F.adaptive_avg_pool3d: True, F.adaptive_max_pool1d: True,
                   F.adaptive_max_pool2d: True, F.adaptive_max_pool3d: True}
_INDICES_AT = {F.max_pool1d: 6, F.max_pool2d: 6, F.max_pool3d: 6, F.adaptive_max_pool1d: 2,
               F.adaptive_max_pool2d: 2, F.adaptive_max_pool3d: 2}   # position of `return_indices`
_BINARY = {operator.add: "add", operator.iadd: "add", operator.sub: "sub", operator.isub: "sub",
           operator.mul: "mul", operator.imul: "mul", operator.truediv: "div", operator.itruediv: "div",
           torch.add: "add", torch.sub: "sub", torch.mul: "mul", torch.div: "div"}
_BINARY_METHODS = ("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_")
_REDUCTIONS = ("mean", "sum", "amax")
_POOLS = (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._MaxPoolNd,
          nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
_KEEP_MODULES = (nn.Identity, nn.modules.dropout._DropoutNd)
_BN_ENTRIES = ("weight", "bias", "running_mean", "running_var")
_MODULES = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.ReLU, *_KEEP_MODULES,
            *_POOLS, nn.Flatten)


class _Tracer(fx.Tracer):
    """Records which modules return which node (innermost first) and how often each module runs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}
        self.returned_by: dict[fx.Node, list[str]] = {}

    def call_module(self, m: nn.Module, forward, args, kwargs):
        name = self.path_of_module(m)
        self.calls[name] = self.calls.get(name, 0) + 1
        out = super().call_module(m, forward, args, kwargs)
        if isinstance(out, fx.Proxy):
            self.returned_by.setdefault(out.node, []).append(name)
        return out


def trace_permutation_spec(model: nn.Module) -> PermutationSpec:
    """The permutation spec of `model`, derived from its `forward` traced by `torch.fx`; raises
    `AlignmentUnsupported` naming the first operation it cannot permute through."""
    label = type(model).__name__
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: no spec
        raise AlignmentUnsupported(label, "forward", "torch.fx.symbolic_trace",
                                   f"cannot be traced ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}); "
                                   "data-dependent control flow or Python on tensor values is not supported") from exc
    return _Walk(model, label, tracer).run(graph)


class _Walk:
    """One pass over the graph in order: each node's `_Value` (or `_SHAPE`), the groups' union-find, the
    state entries' axes, the modules producing groups and the ReLUs (candidate points)."""

    def __init__(self, model: nn.Module, label: str, tracer: _Tracer):
        self.modules = dict(model.named_modules())
        self.label, self.tracer = label, tracer
        self.parent: list[int] = [_FIXED]
        self.size: dict[int, int | None] = {_FIXED: None}
        self.values: dict[fx.Node, Any] = {}
        self.axes: list[tuple[fx.Node, str, tuple[int | None, ...]]] = []
        self.producers: list[tuple[str, fx.Node]] = []     # (module, node) of modules that output a group
        self.relus: list[fx.Node] = []

    # union-find over channel groups; _FIXED stands for channels that are never permuted
    def _new(self, size: int | None) -> int:
        self.parent.append(len(self.parent))
        self.size[len(self.parent) - 1] = size
        return len(self.parent) - 1

    def _find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def _union(self, a: int, b: int, node: fx.Node) -> int:
        a, b = self._find(a), self._find(b)
        if a == b:
            return a
        a, b = min(a, b), max(a, b)          # _FIXED (0) absorbs whatever it meets and has no one size
        size_a, size_b = self.size[a], self.size[b]
        if a != _FIXED and size_a != size_b:
            self._refuse(node, f"combines {size_a} with {size_b} channels (broadcasting across channels)")
        self.parent[b] = a
        return a

    def _refuse(self, node: fx.Node, reason: str, op: str | None = None):
        raise AlignmentUnsupported(self.label, node.name, op or _describe(node, self.modules), reason)

    def run(self, graph: fx.Graph) -> PermutationSpec:
        for node in graph.nodes:
            self.values[node] = self._step(node)
        return self._spec(graph)

    def _tensor(self, node: fx.Node, arg) -> _Value:
        value = self.values.get(arg) if isinstance(arg, fx.Node) else None
        if not isinstance(value, _Value):
            self._refuse(node, "needs a tensor input traced from the model's input")
        return value

    def _step(self, node: fx.Node):
        if node.op == "placeholder":
            return _Value(_FIXED, None)
        if node.op == "get_attr":
            self._refuse(node, "reads a parameter or tensor constant inside forward; only modules' own "
                         "parameters can be permuted", op=f"get_attr {node.target}")
        if node.op == "output":
            for arg in node.all_input_nodes:
                if isinstance(self.values.get(arg), _Value):
                    self._union(self.values[arg].group, _FIXED, node)
            return None
        inputs = node.all_input_nodes
        if (inputs and all(self.values.get(a) is _SHAPE for a in inputs)) \
                or (node.op == "call_method" and node.target in ("size", "dim")) \
                or (node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "dtype")):
            return _SHAPE
        if node.op == "call_module":
            return self._module(node, self.modules[node.target])
        if node.op == "call_function":
            return self._function(node)
        return self._method(node)

    def _module(self, node: fx.Node, m: nn.Module) -> _Value:
        if not isinstance(m, _MODULES) or isinstance(m, nn.modules.conv._ConvNd) and m.transposed:
            self._refuse(node, "is not an operation the tracer can permute through")
        if len(node.args) != 1 or node.kwargs:
            self._refuse(node, "is called with more than one input")
        x = self._tensor(node, node.args[0])
        if any(True for _ in m.state_dict()) and self.tracer.calls[node.target] > 1:
            self._refuse(node, "runs more than once; shared weights would need one permutation for several places")
        if isinstance(m, nn.modules.conv._ConvNd) and not m.transposed:
            if m.groups != 1:
                self._refuse(node, f"is a grouped or depthwise convolution (groups={m.groups})")
            out = self._produce(node, m, {"weight": (0, 1), "bias": (0,)}, x.group, m.out_channels)
            return _Value(out, len(m.kernel_size) + 2)
        if isinstance(m, nn.Linear):
            if x.ndim != 2:
                self._refuse(node, "acts on the last axis of a tensor that is not [N, C] features")
            return _Value(self._produce(node, m, {"weight": (0, 1), "bias": (0,)}, x.group, m.out_features), 2)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            self._entries(node, m, {e: (0,) for e in _BN_ENTRIES}, {0: x.group})
            self.producers.append((node.target, node))
            return x
        if isinstance(m, nn.ReLU):
            self.relus.append(node)
            return x
        if isinstance(m, _KEEP_MODULES):
            return x
        if isinstance(m, _POOLS):
            if getattr(m, "return_indices", False):
                self._refuse(node, "returns pooling indices")
            if isinstance(m, _POOLS[2:]):
                return self._pooled(x, m.output_size)
            return self._pooled(x, None, m.padding)
        return self._flatten(node, x, m.start_dim, m.end_dim)   # nn.Flatten

    def _produce(self, node: fx.Node, m: nn.Module, layout: dict, group_in: int, size: int) -> int:
        out = self._new(size)
        self._entries(node, m, layout, {0: out, 1: group_in})
        self.producers.append((node.target, node))
        return out

    def _entries(self, node: fx.Node, m: nn.Module, layout: dict, groups: dict[int, int]) -> None:
        """Records the axes of the module's state entries; refuses state it does not know."""
        state = {k: v for k, v in m.state_dict(keep_vars=True).items() if k != "num_batches_tracked"}
        unknown = sorted(set(state) - set(layout))
        if unknown:
            self._refuse(node, f"has state entries the tracer does not know ({', '.join(unknown)})")
        for entry, roles in layout.items():
            if entry in state:
                axes = tuple(groups[r] for r in roles) + (None,) * (state[entry].dim() - len(roles))
                self.axes.append((node, f"{node.target}.{entry}", axes))

    def _function(self, node: fx.Node) -> _Value:
        target, args = node.target, node.args
        if target in _RELU_FUNCTIONS:
            self.relus.append(node)
            return self._tensor(node, args[0])
        if target in _KEEP_FUNCTIONS:
            return self._tensor(node, args[0])
        if target in _BINARY:
            return self._binary(node, _BINARY[target], args[:2])
        if target in _POOL_FUNCTIONS:
            at = _INDICES_AT.get(target)
            if node.kwargs.get("return_indices") or at is not None and len(args) > at and args[at]:
                self._refuse(node, "returns pooling indices")
            if _POOL_FUNCTIONS[target]:                       # adaptive
                size = args[1] if len(args) > 1 else node.kwargs.get("output_size")
                return self._pooled(self._tensor(node, args[0]), size)
            padding = args[3] if len(args) > 3 else node.kwargs.get("padding", 0)
            return self._pooled(self._tensor(node, args[0]), None, padding)
        if target is torch.flatten:
            return self._flatten(node, self._tensor(node, args[0]), *_params(node, ("start_dim", 0), ("end_dim", -1)))
        if target in (torch.mean, torch.sum, torch.amax):
            return self._reduce(node)
        self._refuse(node, "is not an operation the tracer can permute through")

    def _method(self, node: fx.Node) -> _Value:
        name = node.target
        if name in ("relu", "relu_"):
            self.relus.append(node)
            return self._tensor(node, node.args[0])
        if name in _KEEP_METHODS:
            return self._tensor(node, node.args[0])
        if name in _BINARY_METHODS:
            return self._binary(node, name.rstrip("_"), node.args[:2])
        if name == "flatten":
            return self._flatten(node, self._tensor(node, node.args[0]),
                                 *_params(node, ("start_dim", 0), ("end_dim", -1)))
        if name in _REDUCTIONS:
            return self._reduce(node)
        if name in ("view", "reshape"):
            return self._view(node)
        if name == "squeeze":
            return self._squeeze(node)
        self._refuse(node, "is not an operation the tracer can permute through")

    def _binary(self, node: fx.Node, op: str, operands) -> _Value:
        tensors = [self.values.get(a) for a in operands if isinstance(a, fx.Node)]
        tensors = [t for t in tensors if isinstance(t, _Value)]
        if not tensors or any(not isinstance(a, (fx.Node, int, float, bool)) for a in operands):
            self._refuse(node, "has operands the tracer cannot follow")
        if len(tensors) == 1:
            return tensors[0]
        a, b = tensors
        if op not in ("add", "sub"):
            self._refuse(node, "multiplies or divides two tensors (only numbers can scale a tensor)")
        if a.ndim != b.ndim and None not in (a.ndim, b.ndim):   # None: the input's, never permuted
            self._refuse(node, f"broadcasts a {a.ndim}-axis tensor against a {b.ndim}-axis one")
        return _Value(self._union(a.group, b.group, node), a.ndim or b.ndim, a.flat and b.flat)

    def _pooled(self, x: _Value, output_size, padding=0) -> _Value:
        """A pool keeps the channels. The map is known to be 1x1 after an adaptive pool to 1 (a None size
        keeps that axis as it was), or after a pool without padding of a 1x1 map: a pool never enlarges a
        map but by its padding, and an adaptive pool to 2 enlarges a 1x1 one."""
        if output_size is None:                               # not adaptive
            pads = padding if isinstance(padding, (tuple, list)) else (padding,)
            return _Value(x.group, x.ndim, x.flat and all(p == 0 for p in pads))
        sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,)
        return _Value(x.group, x.ndim, all(s == 1 or s is None and x.flat for s in sizes))

    def _flatten(self, node: fx.Node, x: _Value, start: int, end: int) -> _Value:
        if x.ndim is None or start < 0 or end not in (-1, x.ndim - 1):
            self._refuse(node, "flattens axes the tracer cannot place (use flatten(1) or flatten(2))")
        if start == 0 or start == 1 and not x.spatial_free:
            self._refuse(node, "flattens the channel axis together with other axes (pool to 1x1 first)")
        return _Value(x.group, start + 1, x.flat)

    def _reduce(self, node: fx.Node) -> _Value:
        x = self._tensor(node, node.args[0])
        dims, keepdim = _params(node, ("dim", None), ("keepdim", False))
        dims = dims if isinstance(dims, (tuple, list)) else (dims,)
        if x.ndim is None:
            self._refuse(node, "reduces the model's input, whose number of axes the tracer does not know "
                         "(normalise the images before the model instead)")
        if None in dims or not dims:
            self._refuse(node, "reduces over axes the tracer cannot place (give the spatial axes as `dim`)")
        dims = {d % x.ndim for d in dims}
        if min(dims) < 2:
            self._refuse(node, "reduces over the batch or channel axis")
        every = dims == set(range(2, x.ndim))
        return _Value(x.group, x.ndim if keepdim else x.ndim - len(dims), x.flat or (keepdim and every))

    def _view(self, node: fx.Node) -> _Value:
        x = self._tensor(node, node.args[0])
        shape = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
        batch = [s for s in shape[:1] if s == -1 or isinstance(s, fx.Node) and self.values.get(s) is _SHAPE]
        root = self._find(x.group)   # the input's channels (never permuted) have no size here: with the batch
        # given as the batch, an [N, C] view of N * C values can only be of width C
        width = shape[1] == -1 or shape[1] == self.size[root] or \
            root == _FIXED and isinstance(shape[1], int) and shape[0] != -1
        if not (x.spatial_free and len(shape) == 2 and batch and width):
            self._refuse(node, "reshapes in a way that may mix channels (only x.view(x.size(0), -1) after "
                         "pooling to 1x1 is supported)")
        return _Value(x.group, 2)

    def _squeeze(self, node: fx.Node) -> _Value:
        x = self._tensor(node, node.args[0])
        (dims,) = _params(node, ("dim", None))
        dims = dims if isinstance(dims, (tuple, list)) else (dims,)
        if x.ndim is None or None in dims or not x.flat or min(d % x.ndim for d in dims) < 2:
            self._refuse(node, "squeezes axes that may be the batch or channel axis (give a spatial `dim`)")
        return _Value(x.group, x.ndim - len(dims), True)

    def _spec(self, graph: fx.Graph) -> PermutationSpec:
        """Points: each ReLU's output, hooked at the innermost module returning it or its input (the
        capture applies the ReLU); a group no ReLU shows is watched at the end of its conv/BN chains.
        A group is named after its first point."""
        order = {node: i for i, node in enumerate(graph.nodes)}
        points: dict[int, list[tuple[int, str]]] = {}
        for node in self.relus:
            group, module = self._find(self.values[node].group), self._point(node) or self._point(node.args[0])
            if group != _FIXED and module is not None and module not in {m for _, m in points.get(group, [])}:
                points.setdefault(group, []).append((order[node], module))
        unseen = {self._find(self.values[node].group) for _, node in self.producers} - set(points) - {_FIXED}
        for module, node in self.producers:
            group = self._find(self.values[node].group)
            if group in unseen and not _feeds_batchnorm(node, self.modules):
                points.setdefault(group, []).append((order[node], module))
        names = {g: min(p)[1] for g, p in points.items()}
        rank = _residual_first_order(graph)
        entries = sorted(self.axes, key=lambda e: rank[e[0]])    # stable: a module's entries stay in order
        axes = {n: tuple(None if g is None or self._find(g) == _FIXED else names[self._find(g)] for g in groups)
                for _, n, groups in entries}
        return PermutationSpec(axes, {names[g]: tuple(m for _, m in sorted(p)) for g, p in points.items()})

    def _point(self, node) -> str | None:
        """The innermost module that returns `node` and runs once: a forward hook there sees it."""
        mods = self.tracer.returned_by.get(node, []) if isinstance(node, fx.Node) else []
        return next((m for m in mods if self.tracer.calls[m] == 1), None)


def _residual_first_order(graph: fx.Graph) -> dict[fx.Node, int]:
    """A topological order of the nodes: depth first from the output, a node's inputs last to first, so a
    residual block's shortcut (`branch(x) + shortcut(x)`) comes before its branch; then unused nodes.
    The spec lists its entries, hence its groups, in this order, as the hand-written specs it replaced
    did: weight matching visits groups in a seeded random order of that list, so its result depends on it."""
    rank: dict[fx.Node, int] = {}
    stack = [(node, False) for node in graph.nodes if node.op == "output"]
    while stack:
        node, done = stack.pop()
        if done:
            rank.setdefault(node, len(rank))
        elif node not in rank:
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.all_input_nodes if arg not in rank)
    for node in graph.nodes:
        rank.setdefault(node, len(rank))
    return rank


def _feeds_batchnorm(node: fx.Node, modules: dict) -> bool:
    return any(u.op == "call_module" and isinstance(modules[u.target], nn.modules.batchnorm._BatchNorm)
               for u in node.users)


def _params(node: fx.Node, *spec: tuple[str, Any]) -> list:
    """Positional-or-keyword arguments after the input, by name with defaults."""
    return [node.args[i + 1] if len(node.args) > i + 1 else node.kwargs.get(k, d) for i, (k, d) in enumerate(spec)]


def _describe(node: fx.Node, modules: dict) -> str:
    if node.op == "call_module":
        return f"{type(modules[node.target]).__name__} `{node.target}`"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    module = (getattr(node.target, "__module__", None) or "torch").lstrip("_")   # _operator -> operator
    return f"{module}.{getattr(node.target, '__name__', node.target)}"
