"""Building blocks shared by defenses: quantizers, blocks, callbacks."""
