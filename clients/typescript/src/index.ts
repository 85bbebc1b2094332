export { LaneQueue, Session, ExternalWork } from './client.js';
export type { ConnectOptions, ResultWatch, Subscription } from './client.js';
export type { WatchTaskOptions } from './watch.js';
export { InvalidTaskError, TaskRejectedError, ResultTimeoutError, ConnectionClosedError } from './errors.js';
export {
  parseTask,
  parseTaskJson,
  validateTask,
  serializeTask,
  isValidId,
  isRfc3339,
  maxBodyBytes,
  DEFAULT_MAX_PAYLOAD_BYTES,
  MAX_ID_LENGTH,
  MAX_OPTIONAL_STRING_LENGTH,
  MAX_TIMEOUT_MS,
  MAX_BODY_OVERHEAD_BYTES,
} from './validate.js';
export type { ParsedTask, ParseOptions } from './validate.js';
export { MAX_DEPTH } from './json.js';
export { parseBrokerUrl, redact, urlFromEnvironment, DEFAULT_URL } from './url.js';
export type { BrokerAddress } from './url.js';
export { LANES, LANE_PRIORITY, TASK_STATUSES, BROKER_NAMES } from './types.js';
export type { Lane, TaskStatus, TaskInput, WireTask, TaskResult, TaskEvent, DedupMode } from './types.js';

/** A fresh task id: `<prefix>-<random UUID>` (valid under the id rules). */
export { newTaskId } from './ids.js';
export { sessionShard, routingKeyFor, MAX_SESSION_SHARDS } from './shards.js';
