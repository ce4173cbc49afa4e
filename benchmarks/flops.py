r"""FLOPs of one train step and one forward pass, counted by TF's profiler on the traced graph.

    .venv/bin/python benchmarks/flops.py --models=resnet20,lenet_300_100

For each model at its Table 1 batch size (throughput.MODELS): the forward pass (training
mode) and the forward + backward pass of the cross-entropy loss, as
`tf.compat.v1.profiler` counts the float operations of their graphs (matmuls and
convolutions at 2 FLOPs per multiply-add; the optimizer's update, a few FLOPs per weight, is
left out). The README's accelerator estimates start from these figures.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import tensorflow as tf  # noqa: E402

from lmc_tf import config  # noqa: E402
from lmc_tf.models import registry  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput  # noqa: E402  pylint: disable=g-import-not-at-top


def graph_flops(function, *specs):
  graph = function.get_concrete_function(*specs).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def model_flops(model_name):
  spec = throughput.MODELS[model_name]
  shape = throughput.DATASETS[spec["dataset"]]["shape"]
  batch = spec["batch"]
  gin.clear_config()
  config.parse([], [f"model.name = '{model_name}'"])
  model = registry.build_model(init_seed=0, input_shape=shape, num_classes=10)

  @tf.function
  def forward(images):
    return model(images, training=True)

  @tf.function
  def forward_backward(images, labels):
    with tf.GradientTape() as tape:
      losses, _ = registry.per_example_loss(model, model(images, training=True), labels)
      loss = tf.reduce_mean(losses)
    return tape.gradient(loss, model.trainable_variables)

  images = tf.TensorSpec([batch, *shape], tf.float32)
  labels = tf.TensorSpec([batch], tf.int32)
  return {"model": model_name, "batch": batch,
          "params": int(sum(v.shape.num_elements() for v in model.trainable_variables)),
          "forward_gflop": graph_flops(forward, images) / 1e9,
          "train_step_gflop": graph_flops(forward_backward, images, labels) / 1e9}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--models", default="resnet20,lenet_300_100")
  args = p.parse_args(argv)
  for name in args.models.split(","):
    r = model_flops(name)
    print(f"{r['model']}: batch {r['batch']}, {r['params']:,} weights; forward "
          f"{r['forward_gflop']:.2f} GFLOP ({1e3 * r['forward_gflop'] / r['batch']:.1f} "
          f"MFLOP/image); forward + backward {r['train_step_gflop']:.2f} GFLOP per step")


if __name__ == "__main__":
  main()
