/** The four lanes, highest priority first. */
export const LANES = ['control', 'query', 'execute', 'generate'] as const;
export type Lane = (typeof LANES)[number];

/** RabbitMQ message priority of each lane (the priority-queue topology serves higher numbers first). */
export const LANE_PRIORITY: Readonly<Record<Lane, number>> = { control: 3, query: 2, execute: 1, generate: 0 };

/** Every status a result can have (docs/wire-contract.md §6.2). */
export const TASK_STATUSES = ['completed', 'failed', 'timed_out', 'cancelled', 'duplicate'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Broker names (as src/Contracts/BrokerNames.cs). */
export const BROKER_NAMES = {
  tasksExchange: 'lanequeue.tasks',
  resultsExchange: 'lanequeue.results',
  eventsExchange: 'lanequeue.events',
  fleetExchange: 'lanequeue.fleet',
  externalExchange: 'lanequeue.external',
  externalCompletionsExchange: 'lanequeue.external.completions',
  externalQueue: (lane: Lane) => `lanequeue.external.${lane}`,
  laneQueue: (lane: Lane) => `lanequeue.${lane}`,
} as const;

/**
 * A task to submit. `id`, `lane` and `payload` are required; the wire's snake_case names (`command_type`, `session_id`,
 * `timeout_ms`, `created_at`) are accepted too.
 */
export interface TaskInput {
  /** 1-200 characters: ASCII letters, digits and `. _ : @ / -`, starting with a letter or digit. Also the result's routing key. */
  id: string;
  lane: Lane;
  /** Any JSON value (`{}` when none; `null` is a value). At most 1 MiB as UTF-8 JSON. */
  payload: unknown;
  /** Which handler runs it; absent: the consumer's default (`echo`). */
  commandType?: string;
  sessionId?: string;
  /** How long one run may take, 1 to 2147483647 ms; absent: the lane's configured time-out. */
  timeoutMs?: number | bigint;
  /** Default: now. */
  createdAt?: Date | string;
  preemptible?: boolean;
  /** Delayed task: start no earlier than this many milliseconds after the submit (0 to 72000000, 20 hours). */
  delayMs?: number;
  /** Delayed task: start no earlier than this time (at most 20 hours ahead). Not with `delayMs`. */
  notBefore?: Date | string;
  /** De-duplication key (1-200 characters): the first task with it runs, others within the window are answered `duplicate`. */
  dedupKey?: string;
  /** How long `dedupKey` holds, 1 to 86400000 ms; absent: 60000. In `debounce` mode: how long the key remembers its latest task (at least the delay). */
  dedupWindowMs?: number;
  /** `once` (absent: the first task with the key runs) or `debounce` (the last one seen runs, the earlier ones are answered `duplicate`). */
  dedupMode?: DedupMode;
  command_type?: string;
  session_id?: string;
  timeout_ms?: number | bigint;
  created_at?: Date | string;
  delay_ms?: number;
  not_before?: Date | string;
  dedup_key?: string;
  dedup_window_ms?: number;
  dedup_mode?: DedupMode;
}

/** How a `dedupKey` picks the task that runs: `once` (the first) or `debounce` (the last one seen). */
export type DedupMode = 'once' | 'debounce';

/** A task as it travels (snake_case keys). */
export interface WireTask {
  id: string;
  lane: Lane;
  payload: unknown;
  command_type?: string;
  session_id?: string;
  timeout_ms?: number;
  created_at?: string;
  preemptible?: boolean;
  checkpoint?: unknown;
  delay_ms?: number;
  not_before?: string;
  dedup_key?: string;
  dedup_window_ms?: number;
  dedup_mode?: DedupMode;
}

/** A task's result (docs/wire-contract.md §6.1), read from `lanequeue.results`. */
export interface TaskResult {
  taskId: string;
  lane: Lane;
  /** True only for `completed`. */
  success: boolean;
  status: TaskStatus;
  /** What the handler returned (`{}` for every status but `completed`). */
  result: unknown;
  /** Why it did not complete; absent when it did. `field: problem` for a task that breaks the contract. */
  error?: string;
  sessionId?: string;
  consumer?: string;
  /** RFC 3339, as sent. */
  startedAt?: string;
  finishedAt?: string;
  /** Which attempt this result ends, counting from 1. */
  attempts: number;
  /** The result's JSON as received. */
  raw: Record<string, unknown>;
}

/** A lifecycle event (docs/wire-contract.md §6.3), read from `lanequeue.events`. */
export interface TaskEvent {
  /** `command.started`, `command.completed`, `command.dead_lettered`, `command.cancelled`, ... */
  event: string;
  taskId: string;
  lane: Lane;
  sessionId?: string;
  consumer?: string;
  attempt: number;
  at: string;
  error?: string;
  delayMs?: number;
  payload?: unknown;
  payloadBytes?: number;
  /**
   * For `command.progress`: what the running handler reported (any JSON, usually `{ percent: 40, message: '...' }`; the
   * built-in `sleep` reports `{ percent, message: 'slept 400 of 1000 ms' }`). Absent on other events.
   */
  progress?: unknown;
  /** `progress.percent` when the progress is an object with a number there (the built-in handlers' form). */
  percent?: number;
  /** The routing key it came with (`<event>.<lane>`). */
  routingKey: string;
  raw: Record<string, unknown>;
}

export function toResult(raw: Record<string, unknown>): TaskResult {
  const result: TaskResult = {
    taskId: String(raw.task_id),
    lane: raw.lane as Lane,
    success: raw.success === true,
    status: raw.status as TaskStatus,
    result: raw.result ?? {},
    attempts: typeof raw.attempts === 'number' ? raw.attempts : 0,
    raw,
  };
  if (typeof raw.error === 'string') result.error = raw.error;
  if (typeof raw.session_id === 'string') result.sessionId = raw.session_id;
  if (typeof raw.consumer === 'string') result.consumer = raw.consumer;
  if (typeof raw.started_at === 'string') result.startedAt = raw.started_at;
  if (typeof raw.finished_at === 'string') result.finishedAt = raw.finished_at;
  return result;
}

export function toEvent(raw: Record<string, unknown>, routingKey: string): TaskEvent {
  const event: TaskEvent = {
    event: String(raw.event),
    taskId: String(raw.task_id),
    lane: raw.lane as Lane,
    attempt: typeof raw.attempt === 'number' ? raw.attempt : 0,
    at: String(raw.at),
    routingKey,
    raw,
  };
  if (typeof raw.session_id === 'string') event.sessionId = raw.session_id;
  if (typeof raw.consumer === 'string') event.consumer = raw.consumer;
  if (typeof raw.error === 'string') event.error = raw.error;
  if (typeof raw.delay_ms === 'number') event.delayMs = raw.delay_ms;
  if ('payload' in raw) event.payload = raw.payload;
  if (typeof raw.payload_bytes === 'number') event.payloadBytes = raw.payload_bytes;
  if ('progress' in raw) {
    event.progress = raw.progress;
    const percent = (raw.progress as { percent?: unknown } | null)?.percent;
    if (typeof percent === 'number') event.percent = percent;
  }
  return event;
}
