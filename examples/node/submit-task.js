#!/usr/bin/env node
// Submit one LaneQueue task from Node.js with amqplib, wait for its result and print it.
//
//   cd examples/node && npm ci
//   LANEQUEUE_RABBITMQ_URL=amqp://guest:guest@localhost:5672/lanequeue \
//     node submit-task.js --lane query --payload '{"q": "status"}'
//
// The wire contract is docs/wire-contract.md.
// Exit codes, as the C# `submit` command: 0 the task succeeded (its result is printed), 2 bad arguments,
// 3 broker unreachable or the task not routed to any lane queue, 4 no result in time, 5 the task failed.
'use strict';

const crypto = require('node:crypto');
const { parseArgs } = require('node:util');
const amqp = require('amqplib');

const TASKS_EXCHANGE = 'lanequeue.tasks'; // direct; routing key = lane
const RESULTS_EXCHANGE = 'lanequeue.results'; // topic; routing key = task id
// Message priority for the priority-queue topology (higher is served first); ignored by lane queues.
const PRIORITY = { control: 3, query: 2, execute: 1, generate: 0 };

function parse() {
  const { values } = parseArgs({
    options: {
      lane: { type: 'string' },
      id: { type: 'string' },
      payload: { type: 'string', default: '{}' },
      'command-type': { type: 'string' },
      timeout: { type: 'string', default: '30' },
      'delay-ms': { type: 'string' }, // delayed task: start no earlier than this many ms after the submit
      'dedup-key': { type: 'string' }, // of the tasks with this key, the first runs, the others are answered duplicate
      'dedup-window-ms': { type: 'string' }, // how long the key holds (default 60000)
      'dedup-mode': { type: 'string' }, // once (default: the first runs) or debounce (the last one seen runs)
    },
  });
  if (!(values.lane in PRIORITY)) throw new Error(`--lane must be one of ${Object.keys(PRIORITY).join(', ')}`);
  const timeout = Number(values.timeout);
  if (!(timeout > 0)) throw new Error('--timeout must be a positive number of seconds');
  let payload;
  try {
    payload = JSON.parse(values.payload);
  } catch (error) {
    throw new Error(`--payload is not JSON: ${error.message}`);
  }
  const id = values.id ?? `node-${crypto.randomBytes(6).toString('hex')}`;
  const task = { id, lane: values.lane, payload };
  if (values['command-type']) task.command_type = values['command-type'];
  for (const [option, field] of [['delay-ms', 'delay_ms'], ['dedup-window-ms', 'dedup_window_ms']]) {
    if (values[option] === undefined) continue;
    if (!/^[0-9]+$/.test(values[option])) throw new Error(`--${option} must be a whole number of milliseconds`);
    task[field] = Number(values[option]);
  }
  if (values['dedup-key']) task.dedup_key = values['dedup-key'];
  if (values['dedup-mode']) task.dedup_mode = values['dedup-mode']; // the consumer checks it (once or debounce, with a key)
  return { task, timeoutMs: timeout * 1000 };
}

async function main() {
  let task, timeoutMs;
  try {
    ({ task, timeoutMs } = parse());
  } catch (error) {
    console.error(error.message);
    return 2;
  }

  const url = process.env.LANEQUEUE_RABBITMQ_URL || 'amqp://guest:guest@localhost:5672/lanequeue';
  let connection;
  try {
    connection = await amqp.connect(url);
  } catch (error) {
    console.error(`cannot reach RabbitMQ (${error.message}); set LANEQUEUE_RABBITMQ_URL`);
    return 3;
  }
  try {
    const channel = await connection.createConfirmChannel();
    // The same declarations as every LaneQueue producer and consumer (idempotent).
    await channel.assertExchange(TASKS_EXCHANGE, 'direct', { durable: true });
    await channel.assertExchange(RESULTS_EXCHANGE, 'topic', { durable: true });

    // 1. Listen for the result before submitting, so it cannot be missed.
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, RESULTS_EXCHANGE, task.id);
    const result = new Promise((resolve) => {
      channel.consume(queue, (message) => message && resolve(JSON.parse(message.content.toString('utf8'))), { noAck: true });
    });

    // 2. Submit: persistent JSON with publisher confirms and mandatory routing, so "sent" means stored in a lane queue.
    //    An unroutable message comes back (basic.return) before its confirm.
    let returned = false;
    channel.on('return', () => {
      returned = true;
    });
    const body = Buffer.from(JSON.stringify(task), 'utf8');
    const options = { persistent: true, contentType: 'application/json', priority: PRIORITY[task.lane], messageId: task.id, mandatory: true };
    await new Promise((resolve, reject) => {
      channel.publish(TASKS_EXCHANGE, task.lane, body, options, (error) => (error ? reject(new Error('the broker refused the task (nack)')) : resolve()));
    });
    if (returned) {
      console.error(`task ${task.id} was not routed: no queue is bound to lane '${task.lane}' ` +
        '(start a consumer, it declares the lane queues, or check the vhost in the URL)');
      return 3;
    }

    // 3. Wait for the result: the consumer publishes it with the task id as routing key.
    let timer;
    const expired = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const outcome = await Promise.race([result, expired]);
    clearTimeout(timer);
    if (outcome === null) {
      console.error(`no result for task ${task.id} within ${timeoutMs / 1000} s; it is stored in lane '${task.lane}' and may still run`);
      return 4;
    }
    console.log(JSON.stringify(outcome));
    return outcome.success === true ? 0 : 5;
  } catch (error) {
    console.error(`RabbitMQ error: ${error.message}`);
    return 3;
  } finally {
    await connection.close().catch(() => {});
  }
}

main().then((code) => process.exit(code));
