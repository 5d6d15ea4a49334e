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
import functools  # noqa: E402
import json  # noqa: E402

from moto.core import responses as _responses  # noqa: E402
import copy  # noqa: E402

from moto.dynamodb.models import table as _table_module  # noqa: E402
from moto.dynamodb.models.table import Table  # noqa: E402
from moto.core import parse as _parse  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: E402
import argparse  # noqa: E402
import logging  # noqa: E402

from moto.moto_server.werkzeug_app import create_backend_app  # noqa: E402
import waitress  # noqa: E402

# Performance only, same answers: moto answers a table Query by listing and sorting every item
# of the table (Table.all_items), so each Query costs O(table) and the local cloud slows down
# as data accumulates (the rollup job Queries a lot). A Query of the base table names one
# partition; while it runs, all_items yields only that partition's items that meet the sort-key
# condition, which moto then filters, sorts and pages exactly as before. The condition is applied
# first because moto sizes every candidate item (for the 1 MB page) before it tests the
# condition, which made a Query of a few items in a partition of thousands (a resolution's
# marks, a shard of hourly buckets) cost a walk over every attribute of every item there.
# Index queries are untouched. String sort keys (every table's here) are compared and sorted as
# Python strings, which order as DynamoDB's UTF-8 bytes do, instead of through DynamoType's
# generic comparison (moto then sorts an already sorted list and checks the condition again).
# And a Query without a projection returns its items without deep-copying them first: the
# handler turns them into plain dicts before the DynamoDB lock below is released, so nothing can
# change them in between; a deep copy of a thousand items was a fifth of a Query's time.
_partition = threading.local()
_all_items = Table.all_items
_query = Table.query

_STRING_RANGE = {
    "EQ": lambda v, a: v == a,
    "=": lambda v, a: v == a,
    "LT": lambda v, a: v < a,
    "<": lambda v, a: v < a,
    "LE": lambda v, a: v <= a,
    "<=": lambda v, a: v <= a,
    "GT": lambda v, a: v > a,
    ">": lambda v, a: v > a,
    "GE": lambda v, a: v >= a,
    ">=": lambda v, a: v >= a,
    "BETWEEN": lambda v, a, b: a <= v <= b,
    "BEGINS_WITH": lambda v, a: v.startswith(a),
}


def _string_range(items, comparison, objs):
    """The items whose string sort key meets the condition, sorted; None if a key or operand
    is not a string or the condition is not one of these."""
    test = _STRING_RANGE.get(comparison)
    if test is None or not all(getattr(o, "type", None) == "S" for o in objs):
        return None
    operands = [o.value for o in objs]
    out = []
    for item in items:
        key = item.range_key
        if key is None:
            continue
        if key.type != "S":
            return None
        if test(key.value, *operands):
            out.append(item)
    out.sort(key=lambda i: i.range_key.value)
    return out


def _partition_items(self):
    hash_key = getattr(_partition, "hash_key", None)
    if hash_key is not None and getattr(_partition, "table", None) is self:
        if hash_key not in self.items:
            return []
        items = self.items[hash_key].values()
        comparison, objs = _partition.range_comparison, _partition.range_objs
        if comparison:
            fast = _string_range(items, comparison, objs)
            if fast is not None:
                return fast
            return [i for i in items if i.range_key and i.range_key.compare(comparison, objs)]
        return list(items)
    return _all_items(self)


class _QueryCopy:
    """`copy` as moto's table module sees it: no deep copy of a plain Query's results."""

    @staticmethod
    def deepcopy(value, memo=None):
        if getattr(_partition, "no_copy", False) and isinstance(value, list):
            return list(value)
        return copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


_table_module.copy = _QueryCopy()


def _partition_query(self, hash_key, *args, **kwargs):
    # range_comparison, range_objs and index_name are query's 2nd, 3rd and 8th parameters;
    # moto's backend passes them positionally.
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name is None and hash_key is not None and self.range_key_attr:
        _partition.table, _partition.hash_key = self, hash_key
        _partition.range_comparison = args[0] if args else kwargs.get("range_comparison")
        _partition.range_objs = args[1] if len(args) > 1 else kwargs.get("range_objs")
        projection = args[5] if len(args) > 5 else kwargs.get("projection_expressions")
        _partition.no_copy = not projection
        try:
            return _query(self, hash_key, *args, **kwargs)
        finally:
            _partition.table, _partition.hash_key = None, None
            _partition.no_copy = False
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

# Performance only, same answers: every request pays a fixed toll before moto's backend sees it,
# and under a burst of small writes (a new series: a registry claim and a bucket each) that toll
# was most of the emulator's one core, which the quiet tenants' requests queue behind.
# 1. The backend for a host: moto matches the host against every service's URL patterns on
#    each request (they all miss for 127.0.0.1 and it then infers the service from headers).
#    The answer depends on the host alone, so it is kept.
_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_backends: dict = {}


def _cached_backend_for_host(self, host):
    if host not in _backends:
        _backends[host] = _backend_for_host(self, host)
    return _backends[host]


DomainDispatcherApplication.get_backend_for_host = _cached_backend_for_host


# 2. DynamoDB's request body is JSON whose only non-JSON type is a binary attribute value
#    (base64 text, which the model-driven parser turns into bytes while walking every member of
#    every item against botocore's model). The body is read as JSON and only binary values are
#    decoded: {"B": str} and {"BS": [str]} are attribute values wherever they appear, since a
#    map attribute's values are themselves attribute values (dicts), never bare strings.
def _blobs(node):
    if isinstance(node, dict):
        if len(node) == 1:
            if isinstance(node.get("B"), str):
                return {"B": base64.b64decode(node["B"])}
            bs = node.get("BS")
            if isinstance(bs, list) and all(isinstance(b, str) for b in bs):
                return {"BS": [base64.b64decode(b) for b in bs]}
        return {k: _blobs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_blobs(v) for v in node]
    return node


_parse_json_body = _parse.JSONParser._parse_json_body


def _fast_parse_json_body(self, raw_body, shape):
    if self.operation_model.service_model.service_name == "dynamodb":
        parsed = self._parse_body_as_json(raw_body)
        if isinstance(parsed, dict) and "message" not in parsed:
            return _blobs(parsed)
    return _parse_json_body(self, raw_body, shape)


_parse.JSONParser._parse_json_body = _fast_parse_json_body

# 3. The names of a response class's methods, which moto lists with inspect on every request to
#    find the action's handler; a class's methods do not change while the server runs.
_method_names = _responses.method_names_from_class
_responses.method_names_from_class = functools.lru_cache(maxsize=None)(_method_names)

# Fidelity, not speed: DynamoDB applies each write to an item atomically (an UpdateItem's ADD
# never loses a concurrent one; of two conditional puts of one key exactly one succeeds), but
# moto's backend reads an item, computes and stores it back without a lock, while the server
# answers requests on many threads. Two concurrent ADDs to a new item then both start from
# nothing and the second overwrites the first: rollup marks of a minute were lost that way and
# the minute was sealed without the shards they named. One lock around each DynamoDB and
# Streams action makes every write atomic (and every read see whole writes); the requests are
# still parsed and answered outside it, and the backend's own work is CPU under one interpreter
# lock anyway.
from moto.dynamodb.responses import DynamoHandler  # noqa: E402
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler  # noqa: E402

_dynamodb_lock = threading.Lock()


def _atomic(call_action):
    @functools.wraps(call_action)
    def wrapped(self):
        with _dynamodb_lock:
            return call_action(self)

    return wrapped


DynamoHandler.call_action = _atomic(DynamoHandler.call_action)
DynamoDBStreamsHandler.call_action = _atomic(DynamoDBStreamsHandler.call_action)

# Performance only, same answers: moto's own server (werkzeug's development server) closes the
# connection after every response ("Connection: close"), so each request paid a TCP handshake,
# a new thread and a 10 ms drain of the socket; under a burst the local cloud left thousands of
# sockets in TIME_WAIT and most of the emulator's core went to that. waitress serves the same
# WSGI application with HTTP/1.1 keep-alive and a fixed pool of worker threads.
def _serve(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    # "Task queue depth" warnings under a burst are expected: the queue is the point.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    waitress.serve(
        DomainDispatcherApplication(create_backend_app),
        host=args.host,
        port=args.port,
        threads=8,
        connection_limit=2000,
        asyncore_use_poll=True,
        ident="moto",
        _quiet=True,
    )


_serve(sys.argv[1:])
