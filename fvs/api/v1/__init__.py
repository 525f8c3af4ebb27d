"""Generated from proto/fvs/v1 by scripts/gen_proto.sh. Do not edit."""
