"""AWS's DynamoDB Local, installed on demand and run as a child process (API.md §5).

The implementation lives in :mod:`streamodel.testing.local`, beside the other helpers for
tests; this module is the documented public path and re-exports it unchanged, without a
warning.
"""

from streamodel.testing.local import (
    DYNAMODB_LOCAL_VERSION,
    MIN_JAVA_MAJOR,
    NPM_PACKAGE,
    DynamoDBLocal,
    DynamoDBLocalError,
    check_java,
    default_directory,
    install,
    is_installed,
    parse_java_major,
)

__all__ = [
    "DYNAMODB_LOCAL_VERSION",
    "MIN_JAVA_MAJOR",
    "NPM_PACKAGE",
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "check_java",
    "default_directory",
    "install",
    "is_installed",
    "parse_java_major",
]
