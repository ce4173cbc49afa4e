"""The Stabilizing paper's own numbers, to print beside ours: Figure 2 (the networks' accuracy),
Figure 3 (stability as L2 distance) and Figure 10 (as angle), at reset to iteration 0.

Each value is (mean, err): the paper's "±", which it says is the minimum or maximum across
its samples (18 pairs for data order, 3 inits for pruning and accuracy). Our copy of Figure 2's
drops and rates is garbled; its configs take them from Frankle & Carbin 2019
(gin_configs/stabilizing/cifar10_sgd.gin). Only the accuracies are used here.
"""

ROWS = ("lenet", "resnet20_standard", "resnet20_low", "resnet20_warmup", "vgg19_standard",
        "vgg19_low", "vgg19_warmup")
# Figure 6's ImageNet networks: our copy prints their stability only as plots (Figures 7, 12).
IMAGENET_ROWS = ("resnet50_imagenet", "inception_v3_imagenet", "squeezenet_imagenet")

# The paper calls the 20-layer CIFAR ResNet "Resnet-18".
PAPER_NAMES = {"lenet": "Lenet", "resnet20_standard": "Resnet-18 (standard)",
               "resnet20_low": "Resnet-18 (low)", "resnet20_warmup": "Resnet-18 (warmup)",
               "vgg19_standard": "VGG-19 (standard)", "vgg19_low": "VGG-19 (low)",
               "vgg19_warmup": "VGG-19 (warmup)", "resnet50_imagenet": "Resnet-50 (ImageNet)",
               "inception_v3_imagenet": "Inception-v3 (ImageNet)",
               "squeezenet_imagenet": "Squeezenet (ImageNet)"}

# Figure 2: test accuracy (%) of the unpruned network, over three trials.
ACCURACY = {"lenet": (98.0, 0.2), "resnet20_standard": (90.5, 0.0),
            "resnet20_low": (89.1, 0.1), "resnet20_warmup": (89.6, 0.1),
            "vgg19_standard": (91.5, 0.2), "vgg19_low": (92.0, 0.1),
            "vgg19_warmup": (92.3, 0.1)}

# Figure 3's representative sparsity: % of weights remaining.
SPARSITY = {"resnet50_imagenet": 30.0, "inception_v3_imagenet": 30.0,
            "squeezenet_imagenet": 50.0, "lenet": 10.7, "resnet20_standard": 16.7, "resnet20_low": 16.7,
            "resnet20_warmup": 16.7, "vgg19_standard": 2.2, "vgg19_low": 2.2,
            "vgg19_warmup": 2.2}

# (measure, metric) -> row -> {"imp": (mean, err), "random_pruning": (mean, err)}.
# Measures: data_order and pruning (metric l2 from Figure 3, angle_deg from Figure 10), and
# test_accuracy (Figure 3's; Figure 10 repeats it, garbled for VGG-19 in our copy).
_FIGURE_3 = {  # data order IMP, Random; pruning IMP, Random; accuracy IMP, Random
    "lenet": ((20.7, 0.6), (58.6, 4.0), (48.1, 0.6), (75.7, 0.5), (98.3, 0.1), (97.5, 0.3)),
    "resnet20_standard": ((66.4, 0.7), (66.7, 1.1), (54.4, 0.2), (53.4, 0.4), (87.7, 0.4),
                          (87.7, 0.5)),
    "resnet20_low": ((7.1, 1.2), (28.9, 3.2), (19.8, 1.4), (26.6, 0.1), (89.1, 0.4),
                     (86.1, 0.6)),
    "resnet20_warmup": ((9.5, 0.1), (37.4, 1.9), (24.8, 0.9), (34.6, 0.2), (90.3, 0.4),
                        (86.8, 0.5)),
    "vgg19_standard": ((285, 3), (245, 34), (216, 1), (212, 1), (90.0, 0.3), (90.2, 0.5)),
    "vgg19_low": ((36.8, 2.6), (90.3, 0.7), (44.0, 0.3), (66.1, 0.4), (91.0, 0.3),
                  (88.0, 0.3)),
    "vgg19_warmup": ((97, 0.6), (267, 2), (138, 1), (201, 1), (92.4, 0.2), (90.3, 0.3)),
}
_FIGURE_10 = {  # data order IMP, Random; pruning IMP, Random (degrees)
    "lenet": ((22.7, 0.5), (49.2, 3.0), (53.1, 0.8), (83.6, 1.1)),
    # As printed: the pruning cells repeat the data-order cells for this row.
    "resnet20_standard": ((87.7, 1.2), (88.0, 1.4), (87.7, 1.2), (88.0, 1.4)),
    "resnet20_low": ((16.1, 2.7), (75.8, 1.2), (50.4, 4.8), (77.1, 0.4)),
    "resnet20_warmup": ((17.0, 0.2), (69.0, 3.8), (49.9, 2.3), (79.0, 0.5)),
    "vgg19_standard": ((88.5, 0.4), (88.3, 0.5), (87.8, 0.2), (88.1, 0.2)),
    "vgg19_low": ((39.9, 2.1), (84.9, 0.6), (54.0, 0.4), (79.0, 0.2)),
    "vgg19_warmup": ((39.9, 2.1), (84.6, 0.4), (71.7, 0.3), (84.8, 0.2)),
}


def _pairs(cells):
  return [{"imp": cells[i], "random_pruning": cells[i + 1]} for i in range(0, len(cells), 2)]


# Where each measure sits among a row's cells: (table, index of its IMP / Random pair).
_CELLS = {("data_order", "l2"): (_FIGURE_3, 0), ("pruning", "l2"): (_FIGURE_3, 1),
          ("test_accuracy", None): (_FIGURE_3, 2), ("data_order", "angle_deg"): (_FIGURE_10, 0),
          ("pruning", "angle_deg"): (_FIGURE_10, 1)}
STABILITY = {key: {row: _pairs(table[row])[i] for row in ROWS}
             for key, (table, i) in _CELLS.items()}


def check_row(row):
  """Raises ValueError naming the known rows if `row` is not one of them."""
  if row not in ROWS + IMAGENET_ROWS:
    raise ValueError(f"report.stabilizing_row={row!r}: not a network of the Stabilizing "
                     f"paper's Figures 2 and 6; known: {list(ROWS + IMAGENET_ROWS)}")
  return row
