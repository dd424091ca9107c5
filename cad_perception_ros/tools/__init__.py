"""Research and operations tools: ablations, model soups, diagnostics, demo, soak, benchmarks."""
