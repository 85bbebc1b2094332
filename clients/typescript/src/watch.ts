import type { LaneQueue } from './client.js';
import { ResultTimeoutError } from './errors.js';
import { finalResult, readTaskHistory } from './history.js';
import type { TaskEvent, TaskResult } from './types.js';

/** Options of {@link LaneQueue.watchTask}. */
export interface WatchTaskOptions {
  /** How far back the history stream is read, in ms (undefined: its whole retention; 0: not at all, the watch starts now). */
  lookBackMs?: number;
}

/** Events that end a task (its result is out). */
const TERMINAL = new Set(['command.completed', 'command.dead_lettered', 'command.cancelled', 'command.duplicate']);

/** Once the result is in, how long to wait for the events published before it (they travel on another channel). */
const AFTER_RESULT_MS = 500;

/** What makes an event the same one seen twice (in the history and live). */
const key = (e: TaskEvent) => `${e.event}\u0000${e.attempt}\u0000${e.at}\u0000${e.consumer ?? ''}`;

/** See {@link LaneQueue.watchTask}; as the .NET `TaskWatch.WatchTaskAsync` (src/Producer/TaskWatch.cs). */
export async function watchTask(client: LaneQueue, taskId: string, onEvent: (event: TaskEvent) => void | Promise<void>, timeoutMs: number,
  options: WatchTaskOptions = {}): Promise<TaskResult> {
  const deadline = Date.now() + timeoutMs;
  const expired = () => new ResultTimeoutError(taskId, `no result for task '${taskId}' within ${timeoutMs / 1000} s; it may still run`);
  // Listen first (events and result), then read the history: whatever happens in between is caught by one or the other.
  const watch = await client.watchResult(taskId);
  const live: TaskEvent[] = [];
  let wake: (() => void) | undefined;
  let result: TaskResult | undefined;
  let failure: unknown;
  void watch.wait().then((r) => { result = r; wake?.(); }, (error: unknown) => { failure = error; wake?.(); });
  /** Resolves on the next event or result, or after `ms`. */
  const nextArrival = (ms: number) => new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, ms));
    wake = () => {
      clearTimeout(timer);
      wake = undefined;
      resolve();
    };
  });
  const seen = new Set<string>();
  /** Hands on an event not seen yet; true when it ends the task. */
  const hand = async (event: TaskEvent) => {
    if (seen.has(key(event))) return false;
    seen.add(key(event));
    await onEvent(event);
    return TERMINAL.has(event.event);
  };
  const events = await client.watchEvents('command.#', (event) => {
    if (event.taskId !== taskId) return;
    live.push(event);
    wake?.();
  }).catch(async (error: unknown) => {
    await watch.stop();
    throw error;
  });
  try {
    if (options.lookBackMs !== 0) {
      const history = await readTaskHistory(await client.ready(), taskId, options.lookBackMs, Math.max(0, deadline - Date.now()))
        .catch((error: unknown) => {
          throw error instanceof ResultTimeoutError ? expired() : error;
        });
      for (const event of history.events) await hand(event);
      const final = finalResult(history);
      if (final) return final;
    }
    let ended = false;
    while (!ended && result === undefined) {
      if (failure !== undefined) throw failure;
      if (live.length > 0) {
        ended = await hand(live.shift()!);
        continue;
      }
      if (Date.now() >= deadline) throw expired();
      await nextArrival(deadline - Date.now());
    }
    while (result === undefined) { // the terminal event came first: its result is on its way
      if (failure !== undefined) throw failure;
      if (Date.now() >= deadline) throw expired();
      await nextArrival(deadline - Date.now());
    }
    // The result came first: give the events published before it a moment (none may come: the result stands for the end).
    const grace = Date.now() + AFTER_RESULT_MS;
    while (!ended) {
      if (live.length > 0) ended = await hand(live.shift()!); // a backlog is handed on whole, whatever the time
      else if (Date.now() < grace) await nextArrival(grace - Date.now());
      else break;
    }
    return result;
  } finally {
    await events.close();
    await watch.stop();
  }
}
