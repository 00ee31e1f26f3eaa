"""Models: specs and how to build them (smp U-Nets), weights files (format, int8/fp16, bundle, registry)."""
