"""Which layers of a network are hidden, which are outputs, which form the head.

The interventions need four structural facts about a network, read from its module
tree without running it:

* the *weight layers* (``Linear``/``Conv``) in registration order, which is data-flow
  order for chains (MLPs, CNNs, everything normrl builds);
* the *chains*: every top-level ``nn.Sequential`` (nested Sequentials are read as one
  chain, custom blocks inside a chain are opaque and searched for chains of their own,
  as :func:`normrl.normalization.apply_nap` does);
* the *output layers*: in each chain, the last weight layer when no parameter-owning
  custom block comes after it; and the model's last registered weight layer when it is
  in no chain (a ResNet's ``fc``, a ResidualMLP's ``head``, called in ``forward()``). An
  actor-critic with separate actor and critic chains has two output layers;
* the *head* of a chain for a depth ``k``: the chain's tail from its ``k``-th-last weight
  layer to its end (norm layers and activations in between included). A chain that ends
  in an :class:`~normrl.plasticity.injection.InjectedHead` has that module as its head.

Parameters owned by a module without ``parameters(recurse=False)`` are never split:
every parameter belongs to exactly one leaf module.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.modules.conv import _ConvNd

from normrl.normalization.nap import is_normalization

__all__ = [
    "is_weight_layer",
    "owns_parameters",
    "leaf_modules",
    "weight_layers",
    "find_chains",
    "output_layers",
    "hidden_weight_layers",
    "Chain",
    "Slot",
    "head_slots",
    "layer_blocks",
]


def is_weight_layer(module: nn.Module) -> bool:
    """True for ``nn.Linear`` and every ``nn.ConvNd`` (the layers interventions reset,
    regularize and count as depth)."""
    return isinstance(module, (nn.Linear, _ConvNd))


def owns_parameters(module: nn.Module) -> bool:
    """True when ``module`` has parameters of its own (not only through children)."""
    return next(module.parameters(recurse=False), None) is not None


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every module that owns parameters or is a weight layer,
    in registration order (containers and pure-function modules skipped)."""
    return [(n, m) for n, m in model.named_modules() if owns_parameters(m) or is_weight_layer(m)]


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear/Conv layer in registration order."""
    return [(n, m) for n, m in model.named_modules() if is_weight_layer(m)]


@dataclass
class Slot:
    """One leaf position of a chain: ``parent._modules[key] is module``."""

    parent: nn.Sequential
    key: str
    name: str
    module: nn.Module


@dataclass
class Chain:
    """A top-level Sequential with its leaf slots (nested Sequentials inlined)."""

    name: str
    module: nn.Sequential
    slots: list


def _flatten(seq: nn.Sequential, prefix: str, out: list) -> None:
    for key, module in seq._modules.items():
        if module is None:
            continue
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(module, nn.Sequential):
            _flatten(module, name, out)
        else:
            out.append(Slot(seq, key, name, module))


def _search(module: nn.Module, prefix: str, out: list) -> None:
    if isinstance(module, nn.Sequential):
        slots: list = []
        _flatten(module, prefix, slots)
        out.append(Chain(prefix, module, slots))
        for slot in slots:  # custom blocks inside a chain may hold chains of their own
            if slot.module._modules and not is_normalization(slot.module):
                for key, child in slot.module._modules.items():
                    if child is not None:
                        _search(child, f"{slot.name}.{key}", out)
        return
    for key, child in module._modules.items():
        if child is not None:
            _search(child, f"{prefix}.{key}" if prefix else key, out)


def find_chains(model: nn.Module) -> list[Chain]:
    """Every top-level Sequential of ``model`` (the model itself when it is one), and the
    chains inside custom blocks, in registration order."""
    out: list = []
    _search(model, "", out)
    return out


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def output_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The output layers (see the module docstring for the rule), in registration order."""
    found: dict[int, tuple[str, nn.Module]] = {}
    chains = find_chains(model)
    for chain in chains:
        for slot in reversed(chain.slots):
            if is_weight_layer(slot.module):
                found[id(slot.module)] = (slot.name, slot.module)
                break
            if _has_params(slot.module):
                break  # a custom block (e.g. an injected head) ends this chain
    in_chain = {id(slot.module) for chain in chains for slot in chain.slots}
    layers = weight_layers(model)
    if layers and id(layers[-1][1]) not in in_chain:  # e.g. a ResNet's fc, called in forward()
        found[id(layers[-1][1])] = layers[-1]
    order = {id(m): i for i, (_, m) in enumerate(model.named_modules())}
    return sorted(found.values(), key=lambda nm: order[id(nm[1])])


def hidden_weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Weight layers that are not output layers, in registration order."""
    outputs = {id(m) for _, m in output_layers(model)}
    return [(n, m) for n, m in weight_layers(model) if id(m) not in outputs]


def _select_chains(model: nn.Module, chains: str) -> list[Chain]:
    found = [c for c in find_chains(model) if any(is_weight_layer(s.module) or _is_injected(s.module) for s in c.slots)]
    # A chain nested inside an injected head is part of that head, not a head site.
    found = [c for c in found if not _inside_injected(model, c.name)]
    if not found:
        raise ValueError("the model has no nn.Sequential chain with a Linear/Conv layer, so it has no head to select")
    if chains == "all":
        return found
    if chains == "last":
        return [found[-1]]
    named = [c for c in found if c.name == chains]
    if not named:
        raise ValueError(f"no chain named {chains!r}; valid: 'all', 'last' or one of {[c.name for c in found]}")
    return named


def _is_injected(module: nn.Module) -> bool:
    return getattr(module, "is_injected_head", False) is True


def _inside_injected(model: nn.Module, name: str) -> bool:
    parts = name.split(".") if name else []
    module = model
    for part in parts[:-1]:
        module = module._modules[part]
        if _is_injected(module):
            return True
    return False


def head_slots(model: nn.Module, k: int, chains: str = "all") -> list[tuple[Chain, list]]:
    """For each selected chain, the slots of its head of depth ``k``.

    ``chains``: ``"all"`` (every chain with a weight layer; an actor-critic's actor and
    critic), ``"last"`` (the last such chain) or a chain's module name. The head is the
    tail from the ``k``-th-last weight layer to the chain's end; when the chain ends in
    an injected head, that module alone. Raises ValueError when a chain has fewer than
    ``k`` weight layers or its head spans several parent Sequentials (it must be
    replaceable as one slice of one Sequential).
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    result = []
    for chain in _select_chains(model, chains):
        slots = chain.slots
        last_param = max((i for i, s in enumerate(slots) if _has_params(s.module)), default=None)
        if last_param is not None and _is_injected(slots[last_param].module):
            result.append((chain, slots[last_param:]))
            continue
        layer_idx = [i for i, s in enumerate(slots) if is_weight_layer(s.module)]
        if len(layer_idx) < k:
            raise ValueError(f"chain {chain.name or '<model>'!r} has {len(layer_idx)} weight layers, fewer than k={k}")
        tail = slots[layer_idx[-k]:]
        if len({id(s.parent) for s in tail}) != 1:
            raise ValueError(
                f"the head of depth k={k} of chain {chain.name or '<model>'!r} spans several nested Sequentials; "
                "use a smaller k"
            )
        result.append((chain, tail))
    return result


def layer_blocks(model: nn.Module) -> tuple[list[tuple[str, list[torch.Tensor], int]], list[torch.Tensor]]:
    """Parameters grouped by depth: ``(blocks, outside)``.

    Every weight layer opens a block ``(name, params, depth)``, depth counted from 1 in
    registration order; parameters of the modules registered after it (its norm
    layer, ...) up to the next weight layer join that block. ``outside`` holds the
    parameters registered before the first weight layer. Inside an
    :class:`~normrl.plasticity.injection.InjectedHead` the old, new and frozen copies
    are parallel branches: their layers share depths (``old.0`` and ``new.0`` have the
    same depth), and the depth after the head is the deepest branch's.
    """
    blocks: list = []
    outside: list = []

    def walk(module: nn.Module, name: str, state: dict) -> None:
        if _is_injected(module):
            ends = []
            for part in ("old", "new", "new_frozen"):
                branch = dict(state)
                walk(getattr(module, part), f"{name}.{part}" if name else part, branch)
                ends.append(branch)
            state["depth"] = max(b["depth"] for b in ends)
            state["current"] = ends[1]["current"]
            return
        params = list(module.parameters(recurse=False))
        if is_weight_layer(module):
            state["depth"] += 1
            block = (name, params, state["depth"])
            blocks.append(block)
            state["current"] = block
        elif params:
            (state["current"][1] if state["current"] is not None else outside).extend(params)
        for key, child in module._modules.items():
            if child is not None:
                walk(child, f"{name}.{key}" if name else key, state)

    walk(model, "", {"depth": 0, "current": None})
    return blocks, outside
