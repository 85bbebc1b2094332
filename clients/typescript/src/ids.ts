import { randomUUID } from 'node:crypto';

/** A fresh task id: `<prefix>-<random UUID>`. Ids are the de-duplication key: use a new one per task. */
export function newTaskId(prefix = 'task'): string {
  return `${prefix}-${randomUUID()}`;
}
