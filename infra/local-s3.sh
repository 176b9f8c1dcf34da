#!/usr/bin/env bash
# A local S3-compatible endpoint for trying the S3 store without AWS: moto's server on 127.0.0.1:9000, in memory.
# Then: export AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
#       .venv/bin/python -c "import boto3; boto3.client('s3').create_bucket(Bucket='bai')"
#       bai run configs/demo.yaml --set storage.uri=s3://bai/demo
# Any S3-compatible service (AWS, MinIO, Ceph, R2) works the same way; only AWS_ENDPOINT_URL changes.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/moto_server -H 127.0.0.1 -p "${S3_PORT:-9000}"
