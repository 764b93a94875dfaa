"""Evaluation: loading the models a run needs, threats, crafting, scoring and the settings
check. It stands on the parts (data, classifiers, attacks, defenses) and the runtime."""
