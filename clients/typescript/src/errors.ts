/**
 * A task that breaks the wire contract (docs/wire-contract.md §3). `field` names the offending field (`id`, `lane`,
 * `payload`, `command_type`, `session_id`, `timeout_ms`, `created_at`, `preemptible`, `checkpoint`) or `body` for the
 * message as a whole; the message reads `"<field>: <problem>"`, as the .NET `InvalidTaskException` does.
 */
export class InvalidTaskError extends Error {
  readonly field: string;
  readonly problem: string;

  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'InvalidTaskError';
    this.field = field;
    this.problem = problem;
  }
}

/**
 * The broker did not store a message: no queue was bound for it (a `mandatory` publish came back), the broker nacked it,
 * or it closed the channel (a message over `max_message_size`, an exchange that does not exist). As the .NET
 * `TaskRejectedException`.
 */
export class TaskRejectedError extends Error {
  /** `unroutable`, `nacked` or `refused` (the channel was closed by the broker or the connection was lost). */
  readonly reason: 'unroutable' | 'nacked' | 'refused';

  constructor(message: string, reason: 'unroutable' | 'nacked' | 'refused', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TaskRejectedError';
    this.reason = reason;
  }
}

/** No result arrived in time. The task may still run: it is stored in its lane. */
export class ResultTimeoutError extends Error {
  readonly taskId: string;

  constructor(taskId: string, message: string) {
    super(message);
    this.name = 'ResultTimeoutError';
    this.taskId = taskId;
  }
}

/** The client is closed, or its connection to the broker was lost. */
export class ConnectionClosedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConnectionClosedError';
  }
}
