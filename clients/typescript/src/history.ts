import { randomUUID } from 'node:crypto';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import { ResultTimeoutError } from './errors.js';
import { toEvent, toResult, type TaskEvent, type TaskResult } from './types.js';

/** The stream that holds every result and (in batches) every event (docs/wire-contract.md §6.3, *Events in the task history*). */
export const HISTORY_STREAM = 'lanequeue.history';
const MARKER_HEADER = 'x-lanequeue-history-marker';
/** A single event whose history copy is stored another way (in a batch, or as its result): not read twice. */
const COPY_HEADER = 'x-lanequeue-history';

/** What the history holds about one task: its events in order and its results (normally one). */
export interface TaskHistory {
  taskId: string;
  events: TaskEvent[];
  results: TaskResult[];
}

/** The result that ended the task: the last that is not `duplicate`, else the last one; undefined while none. */
export function finalResult(history: TaskHistory): TaskResult | undefined {
  return [...history.results].reverse().find((r) => r.status !== 'duplicate') ?? history.results[history.results.length - 1];
}

/** The results and events one stream message holds: itself, or each event of a batch (`{"events": [...]}`). */
function records(message: ConsumeMessage): Record<string, unknown>[] {
  if (message.properties.headers && COPY_HEADER in message.properties.headers) return [];
  let root: unknown;
  try {
    root = JSON.parse(message.content.toString('utf8'));
  } catch {
    return [];
  }
  if (root === null || typeof root !== 'object' || Array.isArray(root)) return [];
  const object = root as Record<string, unknown>;
  if (!('task_id' in object) && Array.isArray(object.events)) {
    return object.events.filter((e): e is Record<string, unknown> => e !== null && typeof e === 'object' && !Array.isArray(e));
  }
  return [object];
}

/**
 * Adds a `command.completed` for each `completed` result without one (consumers do not store that event: the result stands
 * for it), before the first later event that is not a progress report of the same attempt (as the .NET reader).
 */
function withCompletedEvents(history: TaskHistory): void {
  for (const result of history.results) {
    if (result.status !== 'completed'
      || history.events.some((e) => e.event === 'command.completed' && e.attempt === result.attempts && e.consumer === result.consumer)) continue;
    const raw: Record<string, unknown> = {
      event: 'command.completed', task_id: result.taskId, lane: result.lane, attempt: result.attempts, at: result.finishedAt,
    };
    if (result.sessionId !== undefined) raw.session_id = result.sessionId;
    if (result.consumer !== undefined) raw.consumer = result.consumer;
    const finished = Date.parse(result.finishedAt ?? '');
    const at = history.events.findIndex((e) => Date.parse(e.at) > finished && !(e.event === 'command.progress' && e.attempt === result.attempts));
    history.events.splice(at < 0 ? history.events.length : at, 0, toEvent(raw, ''));
  }
}

/**
 * Reads the history stream for `taskId`, from `lookBackMs` ago (undefined: its first message) to its end. The end is a
 * marker this reader appends (default exchange, routing key = the stream), as the .NET `HistoryStream` does.
 * @throws Error the stream is missing or may not be read or written (the message says what to do).
 * @throws ResultTimeoutError the end was not reached within `timeoutMs`.
 */
export async function readTaskHistory(connection: ChannelModel, taskId: string, lookBackMs: number | undefined, timeoutMs: number): Promise<TaskHistory> {
  const history: TaskHistory = { taskId, events: [], results: [] };
  const marker = randomUUID().replace(/-/g, '');
  const channel = await connection.createChannel();
  let closedBy: Error | undefined;
  let timer: NodeJS.Timeout | undefined;
  channel.on('error', (error: Error) => {
    closedBy = error;
  });
  try {
    const ended = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new ResultTimeoutError(taskId, `the history stream '${HISTORY_STREAM}' was not read to its end within ${timeoutMs / 1000} s`)), timeoutMs);
      channel.on('close', () => reject(refusal(closedBy)));
      void (async () => {
        await channel.prefetch(1000); // a stream consumer needs a prefetch and acks
        await channel.checkQueue(HISTORY_STREAM);
        let done = false;
        const offset = lookBackMs === undefined ? 'first' : { '!': 'timestamp', value: Math.max(0, Math.floor((Date.now() - lookBackMs) / 1000)) };
        await channel.consume(HISTORY_STREAM, (message) => {
          if (!message || done) return;
          const header = message.properties.headers?.[MARKER_HEADER];
          const isMarker = (Buffer.isBuffer(header) ? header.toString('utf8') : header) === marker;
          if (!isMarker && message.content.length > 0) {
            for (const record of records(message)) {
              if (record.task_id !== taskId) continue;
              if ('event' in record) history.events.push(toEvent(record, ''));
              else if ('status' in record) history.results.push(toResult(record));
            }
          }
          // Acked before the end is signalled: nothing may follow the channel's close.
          channel.ack(message);
          if (isMarker) {
            done = true;
            resolve();
          }
        }, { noAck: false, arguments: { 'x-stream-offset': offset } });
        channel.publish('', HISTORY_STREAM, Buffer.alloc(0), { headers: { [MARKER_HEADER]: marker } });
      })().catch((error: unknown) => reject(refusal(error as Error)));
    });
    await ended;
  } finally {
    clearTimeout(timer);
    await channel.close().catch(() => undefined);
  }
  withCompletedEvents(history);
  return history;
}

function refusal(error: Error | undefined): Error {
  const text = error?.message ?? 'the channel closed';
  if (/404|NOT_FOUND/.test(text)) {
    return new Error(`the history stream '${HISTORY_STREAM}' does not exist on this vhost: start a consumer of LaneQueue 1.1 or later (it declares it) (${text})`);
  }
  if (/403|ACCESS_REFUSED/.test(text)) {
    return new Error(`this user may not read the history stream '${HISTORY_STREAM}' or append its end marker to it: grant read and write on it, or watch without the history (lookBackMs: 0) (${text})`);
  }
  return new Error(`reading the history stream '${HISTORY_STREAM}' failed: ${text}`);
}
