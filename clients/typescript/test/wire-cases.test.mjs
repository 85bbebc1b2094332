// The shared verdict cases (src/Contracts/wire-cases.json, also run against the .NET parser): parseTask must give each
// body the same verdict, valid or not, and the same field as TaskParser.cs does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InvalidTaskError, parseTask } from '@lanequeue/client';

const file = process.env.LANEQUEUE_WIRE_CASES || fileURLToPath(new URL('../../../src/Contracts/wire-cases.json', import.meta.url));

test('the shared wire cases exist', () => {
  assert.ok(existsSync(file), `no wire cases at ${file}: set LANEQUEUE_WIRE_CASES to src/Contracts/wire-cases.json of the repository`);
});

const doc = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : { cases: [] };

test('there are at least 60 wire cases', () => {
  assert.ok(doc.cases.length >= 60, `only ${doc.cases.length} cases in ${file}`);
});

for (const [index, c] of doc.cases.entries()) {
  test(`wire case ${index}: ${c.name}`, () => {
    const bytes = c.body_base64 !== undefined ? Buffer.from(c.body_base64, 'base64') : Buffer.from(c.body, 'utf8');
    const options = { maxPayloadBytes: doc.max_payload_bytes ?? 1048576 };
    if (c.valid) {
      assert.doesNotThrow(() => parseTask(bytes, options), `expected valid: ${c.name}`);
      return;
    }
    assert.throws(() => parseTask(bytes, options), (error) => {
      assert.ok(error instanceof InvalidTaskError, `expected an InvalidTaskError, got ${error}`);
      assert.equal(error.field, c.field, `case '${c.name}': ${error.message}`);
      assert.ok(error.message.startsWith(`${c.field}: `), error.message);
      return true;
    });
  });
}
