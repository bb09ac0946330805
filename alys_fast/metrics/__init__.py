"""Node metrics: what the chain, pool and RPC count, exported to Prometheus at scrape time."""
