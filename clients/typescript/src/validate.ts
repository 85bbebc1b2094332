// The wire contract's task rules (docs/wire-contract.md §3), as the reference parser src/Contracts/TaskParser.cs applies
// them: the same checks in the same order, so that a body gets the same verdict and the same field here and there.

import { InvalidTaskError } from './errors.js';
import { member, scanJson, type JsonNode } from './json.js';
import { LANES, type DedupMode, type Lane, type TaskInput, type WireTask } from './types.js';

export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;
export const MAX_ID_LENGTH = 200;
export const MAX_OPTIONAL_STRING_LENGTH = 200;
/** Largest `timeout_ms`: 2^31-1 ms, about 24.8 days. */
export const MAX_TIMEOUT_MS = 2147483647;
/** Longest delay of a delayed task (`delay_ms`, or `not_before` ahead of now): 20 hours. */
export const MAX_DELAY_MS = 20 * 60 * 60 * 1000;
/** Longest `dedup_window_ms`: 24 hours. */
export const MAX_DEDUP_WINDOW_MS = 24 * 60 * 60 * 1000;
/** `dedup_window_ms` of a task with a `dedup_key` and no window: 60 s. */
export const DEFAULT_DEDUP_WINDOW_MS = 60_000;
/** `dedup_mode` values: the first task with a key runs (`once`, the default), or the last one seen (`debounce`). */
export const DEDUP_MODES: ReadonlyArray<DedupMode> = ['once', 'debounce'];
/** A body may be this much larger than the payload limit (room for the other fields or an envelope). */
export const MAX_BODY_OVERHEAD_BYTES = 64 * 1024;

const KNOWN_FIELDS = new Set(['id', 'lane', 'payload', 'command_type', 'session_id', 'timeout_ms', 'created_at', 'preemptible', 'checkpoint', 'delay_ms', 'not_before', 'dedup_key', 'dedup_window_ms', 'dedup_mode']);
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@/-]*$/;
const RFC3339 = /^(19|2[0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)$/;

/** A task read from the wire: the fields as JSON values (`payload` and `checkpoint` as JSON.parse reads them). */
export interface ParsedTask {
  id: string;
  lane: Lane;
  payload: unknown;
  commandType?: string;
  sessionId?: string;
  timeoutMs?: number;
  /** As sent (RFC 3339), when sent. */
  createdAt?: string;
  preemptible: boolean;
  checkpoint?: unknown;
  /** Delayed task: milliseconds from the submit. */
  delayMs?: number;
  /** Delayed task: not before this time, as sent (RFC 3339). */
  notBefore?: string;
  /** De-duplication key: the first task with it runs, others within the window are answered `duplicate`. */
  dedupKey?: string;
  /** How long the key holds, 1 to 86400000 ms; absent: 60000. */
  dedupWindowMs?: number;
  /** `once` (absent: the first runs) or `debounce` (the last one seen runs; the window must cover the delay). */
  dedupMode?: DedupMode;
}

export interface ParseOptions {
  /** The consumers' `LaneQueue:MaxPayloadBytes` (default 1 MiB). */
  maxPayloadBytes?: number;
}

/** Whether `id` is a valid task id: 1-200 characters, ASCII letters, digits and `. _ : @ / -`, starting with a letter or digit. */
export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH && ID_PATTERN.test(id);
}

/** Largest body a consumer with this payload limit reads: the limit plus 64 KiB. */
export function maxBodyBytes(maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES): number {
  return maxPayloadBytes + MAX_BODY_OVERHEAD_BYTES;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * Reads a task from the raw bytes of a message body and checks it against the wire contract, exactly as the consumers'
 * parser does (the plain task or a MassTransit envelope whose `message` holds it).
 * @throws InvalidTaskError naming the field at fault (`body` for the message as a whole).
 */
export function parseTask(raw: Uint8Array, options: ParseOptions = {}): ParsedTask {
  const maxPayload = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (!(raw instanceof Uint8Array)) throw new TypeError('parseTask takes the raw bytes of a body (a Uint8Array or Buffer)');
  if (raw.length > maxBodyBytes(maxPayload)) {
    throw new InvalidTaskError('body', `${raw.length} bytes is over the limit of ${maxBodyBytes(maxPayload)} bytes (payload limit + ${MAX_BODY_OVERHEAD_BYTES / 1024} KiB)`);
  }
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new InvalidTaskError('body', 'not valid UTF-8');
  }
  if (raw.length >= 3 && raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf) {
    throw new InvalidTaskError('body', 'starts with a UTF-8 byte order mark (EF BB BF); send the JSON without one');
  }
  return readTask(text, maxPayload);
}

/** {@link parseTask} on JSON text (a string), for callers that hold text rather than bytes. */
export function parseTaskJson(json: string, options: ParseOptions = {}): ParsedTask {
  return parseTask(encodeText(json), options);
}

function encodeText(json: string): Uint8Array {
  // TextEncoder replaces a lone surrogate with U+FFFD; JSON.stringify has already escaped any in our own output.
  return encoder.encode(json);
}

function readTask(text: string, maxPayload: number): ParsedTask {
  let root = scanJson(text);
  if (root.kind !== 'object') throw new InvalidTaskError('body', `expected a JSON object, got ${describe(root)}`);
  rejectRepeatedKeys(root);
  const types = member(root, 'messageType');
  const message = member(root, 'message');
  if (types?.kind === 'array' && message?.kind === 'object' && member(root, 'lane') === undefined) {
    root = message;
    rejectRepeatedKeys(message);
  }
  return read(root as JsonNode & { kind: 'object' }, text, maxPayload);
}

function rejectRepeatedKeys(node: JsonNode & { kind: 'object' }): void {
  const seen = new Set<string>();
  for (const m of node.members) {
    if (!m.keyIsText) throw new InvalidTaskError('body', 'a key is not valid Unicode text (unpaired surrogate escape)');
    if (seen.has(m.key)) throw new InvalidTaskError(KNOWN_FIELDS.has(m.key) ? m.key : 'body', `the key '${truncate(m.key)}' appears more than once`);
    seen.add(m.key);
  }
}

function read(root: JsonNode & { kind: 'object' }, text: string, maxPayload: number): ParsedTask {
  const id = requiredString(root, 'id');
  const laneName = requiredString(root, 'lane');
  if (!(LANES as readonly string[]).includes(laneName)) {
    const hint = (LANES as readonly string[]).includes(laneName.toLowerCase()) ? ' (lane names are lower case)' : '';
    throw new InvalidTaskError('lane', `'${truncate(laneName)}' is not a lane${hint}; expected one of ${LANES.join(', ')}`);
  }
  const payload = member(root, 'payload');
  if (payload === undefined) throw new InvalidTaskError('payload', 'missing; send {} when the task has no payload');
  const commandType = optionalString(root, 'command_type');
  const sessionId = optionalString(root, 'session_id');
  const timeoutMs = optionalTimeout(root, 'timeout_ms');
  const createdAt = optionalTimestamp(root, 'created_at');
  const preemptible = optionalBool(root, 'preemptible');
  const checkpoint = member(root, 'checkpoint');
  const delayMs = optionalDelay(root, 'delay_ms');
  const notBefore = optionalTimestamp(root, 'not_before');
  const dedupKey = optionalString(root, 'dedup_key');
  const dedupWindowMs = optionalDedupWindow(root, 'dedup_window_ms');
  const dedupMode = optionalString(root, 'dedup_mode');

  // TaskParser.Validate
  if (id.length === 0) throw new InvalidTaskError('id', 'missing or empty');
  if (id.length > MAX_ID_LENGTH) throw new InvalidTaskError('id', `${id.length} characters is over the limit of ${MAX_ID_LENGTH}`);
  if (!ID_PATTERN.test(id)) {
    throw new InvalidTaskError('id', `'${truncate(id)}' may only hold letters, digits and . _ : @ / - and must start with a letter or digit`);
  }
  const payloadText = text.slice(payload.start, payload.end);
  const size = Buffer.byteLength(payloadText, 'utf8');
  if (size > maxPayload) throw new InvalidTaskError('payload', `${size} bytes is over the limit of ${maxPayload} bytes`);
  if (!payload.isText) throw new InvalidTaskError('payload', 'not valid Unicode text: a string or key holds an unpaired surrogate escape such as \\ud800');
  if (checkpoint !== undefined && checkpoint.kind !== 'null' && !checkpoint.isText) {
    throw new InvalidTaskError('checkpoint', 'not valid Unicode text: a string or key holds an unpaired surrogate escape such as \\ud800');
  }
  checkLength('command_type', commandType);
  checkLength('session_id', sessionId);
  checkLength('dedup_key', dedupKey);
  if (dedupKey === '') throw new InvalidTaskError('dedup_key', 'is empty; leave it out for no de-duplication');
  if (dedupWindowMs !== undefined && dedupKey === undefined) {
    throw new InvalidTaskError('dedup_window_ms', 'is given without dedup_key; the window belongs to a key');
  }
  if (dedupMode !== undefined && !(DEDUP_MODES as ReadonlyArray<string>).includes(dedupMode)) {
    throw new InvalidTaskError('dedup_mode', `'${truncate(dedupMode)}' is not a mode; expected "once" (the first runs) or "debounce" (the last runs)`);
  }
  if (dedupMode !== undefined && dedupKey === undefined) {
    throw new InvalidTaskError('dedup_mode', 'is given without dedup_key; the mode belongs to a key');
  }
  if (delayMs !== undefined && notBefore !== undefined) {
    throw new InvalidTaskError('delay_ms', 'and not_before are both given; send one of them (delay_ms: milliseconds from the submit, not_before: a time)');
  }
  if (dedupMode === 'debounce' && delayMs !== undefined && delayMs > (dedupWindowMs ?? DEFAULT_DEDUP_WINDOW_MS)) {
    const window = dedupWindowMs !== undefined ? `${dedupWindowMs} ms` : `absent (${DEFAULT_DEDUP_WINDOW_MS} ms)`;
    throw new InvalidTaskError('dedup_window_ms', `${window} is shorter than delay_ms ${delayMs} ms; in debounce mode the key remembers its latest task for the window, so give dedup_window_ms at least the delay`);
  }
  if (notBefore !== undefined && Date.parse(notBefore) - Date.now() > MAX_DELAY_MS) {
    throw new InvalidTaskError('not_before', `${notBefore} is more than ${MAX_DELAY_MS} ms (20 hours) ahead of now`);
  }

  const task: ParsedTask = { id, lane: laneName as Lane, payload: JSON.parse(payloadText), preemptible };
  if (commandType !== undefined) task.commandType = commandType;
  if (sessionId !== undefined) task.sessionId = sessionId;
  if (timeoutMs !== undefined) task.timeoutMs = timeoutMs;
  if (createdAt !== undefined) task.createdAt = createdAt;
  if (checkpoint !== undefined && checkpoint.kind !== 'null') task.checkpoint = JSON.parse(text.slice(checkpoint.start, checkpoint.end));
  if (delayMs !== undefined) task.delayMs = delayMs;
  if (notBefore !== undefined) task.notBefore = notBefore;
  if (dedupKey !== undefined) task.dedupKey = dedupKey;
  if (dedupWindowMs !== undefined) task.dedupWindowMs = dedupWindowMs;
  if (dedupMode !== undefined) task.dedupMode = dedupMode as DedupMode;
  return task;
}

function describe(node: JsonNode): string {
  switch (node.kind) {
    case 'object': return 'an object';
    case 'array': return 'an array';
    case 'string': return 'a string';
    case 'number': return 'a number';
    case 'true':
    case 'false': return 'a boolean';
    case 'null': return 'null';
  }
}

function text(node: JsonNode & { kind: 'string' }, field: string): string {
  if (!node.isText) throw new InvalidTaskError(field, 'not valid Unicode text (unpaired surrogate escape)');
  return node.value;
}

function requiredString(root: JsonNode & { kind: 'object' }, name: string): string {
  const value = member(root, name);
  if (value === undefined || value.kind === 'null') throw new InvalidTaskError(name, 'missing');
  if (value.kind !== 'string') throw new InvalidTaskError(name, `must be a string, got ${describe(value)}`);
  return text(value, name);
}

function optionalString(root: JsonNode & { kind: 'object' }, name: string): string | undefined {
  const value = member(root, name);
  if (value === undefined || value.kind === 'null') return undefined;
  if (value.kind !== 'string') throw new InvalidTaskError(name, `must be a string, got ${describe(value)}`);
  return text(value, name);
}

function optionalBool(root: JsonNode & { kind: 'object' }, name: string): boolean {
  const value = member(root, name);
  if (value === undefined || value.kind === 'null') return false;
  if (value.kind === 'true') return true;
  if (value.kind === 'false') return false;
  throw new InvalidTaskError(name, `must be true or false, got ${describe(value)}`);
}

/** A whole number of milliseconds in field `name` with its JSON text as sent (1e20 is reported as 1e20), or undefined when absent or null. */
function optionalMilliseconds(root: JsonNode & { kind: 'object' }, name: string): { number: bigint; raw: string } | undefined {
  const value = member(root, name);
  if (value === undefined || value.kind === 'null') return undefined;
  const number = value.kind === 'number' ? wholeNumber(value.raw) : undefined;
  if (number === undefined) {
    throw new InvalidTaskError(name, `must be a whole number of milliseconds, got ${value.kind === 'number' ? truncate(value.raw) : describe(value)}`);
  }
  return { number, raw: truncate((value as { raw: string }).raw) };
}

function optionalTimeout(root: JsonNode & { kind: 'object' }, name: string): number | undefined {
  const ms = optionalMilliseconds(root, name);
  if (ms === undefined) return undefined;
  if (ms.number <= 0n) throw new InvalidTaskError(name, `${ms.raw} must be a positive number of milliseconds`);
  if (ms.number > BigInt(MAX_TIMEOUT_MS)) throw new InvalidTaskError(name, `${ms.raw} is over the limit of ${MAX_TIMEOUT_MS} ms (about 24.8 days)`);
  return Number(ms.number);
}

function optionalDelay(root: JsonNode & { kind: 'object' }, name: string): number | undefined {
  const ms = optionalMilliseconds(root, name);
  if (ms === undefined) return undefined;
  if (ms.number < 0n) throw new InvalidTaskError(name, `${ms.raw} must be 0 or more milliseconds`);
  if (ms.number > BigInt(MAX_DELAY_MS)) throw new InvalidTaskError(name, `${ms.raw} is over the limit of ${MAX_DELAY_MS} ms (20 hours)`);
  return Number(ms.number);
}

function optionalDedupWindow(root: JsonNode & { kind: 'object' }, name: string): number | undefined {
  const ms = optionalMilliseconds(root, name);
  if (ms === undefined) return undefined;
  if (ms.number < 1n || ms.number > BigInt(MAX_DEDUP_WINDOW_MS)) {
    throw new InvalidTaskError(name, `${ms.raw} must be from 1 to ${MAX_DEDUP_WINDOW_MS} ms (24 hours)`);
  }
  return Number(ms.number);
}

function optionalTimestamp(root: JsonNode & { kind: 'object' }, name: string): string | undefined {
  const value = member(root, name);
  if (value === undefined || value.kind === 'null') return undefined;
  if (value.kind === 'string') {
    const at = text(value, name);
    if (isRfc3339(at)) return at;
  }
  throw new InvalidTaskError(name, 'must be an RFC 3339 timestamp with a time zone, such as 2026-01-31T12:00:00Z or 2026-01-31T13:00:00.5+01:00');
}

/**
 * An RFC 3339 timestamp as the contract takes it: the schema's pattern (years 1900-2999, upper-case T and Z, offsets up to
 * ±14:00, no leap second), a real calendar date, at most 16 digits of fraction and at most 42 characters (System.Text.Json's
 * limits for a DateTimeOffset).
 */
export function isRfc3339(value: string): boolean {
  if (value.length > 42 || !RFC3339.test(value)) return false;
  const fraction = /\.([0-9]+)/.exec(value);
  if (fraction && fraction[1]!.length > 16) return false;
  const year = Number(value.slice(0, 4));
  const month = Number(value.slice(5, 7));
  const day = Number(value.slice(8, 10));
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  return day <= days;
}

const DECIMAL_MAX = (1n << 96n) - 1n;

/**
 * A JSON number as TaskParser reads `timeout_ms`: a whole number (5, 5.0 and 5e0 alike) or undefined when it has a
 * fraction. Numbers are read as .NET's decimal reads them (at most 28 decimal places and 96 bits of mantissa, rounded half
 * to even), so `1.00000000000000000000000000001` counts as 1 here as it does there. Outside decimal's range the value is
 * far out of any limit and saturates.
 */
export function wholeNumber(raw: string): bigint | undefined {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(raw);
  if (!match) return undefined;
  const negative = match[1] === '-';
  const intPart = match[2]!;
  const fraction = match[3] ?? '';
  if (match[3] === undefined && match[4] === undefined) {
    const exact = BigInt(raw);
    if (exact >= -(1n << 63n) && exact < 1n << 63n) return exact; // TryGetInt64
  }
  const exponent = match[4] === undefined ? 0 : Number(match[4]);
  let digits = (intPart + fraction).replace(/^0+/, '');
  if (digits.length === 0) return 0n;
  // Where the decimal point sits relative to the significant digits (.NET's NumberBuffer.Scale).
  const leadingZeros = (intPart + fraction).length - digits.length;
  let scale = intPart.length - leadingZeros + exponent;
  digits = digits.replace(/0+$/, '');
  if (!Number.isFinite(scale) || scale > 29) return negative ? -(1n << 63n) : (1n << 63n) - 1n; // beyond decimal: saturates
  let e = scale;
  let mantissa = 0n;
  let i = 0;
  const digitAt = (k: number) => (k < digits.length ? BigInt(digits.charCodeAt(k) - 48) : 0n);
  while ((e > 0 || (i < digits.length && e > -28)) && mantissa * 10n + digitAt(i) <= DECIMAL_MAX) {
    mantissa = mantissa * 10n + digitAt(i);
    e--;
    i++;
  }
  if (i < digits.length && digitAt(i) >= 5n) {
    const tie = digitAt(i) === 5n && /^0*$/.test(digits.slice(i + 1));
    if (!(tie && mantissa % 2n === 0n)) {
      mantissa++;
      if (mantissa > DECIMAL_MAX) {
        mantissa /= 10n;
        e++;
      }
    }
  }
  if (e > 0) return negative ? -(1n << 63n) : (1n << 63n) - 1n; // too large for decimal: saturates
  if (e <= -29) return 0n;
  const unit = 10n ** BigInt(-e);
  if (mantissa % unit !== 0n) return undefined;
  const whole = mantissa / unit;
  return negative ? -whole : whole;
}

function checkLength(field: string, value: string | undefined): void {
  if (value === undefined || value.length <= MAX_OPTIONAL_STRING_LENGTH) return;
  let count = 0;
  for (const _ of value) count++;
  if (count > MAX_OPTIONAL_STRING_LENGTH) throw new InvalidTaskError(field, `${count} characters is over the limit of ${MAX_OPTIONAL_STRING_LENGTH}`);
}

/** At most 40 UTF-16 units, never cutting a surrogate pair in two. */
function truncate(value: string): string {
  if (value.length <= 40) return value;
  const code = value.charCodeAt(39);
  return value.slice(0, code >= 0xd800 && code <= 0xdbff ? 39 : 40) + '…';
}

// ---------------------------------------------------------------------------------------------------------------------
// Tasks built in code

const SPELLINGS: ReadonlyArray<[wire: keyof WireTask, camel: string]> = [
  ['command_type', 'commandType'],
  ['session_id', 'sessionId'],
  ['timeout_ms', 'timeoutMs'],
  ['created_at', 'createdAt'],
  ['delay_ms', 'delayMs'],
  ['not_before', 'notBefore'],
  ['dedup_key', 'dedupKey'],
  ['dedup_window_ms', 'dedupWindowMs'],
  ['dedup_mode', 'dedupMode'],
];

/**
 * Checks a task built in code and returns the JSON text it travels as. Takes the camelCase fields of {@link TaskInput}
 * or the wire's snake_case ones (not both for one field); unknown keys are ignored and not sent, as consumers ignore them.
 * The task is judged as its JSON would be by {@link parseTask}: same checks, same fields.
 * @throws InvalidTaskError naming the field at fault.
 */
export function serializeTask(task: TaskInput, options: ParseOptions & { now?: Date } = {}): { json: string; task: ParsedTask } {
  if (task === null || typeof task !== 'object' || Array.isArray(task)) {
    throw new InvalidTaskError('body', `expected a task object, got ${task === null ? 'null' : Array.isArray(task) ? 'an array' : typeof task}`);
  }
  const input = task as unknown as Record<string, unknown>;
  const value = (wire: string, camel?: string): unknown => {
    if (camel !== undefined && input[wire] !== undefined && input[camel] !== undefined) {
      throw new InvalidTaskError(wire, `given twice, as ${wire} and as ${camel}`);
    }
    return camel !== undefined && input[camel] !== undefined ? input[camel] : input[wire];
  };
  const fields: Array<[string, unknown]> = [
    ['id', input.id],
    ['lane', input.lane],
    ['payload', input.payload],
  ];
  for (const [wire, camel] of SPELLINGS) fields.push([wire, value(wire, camel)]);
  fields.push(['preemptible', input.preemptible ?? false]);
  if (input.checkpoint !== undefined) fields.push(['checkpoint', input.checkpoint]);

  const parts: string[] = [];
  for (const [name, field] of fields) {
    let item = field;
    if (name === 'not_before' && item instanceof Date) {
      if (Number.isNaN(item.getTime())) throw new InvalidTaskError('not_before', 'is an invalid Date');
      item = item.toISOString();
    }
    if (name === 'created_at') {
      if (item instanceof Date) {
        if (Number.isNaN(item.getTime())) throw new InvalidTaskError('created_at', 'is an invalid Date');
        item = item.toISOString();
      } else if (item === undefined) {
        item = (options.now ?? new Date()).toISOString(); // as the .NET producer: the time of the submit
      }
    }
    if (name === 'timeout_ms') {
      if (typeof item === 'bigint') {
        parts.push(`"timeout_ms":${item.toString()}`);
        continue;
      }
      if (typeof item === 'number' && !Number.isFinite(item)) {
        throw new InvalidTaskError('timeout_ms', `${item} is not a number of milliseconds`);
      }
    }
    if (item === undefined) {
      if (name === 'payload') throw new InvalidTaskError('payload', 'missing; send {} when the task has no payload');
      continue;
    }
    parts.push(`${JSON.stringify(name)}:${jsonValue(name, item)}`);
  }
  const json = `{${parts.join(',')}}`;
  const parsed = readTask(json, options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES);
  return { json, task: parsed };
}

/** Checks a task built in code against the wire contract; throws {@link InvalidTaskError} naming the field. */
export function validateTask(task: TaskInput, options: ParseOptions = {}): ParsedTask {
  return serializeTask(task, options).task;
}

function jsonValue(field: string, value: unknown): string {
  if (field === 'payload' || field === 'checkpoint') rejectNonJson(field, value, 0, '');
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new InvalidTaskError('body', `nested deeper than 64 levels (the limit, the task object and its payload included)`);
    }
    throw new InvalidTaskError(field, `cannot be written as JSON (${(error as Error).message})`);
  }
  if (json === undefined) throw new InvalidTaskError(field, `cannot be written as JSON (${typeof value})`);
  return json;
}

/**
 * JSON.stringify writes NaN and Infinity as null and functions in arrays as null: refused instead of changed. (Lone
 * surrogates are left to the scan: JSON.stringify escapes them, and the scan names the field in the parser's order.)
 */
function rejectNonJson(field: string, value: unknown, depth: number, path: string): void {
  if (depth > 70) return; // deeper than the contract allows: the scan of the JSON refuses it
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new InvalidTaskError(field, `${value} at ${field}${path} is not a JSON number`);
  }
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new InvalidTaskError(field, `a ${typeof value} at ${field}${path} is not JSON`);
  }
  if (value === null || typeof value !== 'object') return;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return;
  if (Array.isArray(value)) {
    value.forEach((item, index) => rejectNonJson(field, item, depth + 1, `${path}[${index}]`));
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) rejectNonJson(field, item, depth + 1, `${path}.${key}`);
  }
}
