"""The one strategy factory (SPEC §1): every job gets its tf.distribute strategy here."""

import gin
import tensorflow as tf

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
_MIRRORED = {}


def _ensure_logical_cpus(count):
  """Splits the host CPU into `count` logical devices, so MirroredStrategy can run on a CPU."""
  cpus = tf.config.list_physical_devices("CPU")
  configured = tf.config.get_logical_device_configuration(cpus[0]) or ()
  if len(configured) >= count:
    return  # already split at least this finely (a strategy over fewer uses the first ones)
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
  except RuntimeError:
    # TF is already initialised: keep what is there, but make sure it is enough.
    have = len(tf.config.list_logical_devices("CPU"))
    if have < count:
      raise ValueError(
          f"strategy.num_cpu_devices={count}, but TensorFlow was already initialised with "
          f"{have} logical CPU device(s); set it before any TensorFlow op runs.") from None


@gin.configurable("strategy")
def get_strategy(name="default", tpu=None, num_cpu_devices=None,
                 communication="auto"):
  """Returns the tf.distribute strategy named in gin.

  Args:
    name: one of STRATEGIES.
    tpu: TPU address for name='tpu' ('' or 'local' on a TPU VM, a name or grpc:// address).
    num_cpu_devices: for 'mirrored' on a host with no GPU, split the CPU into this many
      logical devices and mirror over them (useful for tests and CPU development).
    communication: collective implementation for 'multi_worker_mirrored':
      'auto', 'ring' or 'nccl'.
  """
  if name not in STRATEGIES:
    raise ValueError(f"strategy.name={name!r} is not one of {STRATEGIES}")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    if num_cpu_devices:
      _ensure_logical_cpus(num_cpu_devices)
    if tf.config.list_physical_devices("GPU"):
      devices = tuple(d.name for d in tf.config.list_logical_devices("GPU"))
    else:
      devices = tuple(d.name for d in tf.config.list_logical_devices("CPU"))
      if num_cpu_devices:
        devices = devices[:num_cpu_devices]
    # One strategy per device set and process: two MirroredStrategy objects number their
    # collective groups alike from 1, and TF's collective executor then mixes up their
    # all-reduces ("Shape mismatch in the collective instance", or a group of 2 devices
    # meeting one of 4). Each device set gets its own range of group keys.
    if devices not in _MIRRORED:
      cls = type("MirroredStrategy", (tf.distribute.MirroredStrategy,),
                 {"_collective_key_base": 100_000 * len(_MIRRORED)})
      _MIRRORED[devices] = cls(devices=list(devices))
    return _MIRRORED[devices]
  if name == "multi_worker_mirrored":
    impl = {"auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL}[communication]
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=impl))
  # TPU VM or pod slice: the resolver finds the workers from `tpu`.
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
  """True on the worker that writes results (multi-worker runs write from one host only)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type in ("chief",):
    return True
  spec = resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in spec


def worker_id(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return 0
  return resolver.task_id


def num_workers(strategy):
  """Hosts taking part: 1 unless the strategy spans a cluster."""
  if isinstance(strategy, tf.distribute.TPUStrategy):
    # One client drives every host of a pod slice; the resolver of a TPU VM ('local') has
    # an empty cluster spec, so ask the TPU system.
    return strategy.extended.num_hosts
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return 1
  spec = resolver.cluster_spec().as_dict()
  return max(1, sum(len(spec.get(kind, ())) for kind in ("chief", "worker")))
