// The package loads both ways: require() gets the CommonJS build, import gets the ES module build, and both ship types.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { existsSync } = require('node:fs');
const path = require('node:path');

test('require() loads the CommonJS build with the whole API', () => {
  const client = require('@lanequeue/client');
  const resolved = require.resolve('@lanequeue/client');
  assert.match(resolved, /dist[\\/]cjs[\\/]index\.js$/);
  for (const name of ['LaneQueue', 'Session', 'ExternalWork', 'InvalidTaskError', 'TaskRejectedError', 'ResultTimeoutError', 'parseTask', 'validateTask', 'parseBrokerUrl', 'newTaskId']) {
    assert.ok(client[name], `${name} missing from the CommonJS build`);
  }
  assert.equal(typeof client.LaneQueue.connect, 'function');
  assert.throws(() => client.validateTask({ id: 'a b', lane: 'query', payload: {} }), (e) => e instanceof client.InvalidTaskError && e.field === 'id');
});

test('import loads the ES module build, and both builds ship .d.ts files', async () => {
  const esm = await import('@lanequeue/client');
  assert.equal(typeof esm.LaneQueue.connect, 'function');
  assert.equal(typeof esm.parseTask, 'function');
  assert.notEqual(esm.LaneQueue, require('@lanequeue/client').LaneQueue, 'import must not load the CommonJS build');
  const root = path.dirname(require.resolve('@lanequeue/client/package.json'));
  const manifest = require('@lanequeue/client/package.json');
  const entry = manifest.exports['.'];
  for (const file of [entry.import.types, entry.import.default, entry.require.types, entry.require.default]) {
    assert.ok(existsSync(path.join(root, file)), `${file} is not in the package`);
  }
  // LaneQueue's version (Directory.Build.props), passed by TypeScriptClientTests; any version when run by hand.
  if (process.env.LANEQUEUE_VERSION) assert.equal(manifest.version, process.env.LANEQUEUE_VERSION, 'the package carries LaneQueue\'s version');
});

test('the CommonJS build talks to the broker too (amqplib loaded through require)', async (t) => {
  const url = process.env.LANEQUEUE_RABBITMQ_URL;
  if (!url) {
    t.skip('LANEQUEUE_RABBITMQ_URL is not set (the broker suite sets it)');
    return;
  }
  const { LaneQueue, newTaskId } = require('@lanequeue/client');
  const client = await LaneQueue.connect(url);
  try {
    const result = await client.submitAndWait({ id: newTaskId('cjs'), lane: 'query', payload: { from: 'require' } }, 30_000);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.result, { from: 'require' });
  } finally {
    await client.close();
  }
});
