"""Object storage behind one protocol: `filesystem` (embedded default) and `s3` (minio client)."""
