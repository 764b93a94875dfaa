"""Attacks: one class per backend, `attack(model, x, y) -> x_adv` with the budget set at construction."""
