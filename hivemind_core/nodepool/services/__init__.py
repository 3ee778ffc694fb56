"""One servicer class per gRPC service of protos/nodepool.proto."""
