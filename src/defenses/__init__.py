"""Purification defenses: each maps pixels to pixels of the same shape with `purify(x)`."""
