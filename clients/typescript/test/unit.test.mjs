// Validation and URL parsing, without a broker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidTaskError, parseBrokerUrl, parseTask, parseTaskJson, redact, serializeTask, validateTask } from '@lanequeue/client';

function field(fn) {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof InvalidTaskError, `expected an InvalidTaskError, got ${error}`);
    assert.equal(error.message, `${error.field}: ${error.problem}`);
    return error.field;
  }
  return 'valid';
}

const ok = { id: 'job-1', lane: 'query', payload: { q: 'status' } };

test('validateTask names the field at fault', () => {
  assert.equal(field(() => validateTask(ok)), 'valid');
  assert.equal(field(() => validateTask({ lane: 'query', payload: {} })), 'id');
  assert.equal(field(() => validateTask({ ...ok, id: '' })), 'id');
  assert.equal(field(() => validateTask({ ...ok, id: 'a b' })), 'id');
  assert.equal(field(() => validateTask({ ...ok, id: '-starts-with-dash' })), 'id');
  assert.equal(field(() => validateTask({ ...ok, id: 'x'.repeat(201) })), 'id');
  assert.equal(field(() => validateTask({ ...ok, id: 'x'.repeat(200) })), 'valid');
  assert.equal(field(() => validateTask({ ...ok, id: 'a\n' })), 'id');
  assert.equal(field(() => validateTask({ ...ok, id: 42 })), 'id');
  assert.equal(field(() => validateTask({ ...ok, lane: 'Query' })), 'lane');
  assert.equal(field(() => validateTask({ ...ok, lane: 'urgent' })), 'lane');
  assert.equal(field(() => validateTask({ id: 'x', lane: 'query' })), 'payload');
  assert.equal(field(() => validateTask({ ...ok, payload: null })), 'valid');
  assert.equal(field(() => validateTask({ ...ok, payload: { s: 'a\ud800b' } })), 'payload');
  assert.equal(field(() => validateTask({ ...ok, payload: { ['k\udc00']: 1 } })), 'payload');
  assert.equal(field(() => validateTask({ ...ok, payload: { n: NaN } })), 'payload');
  assert.equal(field(() => validateTask({ ...ok, payload: { n: 10n } })), 'payload');
  const cyclic = {};
  cyclic.self = cyclic;
  assert.equal(field(() => validateTask({ ...ok, payload: cyclic })), 'payload');
  assert.equal(field(() => validateTask({ ...ok, payload: 'x'.repeat(1024 * 1024 - 2) })), 'valid');
  assert.equal(field(() => validateTask({ ...ok, payload: 'x'.repeat(1024 * 1024 - 1) })), 'payload');
  assert.equal(field(() => validateTask({ ...ok, payload: 'é'.repeat(600_000) })), 'payload');
  let deep = [];
  for (let i = 0; i < 62; i++) deep = [deep];
  assert.equal(field(() => validateTask({ ...ok, payload: deep })), 'valid'); // 63 levels of payload
  assert.equal(field(() => validateTask({ ...ok, payload: [deep] })), 'body');
  assert.equal(field(() => validateTask({ ...ok, commandType: 'x'.repeat(201) })), 'command_type');
  assert.equal(field(() => validateTask({ ...ok, commandType: '😀'.repeat(200) })), 'valid');
  assert.equal(field(() => validateTask({ ...ok, commandType: 7 })), 'command_type');
  assert.equal(field(() => validateTask({ ...ok, sessionId: '😀'.repeat(201) })), 'session_id');
  assert.equal(field(() => validateTask({ ...ok, session_id: 's\ud800' })), 'session_id');
  assert.equal(field(() => validateTask({ ...ok, timeoutMs: 0 })), 'timeout_ms');
  assert.equal(field(() => validateTask({ ...ok, timeoutMs: 1.5 })), 'timeout_ms');
  assert.equal(field(() => validateTask({ ...ok, timeoutMs: 2147483648 })), 'timeout_ms');
  assert.equal(field(() => validateTask({ ...ok, timeoutMs: 2147483647 })), 'valid');
  assert.equal(field(() => validateTask({ ...ok, timeoutMs: Infinity })), 'timeout_ms');
  assert.equal(field(() => validateTask({ ...ok, timeoutMs: '5000' })), 'timeout_ms');
  assert.equal(field(() => validateTask({ ...ok, timeoutMs: 5000, timeout_ms: 5000 })), 'timeout_ms');
  assert.equal(field(() => validateTask({ ...ok, createdAt: '2026-01-31T12:00:00' })), 'created_at');
  assert.equal(field(() => validateTask({ ...ok, createdAt: new Date('nope') })), 'created_at');
  assert.equal(field(() => validateTask({ ...ok, createdAt: new Date() })), 'valid');
  assert.equal(field(() => validateTask({ ...ok, preemptible: 'yes' })), 'preemptible');
  assert.equal(field(() => validateTask(null)), 'body');
});

test('the task travels as the .NET producer writes it', () => {
  const now = new Date('2026-01-31T12:00:00.250Z');
  const { json } = serializeTask({ id: 'r-1', lane: 'generate', payload: { p: 'é' }, commandType: 'sleep', sessionId: 's-7', timeoutMs: 60000 }, { now });
  assert.equal(json, '{"id":"r-1","lane":"generate","payload":{"p":"é"},"command_type":"sleep","session_id":"s-7","timeout_ms":60000,"created_at":"2026-01-31T12:00:00.250Z","preemptible":false}');
  const { json: minimal } = serializeTask({ ...ok, unknown: 1 }, { now });
  assert.equal(minimal, '{"id":"job-1","lane":"query","payload":{"q":"status"},"created_at":"2026-01-31T12:00:00.250Z","preemptible":false}');
});

test('parseTask reads raw bytes as the consumers do', () => {
  const body = (text) => Buffer.from(text, 'utf8');
  const verdict = (bytes) => field(() => parseTask(bytes));
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{}}')), 'valid');
  assert.equal(verdict(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body('{"id":"a","lane":"query","payload":{}}')])), 'body');
  assert.equal(verdict(Buffer.from([0x7b, 0xc3, 0x28, 0x7d])), 'body'); // not UTF-8
  assert.equal(verdict(Buffer.from([0x7b, 0xed, 0xa0, 0x80, 0x7d])), 'body'); // an encoded surrogate is not UTF-8
  assert.equal(verdict(body('{"id":"a","id":"b","lane":"query","payload":{}}')), 'id');
  assert.equal(verdict(body('{"id":"a","\\u0069d":"b","lane":"query","payload":{}}')), 'id'); // the same key, escaped
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"x":1,"x":2}')), 'body');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{"k":1,"k":2}}')), 'valid'); // only the task object's keys count
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"\\ud800":1}')), 'body');
  assert.equal(verdict(body('{"id":"\\ud800","lane":"query","payload":{}}')), 'id');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"command_type":"\\udc00"}')), 'command_type');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{"\\ud83d\\ude00":"\\ud83d\\ude00"}}')), 'valid');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"checkpoint":["\\ud800"]}')), 'checkpoint');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"unknown":"\\ud800"}')), 'valid'); // unknown keys are not looked at
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},}')), 'body');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":01}')), 'body');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":"tab\there"}')), 'body');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":1e400}')), 'valid');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"timeout_ms":5e3}')), 'valid');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"timeout_ms":5000.0}')), 'valid');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"timeout_ms":0.0}')), 'timeout_ms');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"timeout_ms":-5}')), 'timeout_ms');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"timeout_ms":1e20}')), 'timeout_ms');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"timeout_ms":null}')), 'valid');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"created_at":"2026-02-30T00:00:00Z"}')), 'created_at');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"created_at":"2026-01-31T13:00:00.5+01:00"}')), 'valid');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"created_at":"2026-01-31t13:00:00Z"}')), 'created_at');
  assert.equal(verdict(body('{"id":"a","lane":"query","payload":{},"preemptible":1}')), 'preemptible');
  assert.equal(verdict(body('[1,2,3]')), 'body');
  assert.equal(verdict(body('')), 'body');
  assert.equal(verdict(body(`{"id":"a","lane":"query","payload":"${'x'.repeat(1114112)}"}`)), 'body'); // over the body limit
  const envelope = '{"messageId":"m","messageType":["urn:message:LaneQueue.Contracts:ExternalTask"],"message":{"id":"e-1","lane":"query","payload":{}}}';
  assert.equal(parseTaskJson(envelope).id, 'e-1');
  assert.equal(verdict(body('{"messageType":["x"],"message":{"id":"e","id":"f","lane":"query","payload":{}}}')), 'id');
});

test('broker URLs are read as the .NET producer reads them', () => {
  const plain = parseBrokerUrl('amqp://guest:guest@localhost:5672/lanequeue');
  assert.deepEqual(plain.hosts, [{ host: 'localhost', port: 5672 }]);
  assert.equal(plain.vhost, 'lanequeue');
  assert.equal(plain.username, 'guest');
  assert.equal(parseBrokerUrl('amqp://h').vhost, '/');
  assert.equal(parseBrokerUrl('amqp://h/%2F').vhost, '/');
  const cluster = parseBrokerUrl('amqps://u:p%40ss@node-1,node-2:5673,[::1]:5674/prod?cacertfile=/ca.pem&verify=verify_none&server_name_indication=rabbit');
  assert.equal(cluster.scheme, 'amqps');
  assert.deepEqual(cluster.hosts, [{ host: 'node-1', port: 5671 }, { host: 'node-2', port: 5673 }, { host: '::1', port: 5674 }]);
  assert.equal(cluster.password, 'p@ss');
  assert.equal(cluster.caCertFile, '/ca.pem');
  assert.equal(cluster.verifyPeer, false);
  assert.equal(cluster.serverName, 'rabbit');
  assert.throws(() => parseBrokerUrl('http://h'), /amqp:\/\/ or amqps:\/\//);
  assert.throws(() => parseBrokerUrl('amqp://h?colour=red'), /unknown option 'colour'/);
  assert.throws(() => parseBrokerUrl('amqp://h?certfile=/c.pem'), /certfile and keyfile go together/);
  assert.throws(() => parseBrokerUrl('amqp://h:99999'), /bad host/);
  assert.equal(redact('amqp://user:secret@h/v'), 'amqp://user:***@h/v');
});

test('an amqps URL connects with TLS, sending the server name it names; a host that does not answer fails with each host named', async () => {
  const net = await import('node:net');
  const { LaneQueue, ConnectionClosedError } = await import('@lanequeue/client');
  const hello = new Promise((resolve) => {
    const server = net.createServer((socket) => {
      socket.once('data', (data) => {
        resolve(data);
        socket.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      connecting = LaneQueue.connect(`amqps://u:p@127.0.0.1:${port}/v?server_name_indication=rabbit.example.test&connection_timeout=5000`);
    });
  });
  let connecting;
  const data = await hello;
  assert.equal(data[0], 0x16, 'a TLS handshake record');
  assert.ok(data.includes(Buffer.from('rabbit.example.test')), 'the ClientHello names the server');
  await assert.rejects(connecting, (e) => e instanceof ConnectionClosedError && /127\.0\.0\.1:\d+/.test(e.message) && !e.message.includes(':p@'));
});

test('session shards are FNV-1a of the session id, as the .NET producer computes them', async () => {
  const { sessionShard, routingKeyFor, LaneQueue } = await import('@lanequeue/client');
  // FNV-1a (32-bit) reference values: "" = 0x811c9dc5, "a" = 0xe40c292c, "foobar" = 0xbf9cf968 (SessionShardsTests in .NET).
  assert.equal(sessionShard('', 7), 0x811c9dc5 % 7);
  assert.equal(sessionShard('a', 8), 0xe40c292c % 8);
  assert.equal(sessionShard('foobar', 64), 0xbf9cf968 % 64);
  assert.throws(() => sessionShard('a', 0), RangeError);
  assert.equal(routingKeyFor('generate', 'a', { generate: 8 }), `generate.s${String(0xe40c292c % 8).padStart(2, '0')}`);
  assert.equal(routingKeyFor('generate', undefined, { generate: 8 }), 'generate');
  assert.equal(routingKeyFor('query', 'a', { generate: 8 }), 'query');
  await assert.rejects(LaneQueue.connect('amqp://guest:guest@127.0.0.1:1/', { sessionShards: { generate: 65 } }), /sessionShards/);
});
