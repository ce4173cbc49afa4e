"""lmc_tf: Linear Mode Connectivity and the Lottery Ticket Hypothesis in TF2 / Keras 3.

Data flows one way: config -> data + model -> runner -> checkpoints -> evaluator -> results.
"""

__version__ = "0.1.0"
