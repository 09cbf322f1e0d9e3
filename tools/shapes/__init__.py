"""Training tools of the shapes-world model family (docs/TRAINING.md)."""
import os

# OpenMP threads that spin while waiting collapse throughput on a shared 2-core machine (measured: a
# UNet forward 10x slower next to another busy process). Must be set before torch starts OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
