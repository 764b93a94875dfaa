"""Data modules: each dataset is held as whole uint8 tensors and served as [0,1] floats (SPEC 1)."""
