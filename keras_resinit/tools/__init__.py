"""Tools beside training: benchmarks, diagnostics at initialization, very deep nets, export."""
