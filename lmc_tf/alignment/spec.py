"""The permutation spec of a Keras functional model, derived from its graph.

Git Re-Basin writes a spec by hand for each architecture; here one walk of the graph finds it.
Each tensor's last (channel) axis is labelled by the units it carries: a sequence of segments,
each a run of one group's units, repeated `repeat` times along a flattened axis. A masked
conv or dense layer starts a new group at its output (the last axis of kernel, mask and bias)
and joins the groups of its input at kernel axis -2. BatchNorm's four vectors move with their
channels; activations, pooling, padding and dropout pass channels through; `Add` ties its
inputs' groups into one (a ResNet stage shares one permutation, found by union-find);
`Concatenate` lays its inputs' segments side by side (Inception's block-diagonal
permutations); `Flatten` of an NHWC map repeats the channel segments once per pixel. The
network's inputs and outputs are never permuted: a group that reaches them is fixed.

The convention used throughout: a permutation `perm` of a group of size n is an index array;
the permuted network's unit i is the original network's unit perm[i].
"""

import dataclasses
from typing import Tuple

import keras

from lmc_tf.models import layers as layers_lib

_FIXED = 0  # the union-find node of the units that are never permuted

# Layers that act on each channel alone, or on space only: the output carries the input's units.
_PASS_THROUGH = (
    keras.layers.ReLU, keras.layers.Activation, keras.layers.Dropout,
    layers_lib.FeatureHashDropout, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
    keras.layers.ZeroPadding2D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)
# Elementwise merges: a permutation commutes with them only if all inputs share it.
_MERGES = (keras.layers.Add, keras.layers.Average, keras.layers.Maximum, keras.layers.Minimum,
           keras.layers.Multiply, keras.layers.Subtract)


@dataclasses.dataclass(frozen=True)
class Member:
  """One axis of one variable that a group's permutation acts on.

  The axis is read as [repeat, block]; the group's units occupy [start, start + size) of each
  block. A conv output is repeat=1, start=0, block=size; a consumer of a concatenation has
  start at the input's offset; the dense after a Flatten has repeat = H * W.
  """
  variable: int  # index into model.variables (and the weights lists of permute/matching)
  axis: int
  start: int
  block: int
  repeat: int
  name: str  # the variable's path, for reading


@dataclasses.dataclass(frozen=True)
class Point:
  """Where a group's units are seen as activations: the output of layer `layer`, that a
  conv or dense layer reads, its last axis read as [repeat, block] (repeat > 1: a flattened
  map), the group at `start`."""
  layer: str
  start: int
  block: int
  repeat: int


@dataclasses.dataclass(frozen=True)
class Group:
  name: str  # the first layer that produces its units
  size: int
  members: Tuple[Member, ...]
  points: Tuple[Point, ...]  # the inputs of the layers that consume its units
  producers: Tuple[str, ...]  # every layer whose output units it is (several: an Add)


@dataclasses.dataclass(frozen=True)
class PermutationSpec:
  groups: Tuple[Group, ...]
  num_variables: int
  masks: Tuple[Tuple[int, int], ...] = ()  # (mask, kernel) variable indices of masked layers

  def group(self, name):
    for g in self.groups:
      if g.name == name:
        return g
    raise KeyError(f"no permutation group {name!r}; groups: {[g.name for g in self.groups]}")


@dataclasses.dataclass(frozen=True)
class _Channels:
  segments: Tuple[Tuple[int, int], ...]  # (union-find node, size)
  repeat: int = 1

  @property
  def block(self):
    return sum(size for _, size in self.segments)

  def offsets(self):
    start = 0
    for node, size in self.segments:
      yield node, start, size
      start += size


class _Builder:
  """The union-find over provisional groups, with what each group has collected."""

  def __init__(self, model):
    self.variables = model.variables
    self.index = {id(v): i for i, v in enumerate(self.variables)}
    self.parent, self.size = [_FIXED], [None]
    self.members, self.points, self.producers = {}, {}, {}
    self.seen_points = set()
    self.masks = []

  def new_group(self, size, producer):
    node = len(self.parent)
    self.parent.append(node)
    self.size.append(size)
    self.producers[node] = [producer]
    return node

  def find(self, node):
    while self.parent[node] != node:
      self.parent[node] = self.parent[self.parent[node]]
      node = self.parent[node]
    return node

  def union(self, a, b, where):
    a, b = self.find(a), self.find(b)
    if a == b:
      return
    if _FIXED not in (a, b) and self.size[a] != self.size[b]:
      raise ValueError(f"{where}: merges groups of {self.size[a]} and {self.size[b]} units")
    a, b = min(a, b), max(a, b)  # the fixed node stays the root; else the earlier group
    self.parent[b] = a

  def add_member(self, node, variable, axis, start=0, block=None, repeat=1):
    if node == _FIXED:
      return
    i = self.index[id(variable)]
    block = self.size[node] if block is None else block
    self.members.setdefault(node, []).append(
        Member(i, axis, start, block, repeat, variable.path))

  def add_points(self, tensor, channels):
    layer = tensor._keras_history.operation
    for node, start, _ in channels.offsets():
      key = (id(tensor), node, start)
      if node != _FIXED and key not in self.seen_points:
        self.seen_points.add(key)
        self.points.setdefault(node, []).append(
            Point(layer.name, start, channels.block, channels.repeat))

  def spec(self):
    nodes = {}
    for node in range(1, len(self.parent)):
      root = self.find(node)
      if root != self.find(_FIXED):
        nodes.setdefault(root, []).append(node)
    groups = []
    for root, merged in nodes.items():
      members = [m for n in merged for m in self.members.get(n, [])]
      points = [p for n in merged for p in self.points.get(n, [])]
      producers = [p for n in merged for p in self.producers[n]]
      groups.append(Group(producers[0], self.size[root], tuple(members), tuple(points),
                          tuple(producers)))
    groups.sort(key=lambda g: min(m.variable for m in g.members))
    return PermutationSpec(tuple(groups), len(self.variables), tuple(self.masks))


def _weighted(b, layer, channels, tensor):
  """A conv or dense layer: joins its input's groups at kernel axis -2, starts one at -1."""
  kernel = layer.kernel
  if isinstance(layer, keras.layers.Conv2D) and (
      layer.groups != 1 or layer.data_format != "channels_last"):
    raise ValueError(f"layer {layer.name!r}: alignment supports only ungrouped NHWC convs")
  if channels.block * channels.repeat != kernel.shape[-2]:
    raise ValueError(f"layer {layer.name!r}: {kernel.shape[-2]} input units, but the graph "
                     f"carries {channels.repeat} x {channels.block}")
  masks = [layer.mask] if isinstance(layer, layers_lib._MaskMixin) else []
  if masks:
    b.masks.append((b.index[id(layer.mask)], b.index[id(kernel)]))
  in_axis, out_axis = len(kernel.shape) - 2, len(kernel.shape) - 1
  for node, start, _ in channels.offsets():
    for v in [kernel] + masks:
      b.add_member(node, v, in_axis, start, channels.block, channels.repeat)
  b.add_points(tensor, channels)
  node = b.new_group(int(kernel.shape[-1]), layer.name)
  for v in [kernel] + masks:
    b.add_member(node, v, out_axis)
  if layer.use_bias:
    b.add_member(node, layer.bias, 0)
  return _Channels(((node, b.size[node]),))


def _normalization(b, layer, channels):
  if channels.repeat != 1:
    raise ValueError(f"layer {layer.name!r}: normalises a flattened axis")
  if isinstance(layer, keras.layers.BatchNormalization) and layer.axis not in (-1, 3):
    raise ValueError(f"layer {layer.name!r}: normalises axis {layer.axis}, not the channels")
  vectors = [getattr(layer, n, None) for n in ("gamma", "beta", "moving_mean",
                                               "moving_variance")]
  for node, start, _ in channels.offsets():
    for v in vectors:
      if v is not None:
        b.add_member(node, v, 0, start, channels.block)
  return channels


def _merge(b, layer, inputs):
  first = inputs[0]
  for other in inputs[1:]:
    if other.repeat != first.repeat or [s for _, s in other.segments] != [
        s for _, s in first.segments]:
      raise ValueError(f"layer {layer.name!r}: merges tensors whose units are laid out "
                       f"differently ({first} and {other}); alignment cannot tie them")
    for (a, _), (c, _) in zip(first.segments, other.segments):
      b.union(a, c, f"layer {layer.name!r}")
  return first


def _concatenate(layer, inputs, rank):
  if layer.axis not in (-1, rank - 1) or any(c.repeat != 1 for c in inputs):
    raise ValueError(f"layer {layer.name!r}: alignment concatenates channels only")
  return _Channels(tuple(s for c in inputs for s in c.segments))


def _flatten(layer, channels, shape):
  if len(shape) == 2:
    return channels
  if layer.data_format != "channels_last" or len(shape) != 4 or None in shape[1:3]:
    raise ValueError(f"layer {layer.name!r}: alignment flattens NHWC maps of known size only")
  return _Channels(channels.segments, channels.repeat * int(shape[1]) * int(shape[2]))


def _outputs(b, layer, node, inputs, tensor):
  """The channel labels of `node`'s output: the rule of its layer type."""
  if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
    return _weighted(b, layer, inputs[0], tensor)
  if isinstance(layer, (layers_lib.BatchNorm, keras.layers.BatchNormalization)):
    return _normalization(b, layer, inputs[0])
  if isinstance(layer, _PASS_THROUGH):
    return inputs[0]
  if isinstance(layer, _MERGES):
    return _merge(b, layer, inputs)
  if isinstance(layer, keras.layers.Concatenate):
    return _concatenate(layer, inputs, len(node.input_tensors[0].shape))
  if isinstance(layer, keras.layers.Flatten):
    return _flatten(layer, inputs[0], node.input_tensors[0].shape)
  raise ValueError(f"layer {layer.name!r} of type {type(layer).__name__}: alignment does not "
                   f"know how it treats channels")


def permutation_spec(model):
  """The PermutationSpec of a Keras functional `model` (see the module docstring)."""
  b = _Builder(model)
  channels = {}
  # A padded map shows a group's units as its input does (plus zeros): one activation point.
  source = {}
  for depth in sorted(model._nodes_by_depth, reverse=True):
    for node in model._nodes_by_depth[depth]:
      layer = node.operation
      if isinstance(layer, keras.layers.InputLayer):
        out = _Channels(((_FIXED, int(node.output_tensors[0].shape[-1])),))
      else:
        first = node.input_tensors[0]
        first = source.get(id(first), first)
        out = _outputs(b, layer, node, [channels[id(t)] for t in node.input_tensors], first)
        if isinstance(layer, keras.layers.ZeroPadding2D):
          source[id(node.output_tensors[0])] = first
      for t in node.output_tensors:
        channels[id(t)] = out
  for t in model.outputs:
    for node, _ in channels[id(t)].segments:
      b.union(_FIXED, node, "the model's outputs")
  return b.spec()
