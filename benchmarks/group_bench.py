"""Benchmarks of many runs in one program (throughput.py --copies): K copies trained by one
`group.GroupTrainer` loop, and the 30-alpha sweep measured M alphas per program."""

from concurrent import futures
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from lmc_tf import distribute
from lmc_tf.evaluation import evaluator as evaluator_lib
from lmc_tf.models import layers
from lmc_tf.training import group
from lmc_tf.training import runner


def group_train_bench(throughput, model_name, data, data_bindings, jit, steps, reps, density,
                      mixed_precision, augment, workdir, copies, steps_per_program=1,
                      programs_at_once=1):
  """`copies` Trainers (data-order seeds 1..K) in one GroupTrainer loop, or K x L of them
  as L programs launched together (`programs_at_once`); one rep = one loop call of `steps`
  steps of every copy. Images/s count every copy's images."""
  lengths = throughput.loop_lengths(steps, reps)
  throughput.bind(model_name, data_bindings, sum(lengths), jit, mixed_precision, augment,
                  steps_per_program, programs_at_once)
  trainers = []
  for c in range(copies * programs_at_once):
    model_dir = tempfile.mkdtemp(prefix=f"group_{model_name}_{c}_", dir=workdir)
    trainer = runner.Trainer(model_dir, data=data, init_seed=c, data_order_seed=c + 1,
                             augmentation_seed=c + 1)
    layers.set_masks(trainer.model, throughput.random_masks(trainer.model, density))
    trainers.append(trainer)
  grouped = group.GroupTrainer(trainers)
  iterators = tuple(t.start_training(lengths) for t in trainers)
  batch = trainers[0].hparams.batch_size
  programs = grouped.programs()
  if len(programs) == 1:
    loops = [(grouped._make_loop(), iterators)]  # pylint: disable=protected-access
  else:
    # As GroupTrainer.train launches them: each program's loop from its own thread.
    loops, first = [], 0
    for runs in programs:
      loops.append((runner.compiled_loop(runs), iterators[first:first + len(runs)]))
      first += len(runs)
    for loop, its in loops:
      loop.get_concrete_function(its, tf.constant(1, tf.int64))
  pool = futures.ThreadPoolExecutor(len(loops))

  def run(n):
    running = [pool.submit(lambda f=loop, i=its: f(i, tf.constant(n, tf.int64)).numpy())
               for loop, its in loops]
    totals = np.concatenate([r.result() for r in running])  # waits for every loop
    return float(totals[:, 0].mean()) / (n * batch)

  info = {"model": model_name, "copies": copies * programs_at_once,
          "programs": len(programs), "batch": batch, "steps_per_rep": steps,
          "jit": bool(jit), "xla_used": trainers[0]._use_xla(),  # pylint: disable=protected-access
          "steps_per_program": trainers[0].steps_per_program,
          "mixed_precision": mixed_precision, "num_train": data.num_train}
  tic = time.perf_counter()
  run(1)
  info["first_step_s"] = round(time.perf_counter() - tic, 2)
  run(steps)
  items = len(trainers) * steps * batch

  def rep(_):
    tic = time.perf_counter()
    loss = run(steps)
    return {"sec": time.perf_counter() - tic, "items": items, "loss": loss}

  at_once = "" if programs_at_once == 1 else f" L={programs_at_once}"
  return throughput.Bench(f"train/{model_name} K={copies}{at_once}", jit, info, rep)


def group_sweep_bench(throughput, model_name, data, data_bindings, density, workdir,
                      per_program, factored=False):
  """The 30-alpha sweep over the test split, `per_program` alphas per program (with the
  first layer factored if `factored`). One rep is one whole sweep here (a fresh curve
  file), timed end to end."""
  throughput.bind(model_name, data_bindings)
  sweeper = evaluator_lib.Sweeper(distribute.get_strategy(), data, ("test",), None,
                                  throughput.EVAL_BATCH, per_program, factored)
  masks = throughput.random_masks(sweeper.model, density)
  layers.set_masks(sweeper.model, masks)
  weights_a = [v.numpy() for v in sweeper.model.variables]
  weights_b = throughput.perturbed(sweeper.model)
  alphas = [float(a) for a in throughput.barrier.alphas(throughput.NUM_ALPHAS)]
  curves = tempfile.mkdtemp(prefix="group_sweep_", dir=workdir)
  count = [0]

  def sweep():
    count[0] += 1
    path = os.path.join(curves, f"curve{count[0]}.json")
    return sweeper.sweep(weights_a, weights_b, alphas, path)

  tic = time.perf_counter()
  sweep()
  info = {"model": model_name, "alphas_per_program": per_program,
          "factored": sweeper.first_layer is not None,
          "batch": throughput.EVAL_BATCH, "examples": data.num_test,
          "first_sweep_s": round(time.perf_counter() - tic, 2)}

  def rep(_):
    tic = time.perf_counter()
    points = sweep()
    return {"sec": time.perf_counter() - tic, "items": len(alphas) * data.num_test,
            "error": points[len(points) // 2]["test"]["error"]}

  return throughput.Bench(f"sweep30/{model_name} M={per_program}", None, info, rep)
