# syntax=docker/dockerfile:1
# MLflow tracking server for docker/compose.yaml: runs, params and metrics in Postgres; artifacts in S3, written by
# the clients themselves (--no-serve-artifacts), read by the server only to show them in the UI.
# psycopg2 is named in compose.yaml's postgresql+psycopg2:// URI: SQLAlchemy 2.1 defaults to psycopg 3 otherwise.
FROM python:3.12-slim
ARG MLFLOW_VERSION=3.17.2
RUN pip install --no-cache-dir "mlflow==${MLFLOW_VERSION}" psycopg2-binary boto3 \
 && useradd --create-home --uid 1000 mlflow
USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
