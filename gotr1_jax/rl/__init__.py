"""GRPO: the pure loss and advantages, the rollout glue and the trainer loop."""
