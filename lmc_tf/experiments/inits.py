"""The `inits` job: N networks from N init seeds, trained to T, paired every way.

The paper asks whether two copies of one W_k are linearly connected; the later question
(Entezari et al. 2022; Ainsworth et al. 2023, "Git Re-Basin") is whether two networks that
share nothing, neither init nor SGD noise, are connected once one is permuted to match the
other. Network i starts from init seed `init_seed + i` and trains from step 0 to T exactly as
the `train` job trains a run; every unordered pair (i, j), i < j, is one pair of the manifest,
with variant 'inits'. The evaluator (`--job=evaluate`, with `evaluate.align` for the aligned
curves) and the report read it as they read an instability experiment's.

Seeds: network i uses its init seed s_i = init_seed + i as its data-order and augmentation
seed too. The networks' seeds are then distinct from one another, and network s trains the
same run as the `train` job with train.{init,data_order,augmentation}_seed = s (seed 0: the
train job's defaults).

Every run directory is named by the hash of what produced it (layout.run_name), so a rerun
finds finished networks and skips them, and resumes an interrupted one from its checkpoint.

  DIR/instability.json      the plan: every network and pair, written before training
  DIR/runs/network-<hash>   the training runs; each keeps W_0 (ckpt-0) and W_T (ckpt-T)
"""

import time

from absl import logging
import gin

from lmc_tf import distribute
from lmc_tf import errors
from lmc_tf import files
from lmc_tf import layout
from lmc_tf.data import base as data_base
from lmc_tf.experiments import common
from lmc_tf.experiments import steps as steps_lib
from lmc_tf.training import runner

VARIANT = "inits"


def network_seeds(seed):
  """The seeds of the network from init seed `seed`: its own data order and augmentation."""
  return {"init_seed": seed, "data_order_seed": seed, "augmentation_seed": seed}


def _check(num_inits, init_seed):
  errors.positive_int(num_inits, "inits.num_inits")
  if num_inits < 2:
    raise errors.ConfigError(f"inits.num_inits={num_inits!r}: need at least 2 networks to "
                             "make a pair")
  errors.non_negative_int(init_seed, "inits.init_seed")


def plan(fingerprint, total_steps, steps_per_epoch, num_inits=3, init_seed=0):
  """The networks and pairs of an inits experiment, named by hash (pure).

  The manifest has the instability job's format (experiments/instability.py), so the
  evaluator and the report read it unchanged: each network is the "parent" of its init seed
  (its checkpoint 0 is W_0), and a pair's "copies" are two networks, from step 0 to T.
  """
  _check(num_inits, init_seed)
  init_seeds = [init_seed + i for i in range(num_inits)]
  parents = {}
  for seed in init_seeds:
    spec = {"role": "network", "train": fingerprint, **network_seeds(seed)}
    parents[str(seed)] = {"run": layout.run_name("network", spec), "init_seed": seed,
                          "end_step": total_steps}
  pairs = []
  for a, seed_a in enumerate(init_seeds):
    for seed_b in init_seeds[a + 1:]:
      copies = [parents[str(seed_a)]["run"], parents[str(seed_b)]["run"]]
      pairs.append({
          "id": f"{VARIANT}-init{seed_a}-init{seed_b}-{layout.run_hash(copies)[:8]}",
          "variant": VARIANT, "rewind_step": 0, "init_seed": seed_a, "pair": len(pairs),
          "parent": copies[0], "copies": copies, "start_step": 0, "end_step": total_steps,
          "init_seeds": [seed_a, seed_b],
          "seeds": [network_seeds(seed_a), network_seeds(seed_b)]})
  return {"rewind_steps": [0], "num_inits": num_inits, "num_pairs": len(pairs),
          "init_seeds": init_seeds, "total_steps": total_steps,
          "steps_per_epoch": steps_per_epoch, "variants": [VARIANT], "every_epoch": False,
          "mask": None, "parents": parents, "pairs": pairs}


def network_key(init_seed):
  return f"network-init{init_seed}"


@gin.configurable("inits", denylist=["model_dir", "strategy", "plan_only"])
def inits(model_dir, strategy, num_inits=3, init_seed=0, plan_only=False):
  """Trains `num_inits` networks from init seeds init_seed, init_seed + 1, ..., each to T.

  Args:
    num_inits: N >= 2 networks; the manifest pairs every two, N (N - 1) / 2 pairs.
    init_seed: the first network's init seed.
    plan_only: return the experiment's steps (steps.Experiment) instead of running them, for
      the sweep launcher. The networks share nothing, so no step depends on another.
  """
  _check(num_inits, init_seed)  # before the data is read, as the other jobs check
  data = data_base.get_dataset()
  hparams = runner.TrainingHParams()
  schedule = runner.Schedule.resolve(hparams, data.num_train)
  manifest = plan(layout.training_fingerprint(), schedule.total, schedule.steps_per_epoch,
                  num_inits, init_seed)
  if distribute.is_chief(strategy):
    common.record_experiment(model_dir, "inits")
    files.write_json_atomic(layout.manifest(model_dir), manifest)
    common.write_operative_config(model_dir)
  networks = list(manifest["parents"].values())
  experiment_steps = [
      steps_lib.Step(network_key(net["init_seed"]), common.training_step(
          layout.run_dir(model_dir, net["run"]),
          f"[{n + 1}/{len(networks)}] network init {net['init_seed']} to step "
          f"{net['end_step']}", strategy=strategy, data=data, hparams=hparams,
          lineage=common.lineage(
              model_dir, layout.run_dir(model_dir, net["run"]),
              f"network/init={net['init_seed']}", "network", init_seed=net["init_seed"],
              seeds=network_seeds(net["init_seed"])),
          end_step=net["end_step"], **network_seeds(net["init_seed"])))
      for n, net in enumerate(networks)]
  started = time.time()

  def finish():
    elapsed = time.time() - started
    logging.info(f"Inits runs done in {elapsed:.0f} s: {len(networks)} networks, "
                 f"{len(manifest['pairs'])} pairs. Next: --job=evaluate, then --job=report.")
    return {"manifest": layout.manifest(model_dir), "networks": len(networks),
            "pairs": len(manifest["pairs"]), "wall_time_s": round(elapsed, 1)}

  experiment = steps_lib.Experiment(experiment_steps, finish)
  return experiment if plan_only else experiment.run()
