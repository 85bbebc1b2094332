// Following one task (watchTask, command.progress events) and session interrupts, against a real broker and a running
// LaneQueue consumer with the built-in handlers (see the top of broker.test.mjs for what the vhost needs; the .NET test
// tests/LaneQueue.Tests/Integration/TypeScriptClientTests.cs sets it up). Lane `execute` is External there: these tests
// use `query` and `generate`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { LaneQueue, ResultTimeoutError, newTaskId } from '@lanequeue/client';

const url = process.env.LANEQUEUE_RABBITMQ_URL;
const WAIT = 30_000;

/** @type {LaneQueue} */
let client;

before(async () => {
  assert.ok(url, 'set LANEQUEUE_RABBITMQ_URL to the vhost of a running LaneQueue consumer (see broker.test.mjs)');
  client = await LaneQueue.connect(url);
});

after(async () => {
  await client?.close();
});

/** The percents of the command.progress events, in the order they were handed on (each must carry one). */
function percentsOf(events) {
  const reports = events.filter((e) => e.event === 'command.progress');
  for (const report of reports) assert.equal(typeof report.percent, 'number', `a progress event without a percent: ${JSON.stringify(report.raw)}`);
  return reports.map((e) => e.percent);
}

function assertRising(percents) {
  assert.deepEqual(percents, [...new Set(percents)].sort((a, b) => a - b), `progress did not rise in order: ${percents}`);
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a failure saying `what` did not happen within `ms` (so a test never hangs). */
function within(promise, ms, what) {
  let timer;
  const expired = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms); });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

test('watchTask hands on the progress of a 1 s sleep in order, rising to 100, then resolves with its completed result', async () => {
  const id = newTaskId('ts-progress');
  const events = [];
  const watching = client.watchTask(id, (event) => { events.push(event); }, WAIT);
  await delay(200); // the watch subscribes; what it would miss, its history read finds
  await client.submitTask({ id, lane: 'query', commandType: 'sleep', payload: { ms: 1000 } });
  const result = await watching;
  assert.equal(result.taskId, id);
  assert.equal(result.status, 'completed');
  assert.deepEqual(result.result, { slept_ms: 1000 });
  const names = events.map((e) => e.event);
  assert.equal(names[0], 'command.started', names.join(' '));
  assert.equal(names[names.length - 1], 'command.completed', names.join(' '));
  assert.deepEqual([...new Set(names.slice(1, -1))], ['command.progress'], names.join(' '));
  const percents = percentsOf(events);
  assert.ok(percents.length >= 3, `too few progress reports for a 1 s sleep: ${percents}`);
  assertRising(percents);
  assert.ok(percents[percents.length - 1] >= 99, `the last progress report is ${percents[percents.length - 1]}, not (near) 100`);
  assert.equal(events.filter((e) => e.event === 'command.progress').at(-1).progress.message, 'slept 1000 of 1000 ms');
  assert.ok(events.every((e) => e.taskId === id && e.lane === 'query'));
});

test('watchTask of a task that already finished resolves with its result after its history; with lookBackMs 0 it is not seen', async () => {
  const id = newTaskId('ts-finished');
  const done = await client.submitAndWait({ id, lane: 'query', commandType: 'sleep', payload: { ms: 600 } }, WAIT);
  assert.equal(done.status, 'completed');
  const events = [];
  const result = await client.watchTask(id, async (event) => { events.push(event); }, WAIT);
  assert.equal(result.status, 'completed');
  assert.equal(result.finishedAt, done.finishedAt);
  const names = events.map((e) => e.event);
  assert.equal(names[0], 'command.started', names.join(' '));
  assert.equal(names[names.length - 1], 'command.completed', names.join(' '));
  const percents = percentsOf(events);
  assert.ok(percents.length > 0 && percents[percents.length - 1] >= 99, `${percents}`);
  assertRising(percents);
  await assert.rejects(client.watchTask(id, () => {}, 2000, { lookBackMs: 0 }), ResultTimeoutError);
});

test('interruptSession makes the session\'s running preemptible sleep yield, resume from its checkpoint and complete once', async () => {
  const session = client.session(newTaskId('ts-interrupted'));
  const id = newTaskId('ts-preemptible');
  const events = [];
  let slept;
  const sleptEnough = new Promise((resolve) => { slept = resolve; });
  const watching = client.watchTask(id, (event) => {
    events.push(event);
    if (event.event === 'command.progress' && event.percent >= 15) slept(); // 600 ms slept: the checkpoint says how much
  }, WAIT);
  await delay(200);
  await session.submitTask({ id, lane: 'generate', commandType: 'sleep', payload: { ms: 4000 }, preemptible: true });
  await within(sleptEnough, WAIT, 'no progress report of 15 % or more');
  const interruptId = await session.interrupt({ timeoutMs: WAIT });
  assert.match(interruptId, /^lanequeue\.interrupt-/);
  const result = await watching;
  assert.equal(result.status, 'completed');
  const resumedFrom = result.result.resumed_from_ms;
  assert.ok(resumedFrom >= 500 && resumedFrom <= 3999, `not resumed from its checkpoint: ${JSON.stringify(result.result)}`);
  const names = events.map((e) => e.event);
  const count = (name) => names.filter((n) => n === name).length;
  assert.equal(count('command.preempted'), 1, names.join(' '));
  assert.equal(count('command.started'), 2, names.join(' '));
  assert.equal(count('command.completed'), 1, names.join(' '));
  assert.equal(names[names.length - 1], 'command.completed');
  assert.ok(names.indexOf('command.preempted') < names.lastIndexOf('command.started'), names.join(' '));
});

test('interruptSession with cancel cancels the session\'s running task; the interrupt task reports the mode', async () => {
  const sessionId = newTaskId('ts-interrupt-cancel');
  const id = newTaskId('ts-long');
  const started = [];
  const events = await client.watchEvents('command.started.#', (event) => { started.push(event.taskId); });
  const watch = await client.watchResult(id);
  try {
    await client.submitTask({ id, lane: 'generate', commandType: 'sleep', payload: { ms: 20_000 }, preemptible: true, sessionId });
    for (const until = Date.now() + WAIT; !started.includes(id); await delay(50)) assert.ok(Date.now() < until, `${id} did not start`);
    const interruptId = await client.interruptSession(sessionId, { cancel: true });
    const result = await watch.wait(WAIT);
    assert.equal(result.status, 'cancelled');
    const interrupt = await client.watchTask(interruptId, () => {}, WAIT);
    assert.equal(interrupt.status, 'completed');
    assert.deepEqual(interrupt.result, { interrupted: sessionId, mode: 'cancel' });
  } finally {
    await events.close();
    await watch.stop();
  }
});
