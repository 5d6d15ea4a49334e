"""Runs moto's server for the local cloud, and exits when the process that started it is gone.

pulse-local kills the emulator when it stops; this guard also covers the cases where it cannot
(it was killed with SIGKILL, or a test process exited), so no emulator outlives its owner.
"""
import os
import sys
import threading
import time

PARENT = os.getppid()


def _exit_with_parent() -> None:
    while True:
        if os.getppid() != PARENT:
            os._exit(0)
        time.sleep(0.5)


threading.Thread(target=_exit_with_parent, daemon=True).start()

import base64  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402

from moto.core import responses as _responses  # noqa: E402
from moto.dynamodb.models.table import Table  # noqa: E402
from moto.server import main  # noqa: E402  (imported after the guard starts: moto loads slowly)

# Performance only, same answers: moto answers a table Query by listing and sorting every item
# of the table (Table.all_items), so each Query costs O(table) and the local cloud slows down
# as data accumulates (the rollup job Queries a lot). A Query of the base table names one
# partition; while it runs, all_items yields only that partition's items that meet the sort-key
# condition, which moto then filters, sorts and pages exactly as before. The condition is applied
# first because moto sizes every candidate item (for the 1 MB page) before it tests the
# condition, which made a Query of a few items in a partition of thousands (a resolution's
# marks, a shard of hourly buckets) cost a walk over every attribute of every item there.
# Index queries are untouched.
_partition = threading.local()
_all_items = Table.all_items
_query = Table.query


def _partition_items(self):
    hash_key = getattr(_partition, "hash_key", None)
    if hash_key is not None and getattr(_partition, "table", None) is self:
        if hash_key not in self.items:
            return []
        items = self.items[hash_key].values()
        comparison, objs = _partition.range_comparison, _partition.range_objs
        if comparison:
            return [i for i in items if i.range_key and i.range_key.compare(comparison, objs)]
        return list(items)
    return _all_items(self)


def _partition_query(self, hash_key, *args, **kwargs):
    # range_comparison, range_objs and index_name are query's 2nd, 3rd and 8th parameters;
    # moto's backend passes them positionally.
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name is None and hash_key is not None and self.range_key_attr:
        _partition.table, _partition.hash_key = self, hash_key
        _partition.range_comparison = args[0] if args else kwargs.get("range_comparison")
        _partition.range_objs = args[1] if len(args) > 1 else kwargs.get("range_objs")
        try:
            return _query(self, hash_key, *args, **kwargs)
        finally:
            _partition.table, _partition.hash_key = None, None
    return _query(self, hash_key, *args, **kwargs)


Table.all_items = _partition_items
Table.query = _partition_query

# Performance only, same answers: moto writes every response through a serializer driven by
# botocore's service model, which walks each attribute value of each item (about 1 ms per item
# read: a Query of 1,000 small items took over a second). The operations that return items
# answer in DynamoDB's JSON protocol, whose body is the result as plain JSON, so they are
# written directly. Binary values are base64, as the serializer writes them, and stream
# records' creation times are epoch seconds cut to milliseconds, as it writes them (checked
# field by field against the serializer for items of every attribute type).
_ITEM_READS = {
    ("dynamodb", "Query"),
    ("dynamodb", "Scan"),
    ("dynamodb", "GetItem"),
    ("dynamodb", "BatchGetItem"),
    ("dynamodbstreams", "GetRecords"),
}
_execute_result = _responses.ActionResult.execute_result


def _plain(value):
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000) / 1000
    if isinstance(value, (set, frozenset)):
        return list(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _fast_execute_result(self, context):
    operation = (context.service_model.service_name, context.operation_model.name)
    if operation in _ITEM_READS and isinstance(self.result, dict):
        try:
            body = json.dumps(self.result, default=_plain)
        except TypeError:
            return _execute_result(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
    return _execute_result(self, context)


_responses.ActionResult.execute_result = _fast_execute_result

main(sys.argv[1:])
