"""Generated from protos/nodepool.proto by scripts/gen_proto.py — do not edit."""
