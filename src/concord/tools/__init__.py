"""Command-line tools that compute reference quantities (exact optima) for Concord's domains."""
