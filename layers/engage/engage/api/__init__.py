"""HTTP API shapes and the one place that maps errors to responses."""
