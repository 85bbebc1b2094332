#!/usr/bin/env python3
"""Submit one LaneQueue task from Python with pika, wait for its result and print it.

    LANEQUEUE_RABBITMQ_URL=amqp://guest:guest@localhost:5672/lanequeue \
        python3 examples/python/submit_task.py --lane query --payload '{"q": "status"}'

Needs pika (Debian: apt-get install python3-pika, for /usr/bin/python3; elsewhere: pip install pika).
The wire contract is docs/wire-contract.md.

Exit codes, as the C# `submit` command: 0 the task succeeded (its result is printed), 2 bad arguments,
3 broker unreachable or the task not routed to any lane queue, 4 no result in time, 5 the task failed.
"""
import argparse
import json
import os
import sys
import time
import uuid

import pika
from pika.exceptions import AMQPError, NackError, UnroutableError

TASKS_EXCHANGE = "lanequeue.tasks"      # direct; routing key = lane
RESULTS_EXCHANGE = "lanequeue.results"  # topic; routing key = task id
LANES = ("control", "query", "execute", "generate")
# Message priority for the priority-queue topology (higher is served first); ignored by lane queues.
PRIORITY = {"control": 3, "query": 2, "execute": 1, "generate": 0}


def main():
    parser = argparse.ArgumentParser(description="Submit a LaneQueue task and wait for its result.")
    parser.add_argument("--lane", required=True, choices=LANES)
    parser.add_argument("--id", help="task id (default: py-<random>)")
    parser.add_argument("--payload", default="{}", help="JSON payload (default: {})")
    parser.add_argument("--command-type", help="handler to run (default: the consumer's default, echo)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the result (default: 30)")
    parser.add_argument("--delay-ms", type=int, help="delayed task: start no earlier than this many ms after the submit (wire field delay_ms)")
    parser.add_argument("--dedup-key", help="de-duplication key: of the tasks with it, the first runs, the others are answered duplicate")
    parser.add_argument("--dedup-window-ms", type=int, help="how long --dedup-key holds (default 60000)")
    parser.add_argument("--dedup-mode", choices=["once", "debounce"],
                        help="once (default: the first task with the key runs) or debounce (the last one seen runs)")
    args = parser.parse_args()  # exits 2 on bad arguments
    try:
        payload = json.loads(args.payload)
    except ValueError as error:
        print(f"--payload is not JSON: {error}", file=sys.stderr)
        return 2

    task_id = args.id or f"py-{uuid.uuid4().hex[:12]}"
    task = {"id": task_id, "lane": args.lane, "payload": payload}
    if args.command_type:
        task["command_type"] = args.command_type
    if args.delay_ms is not None:
        task["delay_ms"] = args.delay_ms  # the consumer that reads it early parks it in the broker's delay tree
    if args.dedup_key:
        task["dedup_key"] = args.dedup_key
    if args.dedup_window_ms is not None:
        task["dedup_window_ms"] = args.dedup_window_ms
    if args.dedup_mode:
        task["dedup_mode"] = args.dedup_mode

    url = os.environ.get("LANEQUEUE_RABBITMQ_URL") or "amqp://guest:guest@localhost:5672/lanequeue"
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except AMQPError as error:
        print(f"cannot reach RabbitMQ ({error!r}); set LANEQUEUE_RABBITMQ_URL", file=sys.stderr)
        return 3
    try:
        channel = connection.channel()
        # The same declarations as every LaneQueue producer and consumer (idempotent).
        channel.exchange_declare(TASKS_EXCHANGE, exchange_type="direct", durable=True)
        channel.exchange_declare(RESULTS_EXCHANGE, exchange_type="topic", durable=True)

        # 1. Listen for the result before submitting, so it cannot be missed.
        reply_queue = channel.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
        channel.queue_bind(reply_queue, RESULTS_EXCHANGE, routing_key=task_id)

        # 2. Submit: persistent JSON with publisher confirms and mandatory routing, so "sent" means stored in a lane queue.
        channel.confirm_delivery()
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, priority=PRIORITY[args.lane], message_id=task_id)
        try:
            channel.basic_publish(TASKS_EXCHANGE, args.lane, json.dumps(task).encode("utf-8"), properties, mandatory=True)
        except UnroutableError:
            print(f"task {task_id} was not routed: no queue is bound to lane '{args.lane}' "
                  "(start a consumer, it declares the lane queues, or check the vhost in the URL)", file=sys.stderr)
            return 3
        except NackError:
            print(f"the broker refused task {task_id}; it was not stored", file=sys.stderr)
            return 3

        # 3. Wait for the result: the consumer publishes it with the task id as routing key.
        deadline = time.monotonic() + args.timeout
        for method, _, body in channel.consume(reply_queue, auto_ack=True, inactivity_timeout=0.25):
            if method is None:
                if time.monotonic() >= deadline:
                    break
                continue
            result = json.loads(body)
            print(json.dumps(result))
            return 0 if result.get("success") is True else 5
        print(f"no result for task {task_id} within {args.timeout:g} s; it is stored in lane '{args.lane}' and may still run",
              file=sys.stderr)
        return 4
    except AMQPError as error:
        print(f"RabbitMQ error: {error!r}", file=sys.stderr)
        return 3
    finally:
        if connection.is_open:
            connection.close()


if __name__ == "__main__":
    sys.exit(main())
