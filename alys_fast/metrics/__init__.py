"""Metric primitives the services count with (:class:`~alys_fast.metrics.histogram.Histogram`);
the node's metrics actor and Prometheus collector, which read every service, are
:mod:`alys_fast.node.metrics`."""
