"""advpurify: generative adversarial-purification defenses, trained and evaluated with Lightning + Hydra."""
