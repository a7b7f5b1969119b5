"""Offline task data: scikit-learn digits, augmentations, training and the checkpoint cache."""
