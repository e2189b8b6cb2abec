# Sourced (never run) by the launcher's `ray start` commands, after cluster/unlearn-sweep.env: puts the Ray token and,
# where configured, an S3-compatible store's key pair into the environment, read from SSM Parameter Store with the
# node's IAM role. Nothing secret is written to disk, synced by `ray up`, or placed on a command line.
ssm_secret() { aws ssm get-parameter --with-decryption --name "$1" --query Parameter.Value --output text; }
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN="$(ssm_secret "${RAY_AUTH_TOKEN_PARAMETER:?set RAY_AUTH_TOKEN_PARAMETER in cluster/unlearn-sweep.env}")" || return 1
export RAY_AUTH_TOKEN
if [ -n "${S3_KEYS_PARAMETER_PREFIX:-}" ]; then
  AWS_ACCESS_KEY_ID="$(ssm_secret "$S3_KEYS_PARAMETER_PREFIX/aws-access-key-id")" || return 1
  AWS_SECRET_ACCESS_KEY="$(ssm_secret "$S3_KEYS_PARAMETER_PREFIX/aws-secret-access-key")" || return 1
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
fi
