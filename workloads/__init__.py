"""Pure PyTorch workloads: data, models, training, unlearning methods, attacks, weight-space metrics.
Nothing here imports Ray, MLflow or boto3."""
