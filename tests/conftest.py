pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.minio",
    "tests.fixtures.s3",
    "tests.edc_standin.fixture",
]
