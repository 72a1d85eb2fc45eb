"""Statistics, figures, tables and reports built from per-cell evaluation results."""
