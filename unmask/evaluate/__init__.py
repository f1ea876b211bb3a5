"""Evaluation: face verification (k-fold accuracy, ROC, TAR@FAR, EER), re-identification (CMC, mAP
under the Market-1501 protocol), figures, and the identity ablation (``python -m unmask.evaluate``).

Submodules are imported on demand; importing this package loads nothing heavy.
"""
