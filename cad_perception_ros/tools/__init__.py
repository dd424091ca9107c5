"""Research and operations tools (ablations, diagnostics, benchmarks) apart from the library."""
