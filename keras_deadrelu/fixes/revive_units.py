"""Fix: revive dead units (ReDo, Sokar et al. 2023, with the bias +0.01 cure).

For each dead unit of a site:

1. its incoming weights (the kernel slice of the layer that computes the
   unit's pre-activation) are drawn afresh from that layer's
   ``kernel_initializer``, and its bias is set to `bias` (0.01: positive, so
   the unit fires again);
2. its outgoing weights in the next weighted layer are set to zero, so the
   network's output does not change at the moment of revival;
3. the optimizer's slots (Adam moments, momentum, accumulators, ...) of
   exactly those entries are reset to the values a fresh variable's slots
   start at (zero for most; Adagrad's and Ftrl's accumulators start at
   ``initial_accumulator_value``), so stale moments do not throw the fresh
   weights. Under a ``MultiOptimizer`` the slots are those of the
   sub-optimizer that updates the weights.

The next weighted layers are found by following the model's graph, branch
by branch, through layers that keep units in place (Dropout,
BatchNormalization on the channel axis, pooling, elementwise activations), a
``Concatenate`` on the channel axis, and a ``Flatten`` into a Dense layer;
every consumer of the units gets their weights zeroed (a layer called twice
included, when each call takes the units on the same rows). Where a branch
meets anything else (a residual ``Add``, a Reshape, a LayerNormalization, a
depthwise or separable conv, a nested model's border, a Dense or conv acting
on another axis than the units', a consumer also called on other inputs),
only the incoming weights are revived, and the event says so. Every change
is planned before any is made: a failure leaves the model as it was. An
optimizer's moving averages of the weights (``use_ema=True``) take the new
values too, so the end of ``fit`` does not bring back the dead ones.

Only sites whose dead units output exactly 0 are revived (ReLU, ReLU6, a
Leaky ReLU of slope 0): a dead ELU, SELU or Leaky ReLU unit still outputs
values, so removing it would change the model's output; and only where the
layer that computes the site feeds nothing else.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_deadrelu._validation import check_number
from keras_deadrelu.counters import NON_NEGATIVE_KINDS
from keras_deadrelu.fixes.base import Fix
from keras_deadrelu.fixes.lower_learning_rate import (
    current_learning_rate,
    innermost_optimizer,
)
from keras_deadrelu.layer_graph import (
    OutgoingPath,
    feeds_only,
    first_call,
    incoming_layer,
    input_axis,
    outgoing_paths,
    output_axis,
)
from keras_deadrelu.sites import (
    Site,
    inbound_nodes,
    layer_kind,
    outputs_its_activation,
)
from keras_deadrelu.unit_statistics import SiteStatistics


def _negative_slope(layer: Any) -> float | None:
    """The Leaky ReLU slope of a layer or of its activation, if it has one."""
    for owner in (layer, getattr(layer, "activation", None)):
        slope = getattr(owner, "negative_slope", None)
        if slope is not None:
            return float(np.asarray(keras.ops.convert_to_numpy(slope)))
    return None


def why_not_revivable(site: Site) -> str | None:
    """Why reviving `site`'s dead units would change the model's output (None
    when it would not): its dead units output values other than 0, or no
    Dense or Conv kernel computes it and only it."""
    kind = layer_kind(site.layer) or site.kind
    zero_when_dead = kind in NON_NEGATIVE_KINDS or (
        kind == "leaky_relu" and _negative_slope(site.layer) == 0.0
    )
    if not zero_when_dead:
        return f"its dead units still output values other than 0 ({kind})"
    if not outputs_its_activation(site.layer):
        return (
            f"a custom {type(site.layer).__name__} call or activation decides "
            "what its dead units output"
        )
    layer = incoming_layer(site)
    if layer is None:
        return "no Dense or Conv kernel feeds it directly"
    if getattr(layer, "lora_enabled", False):
        return f"{layer.name}'s kernel is LoRA's sum (base + A @ B)"
    if not feeds_only(layer, site):
        return f"{layer.name} also feeds other layers"
    return None


def _sample_axis(axis: int) -> int:
    """`axis` (batch axis included) in one sample (no batch axis)."""
    return axis - 1 if axis > 0 else axis


def _shape(layer: Any, site: Site, tensors: str) -> tuple:
    """The shape, without the batch axis, of the first input or output
    (`tensors`: ``"input_tensors"`` or ``"output_tensors"``) of `layer`'s
    first call in the site's graph."""
    return tuple(getattr(first_call(layer, site.graph), tensors)[0].shape[1:])


def _dead_values(site: Site, layers: list[Any], path: OutgoingPath) -> np.ndarray:
    """What a sample of zeros at the site (a dead unit's output) becomes
    through `layers` (in inference mode; a BatchNormalization makes it a
    constant per channel), without the batch axis. At a ``Concatenate`` the
    branch's values take their place among the other inputs' channels."""
    values = np.zeros((1, *_shape(site.layer, site, "output_tensors")), "float32")
    for layer in layers:
        if id(layer) in path.offsets:
            # The join's own axis (batch included): the channels' axis there.
            joined = np.zeros((1, *_shape(layer, site, "output_tensors")), "float32")
            start = path.offsets[id(layer)]
            index = [slice(None)] * joined.ndim
            index[layer.axis] = slice(start, start + values.shape[layer.axis])
            joined[tuple(index)] = values
            values = joined
        else:
            values = keras.ops.convert_to_numpy(layer(values, training=False))
    return np.asarray(values, dtype=np.float64)[0]


def _plan_path(
    site: Site, path: OutgoingPath, units: np.ndarray
) -> tuple[Any, np.ndarray, np.ndarray | None] | str:
    """How to cut the dead `units` out of `path`'s consumer: the consumer,
    the entries of its kernel's input axis to zero, and what to add to its
    bias (what the units still fed it, a BatchNormalization's constants), or
    None; or why it cannot be done exactly."""
    consumer = path.consumer
    if not consumer.trainable:
        return f"{consumer.name} is frozen"  # zeroed, it would never grow back
    if getattr(consumer, "lora_enabled", False):
        return f"{consumer.name}'s kernel is LoRA's sum"
    channels = units + path.channel_offset
    axis = _sample_axis(path.axis)
    flatten = next(
        (layer for layer in path.between if isinstance(layer, keras.layers.Flatten)),
        None,
    )
    if flatten is not None:
        shape = _shape(flatten, site, "input_tensors")
        if any(size is None for size in shape):
            return f"{flatten.name} has an input of unknown shape"
        before = path.between[: path.between.index(flatten)]
        values = _dead_values(site, before, path)
        elements = np.arange(int(np.prod(shape))).reshape(shape)
        if getattr(flatten, "data_format", None) == "channels_first" and len(shape) > 1:
            # Keras's Flatten moves the channels last before flattening.
            elements, values = np.moveaxis(elements, 0, -1), np.moveaxis(values, 0, -1)
        elements, values = elements.reshape(-1), values.reshape(-1)
        rows = np.flatnonzero(
            np.isin(np.unravel_index(elements, shape)[axis % len(shape)], channels)
        )
        fed, taps_of = values[rows], None
    else:
        values = _dead_values(site, path.between, path)
        moved = np.moveaxis(values, axis, -1)
        rows, fed = channels, moved.reshape(-1, moved.shape[-1]).mean(axis=0)[channels]
        taps_of = consumer
    if not np.any(fed):
        return consumer, rows, None
    if getattr(consumer, "bias", None) is None:
        return f"{consumer.name} has no bias to take the constant"
    kernel = np.asarray(keras.ops.convert_to_numpy(consumer.kernel.value), np.float64)
    if taps_of is not None and kernel.ndim > 2:
        if getattr(consumer, "padding", "valid") != "valid":
            return f"{consumer.name} pads its input"
        # A constant input channel: the kernel's spatial taps add up.
        kernel = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]).sum(axis=0)
    return consumer, rows, fed @ kernel[rows, :]


def _plan_consumers(
    site: Site, paths: list[OutgoingPath], units: np.ndarray
) -> list[tuple[Any, np.ndarray, np.ndarray | None]] | str:
    """One plan per consumer: its rows to zero and its bias shift (None for
    none); or why it cannot be done exactly. Paths into one call add up (a
    Concatenate of the site with itself); the calls of a layer called more
    than once must need the very same change, which is made once."""
    calls: dict[int, dict[int, tuple[Any, np.ndarray, np.ndarray | None]]] = {}
    for path in paths:
        plan = _plan_path(site, path, units)
        if isinstance(plan, str):
            return plan
        consumer, rows, shift = plan
        per_call = calls.setdefault(id(consumer), {})
        known = per_call.get(id(path.node))
        if known is not None:
            rows = np.union1d(known[1], rows)
            if known[2] is not None:
                shift = known[2] if shift is None else known[2] + shift
        per_call[id(path.node)] = (consumer, rows, shift)
    plans = []
    for per_call in calls.values():
        (consumer, rows, shift), *others = per_call.values()
        for _, other_rows, other_shift in others:
            same_shift = (shift is None and other_shift is None) or (
                shift is not None
                and other_shift is not None
                and np.allclose(shift, other_shift)
            )
            if not (np.array_equal(rows, other_rows) and same_shift):
                return f"{consumer.name}'s calls take the units in different places"
        plans.append((consumer, rows, shift))
    return plans


def _add_to_bias(consumer: Any, shift: np.ndarray, optimizer: Any) -> None:
    """Adds `shift` to `consumer`'s bias, and to its moving average if the
    optimizer keeps one."""
    for variable in _with_average(optimizer, consumer.bias):
        old = np.asarray(keras.ops.convert_to_numpy(variable.value), np.float64)
        variable.assign((old + shift).astype("float32"))
    if optimizer is not None:
        shifted = np.flatnonzero(np.asarray(shift))
        _keep_under_ftrl(optimizer, consumer.bias, 0, shifted)


#: The optimizer's list of moving averages of the weights (``use_ema=True``):
#: not slots to reset, but copies of the weights that take the new values.
_MOVING_AVERAGES = "_model_variables_moving_average"
#: Lists of an optimizer that are not per-variable slots, whatever their length.
_NOT_SLOTS = (_MOVING_AVERAGES, "_variables", "_trainable_variables")


def _owning_optimizer(optimizer: Any, variable: Any) -> Any | None:
    """The optimizer that updates `variable`: inside a LossScaleOptimizer (as
    under mixed precision), and inside a ``MultiOptimizer`` the sub-optimizer
    `variable` is assigned to (None if none is)."""
    optimizer = innermost_optimizer(optimizer)
    inner = getattr(optimizer, "_inner_optimizers", None)
    assigned = getattr(optimizer, "_var_to_optimizer_idx", None)
    if inner is None or assigned is None:
        return optimizer
    index = assigned.get(optimizer._var_key(variable))
    return None if index is None else _owning_optimizer(inner[index], variable)


def _slots(optimizer: Any, variable: Any) -> list[tuple[str, Any]]:
    """The optimizer's slot variables for `variable` (moments, momentum,
    accumulators), with the name of the list each is kept in, found by the
    optimizer's own index of the variable: every list of per-variable slots
    the optimizer keeps, at that index. Slots of another shape than the
    variable's (Adafactor's factored moments) are not among them."""
    optimizer = _owning_optimizer(optimizer, variable)
    find_index = getattr(optimizer, "_get_variable_index", None)
    trainable = getattr(optimizer, "_trainable_variables", None)
    if find_index is None or not trainable:
        return []
    try:
        index = find_index(variable)
    except (KeyError, ValueError):
        return []
    slots = []
    for name, value in vars(optimizer).items():
        if name in _NOT_SLOTS or not isinstance(value, list):
            continue
        if len(value) != len(trainable) or index >= len(value):
            continue
        slot = value[index]
        if (
            slot is not None
            and tuple(getattr(slot, "shape", ())) == tuple(variable.shape)
            and slot is not variable
            and hasattr(slot, "assign")
        ):
            slots.append((name, slot))
    return slots


def _fresh_slot_values(optimizer: Any, variable: Any) -> dict[str, np.ndarray]:
    """What each slot list of `variable`'s optimizer would hold for a fresh
    variable of `variable`'s current value: the slots of a throwaway optimizer
    of the same class and config, built on a copy of it. Not always zeros:
    Adagrad's and Ftrl's accumulators start at ``initial_accumulator_value``
    (an Ftrl accumulator of 0 divides 0 by 0), ScheduleFreeAdamW's ``z`` at
    the weight itself. Empty when the optimizer cannot be rebuilt from its
    config (then the slots are zeroed)."""
    optimizer = _owning_optimizer(optimizer, variable)
    try:
        fresh = type(optimizer).from_config(optimizer.get_config())
        copy = keras.Variable(
            keras.ops.convert_to_numpy(variable.value), dtype=variable.dtype
        )
        fresh.build([copy])
    except Exception:  # a custom optimizer: its slots are zeroed
        return {}
    values = {}
    for name, value in vars(fresh).items():
        if name in _NOT_SLOTS or not isinstance(value, list) or len(value) != 1:
            continue
        slot = value[0]
        if (
            slot is not None
            and slot is not copy
            and tuple(getattr(slot, "shape", ())) == tuple(variable.shape)
        ):
            values[name] = np.asarray(keras.ops.convert_to_numpy(slot))
    return values


def _set_entries(variable: Any, axis: int, units: np.ndarray, values: Any) -> None:
    """Sets the entries of `variable` at `units` along `axis` to `values` (a
    scalar, or an array of the variable's shape to take them from)."""
    array = np.array(keras.ops.convert_to_numpy(variable.value))
    index = [slice(None)] * array.ndim
    index[axis] = units
    index = tuple(index)
    array[index] = np.asarray(values)[index] if np.ndim(values) else values
    variable.assign(array)


def _moving_average(optimizer: Any, variable: Any) -> Any | None:
    """The optimizer's moving average of `variable` (``use_ema=True``), which
    ``fit`` writes over the weights when it ends."""
    optimizer = _owning_optimizer(optimizer, variable)
    averages = getattr(optimizer, _MOVING_AVERAGES, None)
    find_index = getattr(optimizer, "_get_variable_index", None)
    if not averages or find_index is None:
        return None
    try:
        average = averages[find_index(variable)]
    except (KeyError, ValueError, IndexError):
        return None
    same_shape = tuple(getattr(average, "shape", ())) == tuple(variable.shape)
    return average if same_shape and hasattr(average, "assign") else None


def _with_average(optimizer: Any, variable: Any) -> list[Any]:
    """`variable`, and its moving average if the optimizer keeps one: what
    must change together for a change to outlive the end of ``fit``."""
    average = None if optimizer is None else _moving_average(optimizer, variable)
    return [variable] if average is None else [variable, average]


def _set_weights(
    optimizer: Any, variable: Any, axis: int, units: np.ndarray, values: Any
) -> int:
    """Sets entries of `variable` (and of its moving average, if the optimizer
    keeps one) and resets them in its optimizer slots to what a fresh
    variable's slots start at; returns the number of slots reset."""
    for target in _with_average(optimizer, variable):
        _set_entries(target, axis, units, values)
    return 0 if optimizer is None else _reset_slots(optimizer, variable, axis, units)


def _reset_slots(optimizer: Any, variable: Any, axis: int, units: np.ndarray) -> int:
    slots = _slots(optimizer, variable)
    fresh = _fresh_slot_values(optimizer, variable) if slots else {}
    for name, slot in slots:
        _set_entries(slot, axis, units, fresh.get(name, 0.0))
    _keep_under_ftrl(optimizer, variable, axis, units)
    return len(slots)


def _keep_under_ftrl(optimizer: Any, variable: Any, axis: int, units: Any) -> None:
    """Under Ftrl, sets the ``linear`` slot of `variable`'s entries at `units`
    so that the next step keeps their values as they are now.

    Ftrl does not update its weights: it computes them from its slots, as
    ``(clip(linear, -l1, l1) - linear) / quadratic``, so a weight set by hand
    (a revived one, a shifted bias) with a ``linear`` left as it was would be
    undone at the next step. Other optimizers: nothing to do.
    """
    owner = _owning_optimizer(optimizer, variable)
    linears = dict(_slots(optimizer, variable)).get("_linears")
    if isinstance(owner, keras.optimizers.Ftrl) and linears is not None:
        _set_entries(linears, axis, units, _ftrl_linear(owner, variable))


def _ftrl_linear(optimizer: Any, variable: Any) -> np.ndarray:
    """The ``linear`` slot that gives back each of `variable`'s values as it
    is (with Ftrl's accumulator as it is now and the current learning rate).
    """
    weights = np.asarray(keras.ops.convert_to_numpy(variable.value), np.float64)
    index = optimizer._get_variable_index(variable)
    accumulator = np.asarray(
        keras.ops.convert_to_numpy(optimizer._accumulators[index].value), np.float64
    )
    rate = current_learning_rate(optimizer)
    l2 = optimizer.l2_regularization_strength + optimizer.beta / (2.0 * rate)
    quadratic = accumulator ** (-optimizer.learning_rate_power) / rate + 2.0 * l2
    l1 = optimizer.l1_regularization_strength
    return -weights * quadratic - np.sign(weights) * l1


def _restart_moving_statistics(
    site: Site, paths: list[OutgoingPath], units: np.ndarray
) -> tuple[list[str], list[str]]:
    """Sets the moving mean and variance of the revived channels to 0 and 1
    (a new layer's) in every BatchNormalization on the way to the next
    weighted layers; returns the names of those restarted and of those left
    as they were because the model calls them more than once (another
    branch's channels would change with them). A dead unit left them at its
    constant 0 (variance about 0), which in inference would scale the
    revived unit's new values by 1 / sqrt(epsilon) until the momentum caught
    up. Predictions do not change: the outgoing weights are zero."""
    restarted: list[str] = []
    shared: list[str] = []
    for path in paths:
        offset = 0
        for layer in path.between:
            if isinstance(layer, keras.layers.Flatten):
                break
            offset += path.offsets.get(id(layer), 0)
            if not isinstance(layer, keras.layers.BatchNormalization):
                continue
            if layer.name in restarted or layer.name in shared:
                continue
            if len(inbound_nodes(layer, site.graph)) != 1:
                shared.append(layer.name)
                continue
            channels = units + offset
            _set_entries(layer.moving_mean, 0, channels, 0.0)
            _set_entries(layer.moving_variance, 0, channels, 1.0)
            restarted.append(layer.name)
    return restarted, shared


def _reseeded(initializer: Any) -> Any:
    """A copy of `initializer` with a fresh seed.

    Keras initializers fix their seed when created, so calling the layer's
    own initializer again would give back the very weights the unit died
    with. The new seed comes from NumPy's global generator, so
    ``keras.utils.set_random_seed`` makes revivals reproducible.
    """
    get_config = getattr(initializer, "get_config", None)
    if get_config is None:
        return initializer  # a plain function: called afresh
    config = get_config()
    if "seed" not in config:
        return initializer
    config["seed"] = int(np.random.randint(0, 2**31 - 1))
    return type(initializer).from_config(config)


def _dead_channels(
    dead: np.ndarray, channels: int, channel_axis: int
) -> np.ndarray | None:
    """Per-channel dead mask (a channel is dead when all its positions are)."""
    if dead.size == channels:
        return dead.astype(bool)
    if dead.size % channels:
        return None
    if channel_axis == -1:
        return dead.reshape(-1, channels).all(axis=0)
    return dead.reshape(channels, -1).all(axis=1)


class ReviveUnits(Fix):
    """Re-initialises dead units so they fire again, without changing the output.

    Args:
        bias: the revived units' new bias (0.01 by default: slightly positive).
        cooldown: windows to wait before reviving the same site again.

    >>> ReviveUnits(bias=0.01)
    ReviveUnits(bias=0.01, cooldown=1)
    """

    name = "revive"

    def __init__(self, bias: float = 0.01, cooldown: int = 1):
        super().__init__(cooldown)
        self.bias = check_number("bias", bias, minimum=0)

    def sites_out_of_reach(self, sites: list[Site]) -> dict[str, str]:
        """Sites whose revival would change the model's output: their dead
        units output values other than 0 (ELU, SELU, Leaky ReLU), or no
        Dense/Conv kernel computes them and only them (a BatchNormalization
        between, a depthwise or separable conv, a layer that also feeds
        another branch)."""
        reasons = {site.name: why_not_revivable(site) for site in sites}
        return {name: reason for name, reason in reasons.items() if reason}

    def apply(
        self, model: Any, site: Site, statistics: SiteStatistics
    ) -> tuple[int, int, str] | None:
        if why_not_revivable(site) is not None:
            return None  # (named once when fit starts; or made leaky since)
        layer = incoming_layer(site)
        axis = output_axis(layer)
        channels = int(layer.kernel.shape[axis])
        dead = _dead_channels(statistics.dead, channels, site.channel_axis)
        if dead is None or not dead.any():
            return None
        units = np.flatnonzero(dead)
        optimizer = getattr(model, "optimizer", None)

        # Plan everything first: a failure leaves every weight as it was.
        paths, reason = outgoing_paths(site)
        plans = _plan_consumers(site, paths, units) if paths else []
        if isinstance(plans, str):
            plans, reason = [], plans
        fresh = keras.ops.convert_to_numpy(
            _reseeded(layer.kernel_initializer)(
                tuple(layer.kernel.shape), dtype="float32"
            )
        )

        slots = _set_weights(optimizer, layer.kernel, axis, units, fresh)
        if getattr(layer, "bias", None) is not None:
            slots += _set_weights(optimizer, layer.bias, 0, units, self.bias)
        for consumer, rows, shift in plans:
            if shift is not None:
                _add_to_bias(consumer, shift, optimizer)
            slots += _set_weights(
                optimizer, consumer.kernel, input_axis(consumer), rows, 0.0
            )
        restarted, shared = (
            _restart_moving_statistics(site, paths, units) if plans else ([], [])
        )
        if plans:
            names = ", ".join(sorted({consumer.name for consumer, _, _ in plans}))
            outgoing = f"outgoing weights in {names} zeroed"
            if restarted:
                outgoing += (
                    f"; moving mean and variance of {', '.join(restarted)} "
                    "restarted at 0 and 1"
                )
            if shared:
                outgoing += (
                    f"; moving mean and variance of {', '.join(shared)} kept "
                    "(called more than once)"
                )
        else:
            outgoing = f"incoming weights only: next weighted layer unknown ({reason})"
        detail = (
            f"revived {len(units)} unit(s) of {layer.name}: new incoming weights, "
            f"bias {self.bias:g}; {outgoing}; {slots} optimizer slot(s) reset"
        )
        return len(units), 0, detail

    def get_config(self) -> dict[str, Any]:
        return {"bias": self.bias, "cooldown": self.cooldown}
