"""Classifier architectures (plain nn.Modules) and the LightningModule that trains any of them."""
