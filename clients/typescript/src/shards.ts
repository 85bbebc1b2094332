/**
 * Session shards (docs/wire-contract.md §2): a task with a `session_id` may go to its session's shard queue of the lane,
 * so one session's backlog does not hold back the others. Computed as the .NET producer does.
 */

/** Most shards a lane may have. */
export const MAX_SESSION_SHARDS = 64;

/** The shard of `sessionId` among `shards`: FNV-1a (32-bit) of its UTF-8 bytes, modulo `shards`. */
export function sessionShard(sessionId: string, shards: number): number {
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shards must be a whole number of at least 1, got ${shards}`);
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(sessionId, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % shards;
}

/** Where a task of `lane` is published: `<lane>.sNN` for a task with a session in a sharded lane, else the lane. */
export function routingKeyFor(lane: string, sessionId: string | undefined | null, sessionShards?: Readonly<Record<string, number>>): string {
  const shards = sessionShards?.[lane] ?? 0;
  return shards > 0 && sessionId ? `${lane}.s${String(sessionShard(sessionId, shards)).padStart(2, '0')}` : lane;
}
