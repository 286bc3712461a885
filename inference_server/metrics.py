"""Prometheus metrics, one registry per app so tests can build several apps in a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge("qwen_image_queue_depth", "Jobs waiting in the queue", registry=self.registry)
        self.job_seconds = Histogram(
            "qwen_image_job_duration_seconds", "Time a job spent running", ["task"], registry=self.registry,
            buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
        )
        self.failures = Counter("qwen_image_job_failures", "Jobs that ended without images", ["code"],
                                registry=self.registry)
        self.images = Counter("qwen_image_images", "Images made", ["task"], registry=self.registry)
        self.cache_hits = Counter("qwen_image_cache_hits", "Requests answered from the result cache",
                                  registry=self.registry)
        self.safety_actions = Counter("qwen_image_safety_actions", "Images the safety policy flagged, blurred or "
                                      "blocked", ["action"], registry=self.registry)
        self.rejected = Counter("qwen_image_rejected", "Requests refused because the queue was full",
                                registry=self.registry)
