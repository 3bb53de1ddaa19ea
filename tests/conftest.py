pytest_plugins = [
    "workflow_testkit.servers.postgres",
    "workflow_testkit.servers.minio",
    "workflow_testkit.servers.s3",
    "workflow_testkit.edc_standin.fixture",
]
