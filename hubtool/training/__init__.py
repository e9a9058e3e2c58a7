"""Fine-tuning: settings, data, features, batching, the Accelerate loop, evaluation, resume."""
