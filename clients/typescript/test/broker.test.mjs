// The client against a real broker and a LaneQueue consumer fleet.
//
// Needs, on the vhost of LANEQUEUE_RABBITMQ_URL, ONE running LaneQueue consumer (so that a second copy of an id lands on
// the consumer that ran the first) with the built-in handlers (echo, sleep, fail) and the lane `execute` in External
// mode; in LANEQUEUE_EMPTY_VHOST_URL a vhost where no consumer ever ran (no lane queues); and the management API at
// LANEQUEUE_RABBITMQ_MANAGEMENT_URL (to close a connection from the broker's side). The .NET test
// tests/LaneQueue.Tests/Integration/TypeScriptClientTests.cs sets all of this up.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { ConnectionClosedError, InvalidTaskError, LaneQueue, ResultTimeoutError, TaskRejectedError, newTaskId } from '@lanequeue/client';

const url = process.env.LANEQUEUE_RABBITMQ_URL;
const emptyVhostUrl = process.env.LANEQUEUE_EMPTY_VHOST_URL;
const WAIT = 30_000;

/** @type {LaneQueue} */
let client;

before(async () => {
  assert.ok(url, 'set LANEQUEUE_RABBITMQ_URL to the vhost of a running LaneQueue consumer (see the top of this file)');
  client = await LaneQueue.connect(url);
});

after(async () => {
  await client?.close();
});

/** Resolves with the first event that `match` accepts, from a subscription made before the caller acts. */
async function firstEvent(pattern, match, timeoutMs = WAIT) {
  const events = await client.watchEvents(pattern);
  const found = (async () => {
    for await (const event of events) if (match(event)) return event;
    throw new Error('the event stream ended');
  })();
  const timer = new Promise((_, reject) => setTimeout(() => reject(new Error(`no matching ${pattern} event within ${timeoutMs} ms`)), timeoutMs).unref());
  return { found: Promise.race([found, timer]).finally(() => events.close()), events };
}

test('submitAndWait returns the completed result of echo, payload and Unicode intact', async () => {
  const id = newTaskId('ts-echo');
  const payload = { text: 'é€😀', n: [1, 2.5], nested: { ok: true } };
  const result = await client.submitAndWait({ id, lane: 'query', payload }, WAIT);
  assert.equal(result.taskId, id);
  assert.equal(result.status, 'completed');
  assert.equal(result.success, true);
  assert.equal(result.lane, 'query');
  assert.deepEqual(result.result, payload);
  assert.equal(result.attempts, 1);
  assert.equal(result.error, undefined);
  assert.equal(typeof result.consumer, 'string');
  assert.ok(result.finishedAt && result.startedAt);
});

test('submitTask resolves once stored; watchResult started before it gets the result', async () => {
  const id = newTaskId('ts-submit');
  const watch = await client.watchResult(id);
  try {
    await client.submitTask({ id, lane: 'control', payload: { n: 1 }, commandType: 'echo' });
    const result = await watch.wait(WAIT);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.result, { n: 1 });
    assert.equal(result.lane, 'control');
  } finally {
    await watch.stop();
  }
});

test('the seed example: a background generate task, then an urgent query; the query result arrives first', async () => {
  const background = newTaskId('ts-generate');
  const urgent = newTaskId('ts-query');
  const arrivals = [];
  const backgroundWatch = await client.watchResult(background);
  const urgentWatch = await client.watchResult(urgent);
  try {
    const started = await firstEvent('command.started.generate', (e) => e.taskId === background);
    await client.submitTask({ id: background, lane: 'generate', payload: { ms: 3000 }, commandType: 'sleep' });
    await started.found; // the background task holds its slot now
    await client.submitTask({ id: urgent, lane: 'query', payload: { q: 'status' } });
    const [b, u] = await Promise.all([
      backgroundWatch.wait(WAIT).then((r) => (arrivals.push(background), r)),
      urgentWatch.wait(WAIT).then((r) => (arrivals.push(urgent), r)),
    ]);
    assert.deepEqual(arrivals, [urgent, background], 'the urgent query must end before the background generate task');
    assert.equal(u.status, 'completed');
    assert.equal(b.status, 'completed');
    assert.deepEqual(b.result, { slept_ms: 3000 });
    assert.ok(Date.parse(u.finishedAt) < Date.parse(b.finishedAt));
  } finally {
    await backgroundWatch.stop();
    await urgentWatch.stop();
  }
});

test('failed: a handler that throws ends failed with its error after its retries', async () => {
  const result = await client.submitAndWait({ id: newTaskId('ts-fail'), lane: 'query', payload: { message: 'boom from ts' }, commandType: 'fail' }, WAIT);
  assert.equal(result.status, 'failed');
  assert.equal(result.success, false);
  assert.equal(result.error, 'boom from ts');
  assert.ok(result.attempts >= 1);
  assert.deepEqual(result.result, {});
});

test('failed with the field named: a payload the handler can never take, and a task that breaks the contract sent raw', async () => {
  const sleepy = await client.submitAndWait({ id: newTaskId('ts-bad-ms'), lane: 'query', payload: { ms: 'abc' }, commandType: 'sleep' }, WAIT);
  assert.equal(sleepy.status, 'failed');
  assert.match(sleepy.error, /^payload: ms must be a whole number/);
  assert.equal(sleepy.attempts, 1);

  // The client refuses such a task; a raw AMQP publish shows what the consumer answers to one (exactly one result).
  const id = newTaskId('ts-raw');
  const watch = await client.watchResult(id);
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createConfirmChannel();
    channel.publish('lanequeue.tasks', 'query', Buffer.from(JSON.stringify({ id, lane: 'Query', payload: {} })), { persistent: true, contentType: 'application/json' });
    await channel.waitForConfirms();
    const result = await watch.wait(WAIT);
    assert.equal(result.status, 'failed');
    assert.match(result.error, /^lane: 'Query' is not a lane/);
  } finally {
    await connection.close();
    await watch.stop();
  }
});

test('timed_out: a run longer than timeout_ms', async () => {
  const result = await client.submitAndWait({ id: newTaskId('ts-slow'), lane: 'control', payload: { ms: 10_000 }, commandType: 'sleep', timeoutMs: 300 }, WAIT);
  assert.equal(result.status, 'timed_out');
  assert.equal(result.success, false);
  assert.match(result.error, /timed out after 300 ms/);
});

test('duplicate: a second copy of an id that completed is not run again', async () => {
  const id = newTaskId('ts-twice');
  const first = await client.submitAndWait({ id, lane: 'query', payload: { copy: 1 } }, WAIT);
  assert.equal(first.status, 'completed');
  const second = await client.submitAndWait({ id, lane: 'query', payload: { copy: 2 } }, WAIT);
  assert.equal(second.status, 'duplicate');
  assert.equal(second.success, false);
  assert.match(second.error, new RegExp(`task id '${id}' is completed`));
});

test('cancelTask cancels a running task: its result is cancelled', async () => {
  const id = newTaskId('ts-cancel');
  const started = await firstEvent('command.started.#', (e) => e.taskId === id);
  const watch = await client.watchResult(id);
  try {
    await client.submitTask({ id, lane: 'query', payload: { ms: 60_000 }, commandType: 'sleep' });
    await started.found;
    await client.cancelTask(id);
    const result = await watch.wait(WAIT);
    assert.equal(result.status, 'cancelled');
    assert.equal(result.error, 'cancelled while running');
  } finally {
    await watch.stop();
  }
});

test('a session: its tasks carry its id, and cancelSession cancels them all', async () => {
  const session = client.session(newTaskId('ts-session'));
  const ids = [newTaskId('ts-s1'), newTaskId('ts-s2')];
  const seen = new Set();
  const events = await client.watchEvents('command.started.query');
  const bothStarted = (async () => {
    for await (const e of events) {
      if (ids.includes(e.taskId)) {
        assert.equal(e.sessionId, session.id);
        seen.add(e.taskId);
        if (seen.size === ids.length) return;
      }
    }
  })();
  const watches = await Promise.all(ids.map((id) => client.watchResult(id)));
  try {
    for (const id of ids) await session.submitTask({ id, lane: 'query', payload: { ms: 60_000 }, commandType: 'sleep' });
    await bothStarted;
    await events.close();
    await session.cancelSession();
    for (const watch of watches) {
      const result = await watch.wait(WAIT);
      assert.equal(result.status, 'cancelled');
      assert.equal(result.sessionId, session.id);
    }
    await assert.rejects(session.submitTask({ id: newTaskId('ts-other'), lane: 'query', payload: {}, sessionId: 'another' }),
      (e) => e instanceof InvalidTaskError && e.field === 'session_id');
  } finally {
    await events.close();
    for (const watch of watches) await watch.stop();
  }
});

test('watchEvents: an async iterator and a callback both see a task go through started and completed', async () => {
  const id = newTaskId('ts-events');
  const kinds = [];
  const callbackSaw = [];
  const iterator = await client.watchEvents('command.#');
  const callback = await client.watchEvents('command.completed.query', (e) => {
    if (e.taskId === id) callbackSaw.push(e.event);
  });
  try {
    await client.submitTask({ id, lane: 'query', payload: { hello: 'events' } });
    for await (const event of iterator) {
      if (event.taskId !== id) continue;
      kinds.push(event.event);
      if (event.event === 'command.started') {
        assert.deepEqual(event.payload, { hello: 'events' });
        assert.equal(event.routingKey, 'command.started.query');
        assert.equal(event.attempt, 1);
      }
      if (event.event === 'command.completed') break;
    }
    assert.deepEqual(kinds, ['command.started', 'command.completed']);
    const deadline = Date.now() + 5000;
    while (callbackSaw.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(callbackSaw, ['command.completed']);
  } finally {
    await iterator.close();
    await callback.close();
  }
});

test('an External-lane task is completed by the client\'s worker', async () => {
  const id = newTaskId('ts-external');
  const watch = await client.watchResult(id);
  try {
    await client.submitTask({ id, lane: 'execute', payload: { job: 'resize' } });
    for await (const work of client.externalTasks('execute')) {
      if (work.id !== id) {
        work.release();
        continue;
      }
      assert.deepEqual(work.payload, { job: 'resize' });
      assert.equal(work.lane, 'execute');
      assert.equal(typeof work.consumer, 'string');
      await work.complete({ by: 'ts worker', job: work.payload.job });
      break;
    }
    const result = await watch.wait(WAIT);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.result, { by: 'ts worker', job: 'resize' });
  } finally {
    await watch.stop();
  }
});

test('an External-lane task the worker fails ends failed with the worker\'s error', async () => {
  const id = newTaskId('ts-external-fail');
  const watch = await client.watchResult(id);
  const worker = client.externalTasks('execute');
  let failures = 0;
  const working = (async () => {
    for await (const work of worker) {
      if (work.id !== id) {
        work.release();
        continue;
      }
      failures++;
      await work.fail('the ts worker cannot do it');
    }
  })();
  try {
    await client.submitTask({ id, lane: 'execute', payload: { job: 'impossible' } });
    const result = await watch.wait(WAIT);
    assert.equal(result.status, 'failed');
    assert.equal(result.error, 'the ts worker cannot do it');
    assert.equal(failures, result.attempts, 'one announcement per attempt, each failed by the worker');
  } finally {
    await worker.close();
    await working;
    await watch.stop();
  }
});

test('an invalid task is refused before publishing, naming the field; nothing reaches the consumers', async () => {
  const id = newTaskId('ts-invalid');
  const watch = await client.watchResult(id);
  try {
    await assert.rejects(client.submitTask({ id, lane: 'Query', payload: {} }), (e) => {
      assert.ok(e instanceof InvalidTaskError);
      assert.equal(e.field, 'lane');
      assert.match(e.message, /^lane: 'Query' is not a lane \(lane names are lower case\)/);
      return true;
    });
    await assert.rejects(client.submitAndWait({ id, lane: 'query', payload: { s: 'x\ud800' } }, WAIT), (e) => e instanceof InvalidTaskError && e.field === 'payload');
    await assert.rejects(client.submitTask({ id, lane: 'query', payload: 'x'.repeat(1024 * 1024) }), (e) => e instanceof InvalidTaskError && e.field === 'payload');
    await assert.rejects(client.submitTask({ id: 'has space', lane: 'query', payload: {} }), (e) => e instanceof InvalidTaskError && e.field === 'id');
    await assert.rejects(client.submitTask({ id, lane: 'query', payload: {}, timeoutMs: 0 }), (e) => e instanceof InvalidTaskError && e.field === 'timeout_ms');
    // Had any of them been published, the consumer would have answered it (failed) by now.
    await assert.rejects(watch.wait(2000), ResultTimeoutError);
  } finally {
    await watch.stop();
  }
});

test('submitAndWait gives up with ResultTimeoutError when no result comes in time', async () => {
  const id = newTaskId('ts-late');
  await assert.rejects(client.submitAndWait({ id, lane: 'generate', payload: { ms: 1500 }, commandType: 'sleep' }, 300), (e) => {
    assert.ok(e instanceof ResultTimeoutError);
    assert.equal(e.taskId, id);
    assert.match(e.message, /may still run/);
    return true;
  });
});

test('an unroutable task (no lane queue bound) is rejected with a clear error', async () => {
  assert.ok(emptyVhostUrl, 'set LANEQUEUE_EMPTY_VHOST_URL to a vhost where no consumer ever ran');
  const empty = await LaneQueue.connect(emptyVhostUrl);
  try {
    await assert.rejects(empty.submitTask({ id: newTaskId('ts-nowhere'), lane: 'query', payload: {} }), (e) => {
      assert.ok(e instanceof TaskRejectedError, String(e));
      assert.equal(e.reason, 'unroutable');
      assert.match(e.message, /was not routed: no queue is bound to lane 'query'/);
      return true;
    });
    // The channel is still usable after a return.
    await assert.rejects(empty.submitTask({ id: newTaskId('ts-nowhere'), lane: 'control', payload: {} }), (e) => e instanceof TaskRejectedError && e.reason === 'unroutable');
  } finally {
    await empty.close();
  }
});

test('a cluster URL whose first host does not answer connects to the next one', async () => {
  const parsed = new URL(url);
  const cluster = `amqp://${parsed.username}:${parsed.password}@127.0.0.1:1,${parsed.hostname}:${parsed.port || 5672}${parsed.pathname}`;
  const other = await LaneQueue.connect(cluster);
  try {
    const result = await other.submitAndWait({ id: newTaskId('ts-cluster'), lane: 'query', payload: { via: 'second host' } }, WAIT);
    assert.equal(result.status, 'completed');
  } finally {
    await other.close();
  }
});

test('many tasks at once: each submitAndWait gets its own result', async () => {
  const tasks = Array.from({ length: 40 }, (_, i) => ({ id: newTaskId(`ts-many-${i}`), lane: i % 2 ? 'query' : 'control', payload: { i } }));
  const results = await Promise.all(tasks.map((task) => client.submitAndWait(task, WAIT)));
  results.forEach((result, i) => {
    assert.equal(result.taskId, tasks[i].id);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.result, { i });
  });
  // The returns of unroutable publishes are matched to their own publish, among confirmed ones.
  if (emptyVhostUrl) {
    const empty = await LaneQueue.connect(emptyVhostUrl);
    try {
      const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => empty.submitTask({ id: newTaskId(`ts-lost-${i}`), lane: 'query', payload: {} })));
      assert.ok(outcomes.every((o) => o.status === 'rejected' && o.reason.reason === 'unroutable'));
    } finally {
      await empty.close();
    }
  }
});

/** Closes the client connection named `name` from the broker's side, through the management API. */
async function closeFromBroker(name) {
  const management = process.env.LANEQUEUE_RABBITMQ_MANAGEMENT_URL;
  assert.ok(management, 'set LANEQUEUE_RABBITMQ_MANAGEMENT_URL (the management API, to close a connection)');
  const api = `${management.replace(/\/$/, '')}/api`;
  const parsed = new URL(url);
  const authorization = 'Basic ' + Buffer.from(`${decodeURIComponent(parsed.username || 'guest')}:${decodeURIComponent(parsed.password || 'guest')}`).toString('base64');
  let connection;
  const deadline = Date.now() + 20_000;
  while (!connection && Date.now() < deadline) {
    const response = await fetch(`${api}/connections?columns=name,client_properties`, { headers: { authorization } });
    assert.equal(response.status, 200);
    connection = (await response.json()).find((c) => c.client_properties?.connection_name === name);
    if (!connection) await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(connection, `the management API never listed connection '${name}'`);
  const closed = await fetch(`${api}/connections/${encodeURIComponent(connection.name)}`, { method: 'DELETE', headers: { authorization, 'x-reason': 'LaneQueue TypeScript client test' } });
  assert.ok(closed.ok, `DELETE connection: ${closed.status}`);
}

test('without recovery, a connection the broker closes fails the waits with ConnectionClosedError, and later calls too', async () => {
  const name = `ts-client-doomed-${process.pid}-${Date.now()}`;
  const doomed = await LaneQueue.connect(url, { clientName: name, recoveryTimeoutMs: 0 });
  const watch = await doomed.watchResult(newTaskId('ts-never'));
  const waiting = watch.wait();
  await closeFromBroker(name);
  await assert.rejects(waiting, (e) => e instanceof ConnectionClosedError && /was lost/.test(e.message));
  await assert.rejects(doomed.submitTask({ id: newTaskId('ts-after'), lane: 'query', payload: {} }), ConnectionClosedError);
  await doomed.close();
});

test('a connection the broker closes is made again: the wait, the event subscription and the worker carry on', async () => {
  const name = `ts-client-healing-${process.pid}-${Date.now()}`;
  const healing = await LaneQueue.connect(url, { clientName: name });
  const id = newTaskId('ts-heal');
  const externalId = newTaskId('ts-heal-external');
  const watch = await healing.watchResult(id);
  const externalWatch = await healing.watchResult(externalId);
  const events = await healing.watchEvents('command.completed.query');
  const worker = healing.externalTasks('execute');
  try {
    await closeFromBroker(name);
    // Submitted while the client reconnects: published (again) once it has.
    await healing.submitTask({ id, lane: 'query', payload: { healed: true } });
    const result = await watch.wait(WAIT);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.result, { healed: true });
    for await (const event of events) if (event.taskId === id) break;
    await healing.submitTask({ id: externalId, lane: 'execute', payload: {} });
    for await (const work of worker) {
      if (work.id !== externalId) {
        work.release();
        continue;
      }
      await work.complete({ after: 'recovery' });
      break;
    }
    assert.deepEqual((await externalWatch.wait(WAIT)).result, { after: 'recovery' });
  } finally {
    await events.close();
    await worker.close();
    await healing.close();
  }
});
