"""Results as rows and what is read from them: the results table, the checklist, the
published figures beside ours, cards and findings. Nothing here imports torch."""
