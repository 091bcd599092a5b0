"""What giving a test a fresh stream costs on DynamoDB Local (the pytest plugin's choice).

    .venv/bin/python tests/benchmarks/stream_reset.py [N ...]      (default: 60 200 600)

Prints the median latency of 300 puts on a warm server, then after N stream cycles of one
table (UpdateTable StreamEnabled false, then true, with one put per stream), for that table
and for an untouched one; then, on a fresh server, after creating, writing to and deleting
the first N stream tables, for comparison. Not part of `make test` or `make bench`.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from typing import Any

import boto3

from streamodel.testing.local import DynamoDBLocal


def client(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def put_ms(dynamodb: Any, table: str, n: int = 300) -> float:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        item = {"id": {"S": str(uuid.uuid4())}, "v": {"N": str(i)}}
        dynamodb.put_item(TableName=table, Item=item)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def create(dynamodb: Any, name: str) -> None:
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def cycle(dynamodb: Any, name: str) -> None:
    dynamodb.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    answer = dynamodb.update_table(
        TableName=name,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    assert answer["TableDescription"]["TableStatus"] == "ACTIVE"


def main(checkpoints: list[int]) -> None:
    with DynamoDBLocal() as server:
        dynamodb = client(server.endpoint_url)
        create(dynamodb, "probe")
        put_ms(dynamodb, "probe", 1000)  # JIT warm-up
        print(f"warm server, no stream cycled: put median {put_ms(dynamodb, 'probe'):.2f} ms")
        create(dynamodb, "cycled")
        done = 0
        for target in checkpoints:
            cycles = []
            while done < target:
                started = time.perf_counter()
                cycle(dynamodb, "cycled")
                cycles.append((time.perf_counter() - started) * 1000)
                dynamodb.put_item(TableName="cycled", Item={"id": {"S": f"k{done}"}})
                done += 1
            print(
                f"after {done} cycles: one cycle {statistics.median(cycles):.2f} ms; put median "
                f"cycled table {put_ms(dynamodb, 'cycled'):.2f} ms, "
                f"other table {put_ms(dynamodb, 'probe'):.2f} ms"
            )
    with DynamoDBLocal() as server:
        dynamodb = client(server.endpoint_url)
        create(dynamodb, "probe")
        put_ms(dynamodb, "probe", 1000)
        print(f"fresh server: put median {put_ms(dynamodb, 'probe'):.2f} ms")
        for i in range(checkpoints[0]):
            create(dynamodb, f"dropped{i}")
            dynamodb.put_item(TableName=f"dropped{i}", Item={"id": {"S": "x"}})
            dynamodb.delete_table(TableName=f"dropped{i}")
        print(
            f"after {checkpoints[0]} stream tables created and deleted: put median "
            f"{put_ms(dynamodb, 'probe'):.2f} ms"
        )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [60, 200, 600])
