import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import amqp from 'amqplib';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Message, Options } from 'amqplib';
import { ConnectionClosedError, InvalidTaskError, ResultTimeoutError, TaskRejectedError } from './errors.js';
import { isWellFormed } from './json.js';
import { parseBrokerUrl, redact, urlFromEnvironment, type BrokerAddress } from './url.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, parseTask, serializeTask, type ParsedTask } from './validate.js';
import { BROKER_NAMES, LANE_PRIORITY, LANES, toEvent, toResult, type Lane, type TaskEvent, type TaskInput, type TaskResult } from './types.js';
import { watchTask, type WatchTaskOptions } from './watch.js';
import { MAX_SESSION_SHARDS, routingKeyFor } from './shards.js';

export interface ConnectOptions {
  /** The consumers' `LaneQueue:MaxPayloadBytes` (default 1 MiB): larger payloads are refused before publishing. */
  maxPayloadBytes?: number;
  /** Shown in the broker's connection list. */
  clientName?: string;
  /**
   * How long to try to connect again after the connection is lost (broker restart, network cut, cluster fail-over), any
   * host of the URL, before failing what waits with {@link ConnectionClosedError}. Default 30000 (as the .NET producer's
   * `RecoveryTimeout`); 0 fails at once.
   */
  recoveryTimeoutMs?: number;
  /**
   * Per lane, its session shard count as the consumers have it (`LaneQueue:SessionShards`), e.g. `{ generate: 8 }`: a task
   * with a `session_id` then goes to its session's shard (wire contract §2).
   */
  sessionShards?: Readonly<Record<string, number>>;
}

/** A result being waited for: bound to the results exchange before the task is published, so it cannot be missed. */
export interface ResultWatch {
  readonly taskId: string;
  /** The result; rejects with {@link ResultTimeoutError} after `timeoutMs` (none: wait until the client closes). */
  wait(timeoutMs?: number): Promise<TaskResult>;
  /** Stops listening (unbinds). */
  stop(): Promise<void>;
}

/** A stream of values that is also closable; `for await` over it, and `break` (or {@link close}) to stop. */
export interface Subscription<T> extends AsyncIterable<T> {
  close(): Promise<void>;
}

class AsyncQueue<T> implements AsyncIterator<T> {
  private readonly items: T[] = [];
  private readonly readers: Array<{ resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }> = [];
  private ended = false;
  private failure: unknown;

  constructor(private readonly onReturn: () => Promise<void>) {}

  push(item: T): void {
    if (this.ended) return;
    const reader = this.readers.shift();
    if (reader) reader.resolve({ value: item, done: false });
    else this.items.push(item);
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    for (const reader of this.readers.splice(0)) {
      if (error) reader.reject(error);
      else reader.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.ended) return this.failure ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }

  async return(): Promise<IteratorResult<T>> {
    await this.onReturn();
    return { value: undefined, done: true };
  }
}

interface PendingPublish {
  messageId: string;
  returned: boolean;
}

/** Publishes on one confirm channel with `mandatory`; a publish resolves once the broker has confirmed it. */
class ConfirmedPublisher {
  private channel: ConfirmChannel | undefined;
  private opening: Promise<ConfirmChannel> | undefined;
  private pending: PendingPublish[] = [];
  private lastError: Error | undefined;

  constructor(private readonly client: LaneQueue) {}

  private open(): Promise<ConfirmChannel> {
    if (this.channel) return Promise.resolve(this.channel);
    this.opening ??= (async () => {
      try {
        const connection = await this.client.ready();
        const channel = await connection.createConfirmChannel();
        const pending: PendingPublish[] = [];
        this.pending = pending;
        this.lastError = undefined;
        channel.on('return', (message: Message) => {
          const id = message.properties.messageId as string | undefined;
          const entry = pending.find((p) => p.messageId === id && !p.returned);
          if (entry) entry.returned = true;
        });
        channel.on('error', (error: Error) => {
          this.lastError = error;
        });
        channel.on('close', () => {
          if (this.channel === channel) this.channel = undefined;
        });
        this.channel = channel;
        return channel;
      } finally {
        this.opening = undefined;
      }
    })();
    return this.opening;
  }

  /**
   * Publishes and waits for the confirm. A publish whose connection was lost is published again once the client has
   * reconnected (within its recovery time-out): a task whose confirm was lost may so be stored twice, which consumers
   * de-duplicate by task id, as with the .NET producer.
   */
  async publish(exchange: string, routingKey: string, body: Buffer, options: Options.Publish & { messageId: string }, what: string): Promise<void> {
    for (;;) {
      const connection = await this.client.ready();
      try {
        await this.publishOnce(exchange, routingKey, body, options, what);
        return;
      } catch (error) {
        await new Promise((resolve) => setImmediate(resolve)); // let a connection's close land first
        if (error instanceof TaskRejectedError && error.reason === 'refused' && this.client.lost(connection)) continue;
        throw error;
      }
    }
  }

  private async publishOnce(exchange: string, routingKey: string, body: Buffer, options: Options.Publish & { messageId: string }, what: string): Promise<void> {
    const channel = await this.open();
    const pending = this.pending;
    const entry: PendingPublish = { messageId: options.messageId, returned: false };
    pending.push(entry);
    try {
      await new Promise<void>((resolve, reject) => {
        try {
          channel.publish(exchange, routingKey, body, { ...options, mandatory: true }, (error: unknown) => {
            if (!error) {
              resolve();
              return;
            }
            // A nack, or the channel closed under the publish (the broker refused it: 404 no exchange, 406 too large; or the
            // connection was lost).
            setImmediate(() => {
              const closed = this.channel !== channel;
              reject(closed
                ? new TaskRejectedError(`the broker did not store the ${what}: it closed the channel (${this.lastError?.message ?? String(error)})`, 'refused', { cause: error })
                : new TaskRejectedError(`the broker refused the ${what} (nack); it was not stored, submit it again`, 'nacked', { cause: error }));
            });
          });
        } catch (error) {
          reject(new TaskRejectedError(`could not publish the ${what}: ${(error as Error).message}`, 'refused', { cause: error }));
        }
      });
    } finally {
      const index = pending.indexOf(entry);
      if (index >= 0) pending.splice(index, 1);
    }
    if (entry.returned) throw new TaskRejectedError(`the ${what} was not routed`, 'unroutable');
  }

  /** Forgets the channel of a lost connection (the next publish opens one on the new connection). */
  reset(): void {
    this.channel = undefined;
  }

  async close(): Promise<void> {
    const channel = this.channel;
    this.channel = undefined;
    if (channel) await channel.close().catch(() => undefined);
  }
}

interface Waiter {
  resolve: (result: TaskResult) => void;
  reject: (error: unknown) => void;
}

/** Something that consumes on a channel of its own and must consume again on a new connection. */
interface Restorable {
  restore(connection: ChannelModel): Promise<void>;
  fail(error: Error): void;
  close(): Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function openConnection(address: BrokerAddress, url: string, clientName: string | undefined): Promise<ChannelModel> {
  const errors: string[] = [];
  for (const { host, port } of address.hosts) {
    try {
      return await amqp.connect(connectOptions(address, host, port), socketOptions(address, clientName));
    } catch (error) {
      errors.push(`${host}:${port}: ${(error as Error).message}`);
    }
  }
  throw new ConnectionClosedError(`cannot reach RabbitMQ at ${redact(url)} (${errors.join('; ')}); start a broker or set LANEQUEUE_RABBITMQ_URL`);
}

/**
 * A connection to LaneQueue: submits tasks (validated, persistent, publisher confirms, mandatory routing), waits for
 * their results, cancels tasks and sessions, follows lifecycle events and works External lanes. Mirrors the .NET
 * `LaneQueueProducer`, connection recovery included: when the connection is lost it connects again (to any host of the
 * URL) for up to `recoveryTimeoutMs`, listens again for the results it waits for, consumes again for its subscriptions,
 * and publishes again what was not confirmed.
 */
export class LaneQueue {
  private readonly publisher: ConfirmedPublisher;
  private readonly waiting = new Map<string, Set<Waiter>>();
  private replyChannel: Channel | undefined;
  private replyQueue: Promise<string> | undefined;
  private readonly subscriptions = new Set<Restorable>();
  private closedError: Error | undefined;
  private connection: ChannelModel | undefined;
  private recovering: Promise<ChannelModel> | undefined;

  private constructor(
    connection: ChannelModel,
    private readonly address: BrokerAddress,
    private readonly rawUrl: string,
    private readonly options: ConnectOptions,
  ) {
    this.url = redact(rawUrl);
    this.publisher = new ConfirmedPublisher(this);
    this.attach(connection);
  }

  /** The broker URL without its password. */
  readonly url: string;

  private get maxPayloadBytes(): number {
    return this.options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  }

  private get recoveryTimeoutMs(): number {
    return this.options.recoveryTimeoutMs ?? 30_000;
  }

  /**
   * Connects to the broker. `url` defaults to `LANEQUEUE_RABBITMQ_URL`, else `amqp://guest:guest@localhost:5672/lanequeue`;
   * it takes what the .NET producer takes: `amqps://`, several comma-separated hosts of one cluster (the first that
   * answers is used), and `cacertfile`, `certfile`, `keyfile`, `server_name_indication`, `verify`, `heartbeat`,
   * `connection_timeout` options. Declares the tasks, results and events exchanges (as every LaneQueue producer does; harmless);
   * never the lane queues, whose arguments belong to the consumers.
   */
  static async connect(url: string = urlFromEnvironment(), options: ConnectOptions = {}): Promise<LaneQueue> {
    for (const [lane, shards] of Object.entries(options.sessionShards ?? {})) {
      if (!(LANES as readonly string[]).includes(lane) || !Number.isInteger(shards) || shards < 0 || shards > MAX_SESSION_SHARDS)
        throw new RangeError(`sessionShards: '${lane}': ${shards} must be a lane and a whole number from 0 to ${MAX_SESSION_SHARDS}`);
    }
    const address = parseBrokerUrl(url);
    const connection = await openConnection(address, url, options.clientName);
    const client = new LaneQueue(connection, address, url, { ...options });
    await client.declareExchanges(connection);
    return client;
  }

  private attach(connection: ChannelModel): void {
    this.connection = connection;
    connection.on('error', () => undefined); // reported through 'close'
    connection.on('close', (error?: Error) => {
      if (this.connection !== connection) return;
      this.connection = undefined;
      this.publisher.reset();
      this.onLost(error);
    });
  }

  private onLost(error: Error | undefined): void {
    if (this.closedError) return; // closed by us
    const lost = `the connection to RabbitMQ at ${this.url} was lost${error ? ` (${error.message})` : ''}`;
    if (this.recoveryTimeoutMs <= 0) {
      this.shutDown(new ConnectionClosedError(lost, { cause: error }));
      return;
    }
    const deadline = Date.now() + this.recoveryTimeoutMs;
    const recovering = (async () => {
      let delay = 100;
      for (;;) {
        try {
          const connection = await openConnection(this.address, this.rawUrl, this.options.clientName);
          if (this.closedError) {
            await connection.close().catch(() => undefined);
            throw this.closedError;
          }
          this.attach(connection);
          await this.restore(connection);
          return connection;
        } catch (failure) {
          if (this.closedError) throw this.closedError;
          if (Date.now() + delay > deadline) {
            const error = new ConnectionClosedError(`${lost}, and could not be made again within ${this.recoveryTimeoutMs / 1000} s: ${(failure as Error).message}`, { cause: failure });
            this.shutDown(error);
            throw error;
          }
          await sleep(delay);
          delay = Math.min(delay * 2, 1000);
        }
      }
    })();
    this.recovering = recovering;
    recovering.then(
      () => {
        if (this.recovering === recovering) this.recovering = undefined;
      },
      () => undefined,
    );
  }

  /** Listens again for every result waited for, and consumes again for every subscription, on a new connection. */
  private async restore(connection: ChannelModel): Promise<void> {
    this.replyChannel = undefined;
    this.replyQueue = undefined;
    if (this.waiting.size > 0) {
      const queue = await this.ensureReplyQueue(connection);
      for (const taskId of this.waiting.keys()) await this.replyChannel!.bindQueue(queue, BROKER_NAMES.resultsExchange, taskId);
    }
    for (const subscription of this.subscriptions) await subscription.restore(connection);
  }

  /** Ends everything with `error`: the client is closed for good. */
  private shutDown(error: Error): void {
    this.closedError ??= error;
    this.failAll(this.closedError);
    for (const subscription of [...this.subscriptions]) subscription.fail(this.closedError);
    this.subscriptions.clear();
  }

  /** @internal The open connection, once recovered if it is being recovered; rejects when the client is closed. */
  async ready(): Promise<ChannelModel> {
    if (this.closedError) throw this.closedError;
    if (this.connection) return this.connection;
    if (this.recovering) return this.recovering;
    throw new ConnectionClosedError(`not connected to RabbitMQ at ${this.url}`);
  }

  /** @internal Whether `connection` is no longer the client's (lost, or replaced by a recovered one). */
  lost(connection: ChannelModel): boolean {
    return this.connection !== connection && !this.closedError;
  }

  private async declareExchanges(connection: ChannelModel): Promise<void> {
    // A user without configure permission may not declare; then the exchanges must exist already, and a publish to a
    // missing one fails with the broker's reason.
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      await channel.assertExchange(BROKER_NAMES.tasksExchange, 'direct', { durable: true });
      await channel.assertExchange(BROKER_NAMES.resultsExchange, 'topic', { durable: true });
      await channel.assertExchange(BROKER_NAMES.eventsExchange, 'topic', { durable: true });
      await channel.close();
    } catch {
      // the channel is closed by the refusal
    }
  }

  /** A session: the tasks submitted through it carry its id (`session_id`), and {@link Session.cancelSession} cancels them. */
  session(sessionId: string): Session {
    if (typeof sessionId !== 'string' || sessionId.length === 0) throw new InvalidTaskError('session_id', 'must be a non-empty string');
    if (!isWellFormed(sessionId)) throw new InvalidTaskError('session_id', 'not valid Unicode text (unpaired surrogate)');
    if ([...sessionId].length > 200) throw new InvalidTaskError('session_id', `${[...sessionId].length} characters is over the limit of 200`);
    return new Session(this, sessionId);
  }

  /**
   * Validates and publishes a task; resolves once the broker has stored it (publisher confirm).
   * @throws InvalidTaskError the task breaks the wire contract (names the field); nothing was sent.
   * @throws TaskRejectedError no lane queue took it (`unroutable`), the broker nacked it, or closed the channel.
   * @throws ConnectionClosedError the client is closed, or lost its connection for longer than `recoveryTimeoutMs`.
   */
  async submitTask(task: TaskInput): Promise<void> {
    this.throwIfClosed();
    const { json, task: parsed } = serializeTask(task, { maxPayloadBytes: this.maxPayloadBytes });
    await this.publishTask(parsed, json);
  }

  private async publishTask(task: ParsedTask, json: string): Promise<void> {
    const createdAt = task.createdAt ? Date.parse(task.createdAt) : Date.now();
    try {
      await this.publisher.publish(BROKER_NAMES.tasksExchange, routingKeyFor(task.lane, task.sessionId, this.options.sessionShards), Buffer.from(json, 'utf8'), {
        persistent: true,
        contentType: 'application/json',
        messageId: task.id,
        correlationId: task.id,
        type: 'lanequeue.task',
        priority: LANE_PRIORITY[task.lane],
        timestamp: Math.floor(createdAt / 1000),
        headers: { lane: task.lane },
      }, `task '${task.id}'`);
    } catch (error) {
      if (error instanceof TaskRejectedError && error.reason === 'unroutable') {
        throw new TaskRejectedError(
          `task '${task.id}' was not routed: no queue is bound to lane '${task.lane}' on exchange '${BROKER_NAMES.tasksExchange}'. ` +
            'The consumers declare the lane queues when they start: has no consumer run on this vhost, or is the vhost in the broker URL the consumers\' one?',
          'unroutable');
      }
      throw error;
    }
  }

  /**
   * Submits a task and waits for its result (any status: check `success` or `status`).
   * @throws ResultTimeoutError no result within `timeoutMs`; the task may still run.
   */
  async submitAndWait(task: TaskInput, timeoutMs: number): Promise<TaskResult> {
    this.throwIfClosed();
    const { json, task: parsed } = serializeTask(task, { maxPayloadBytes: this.maxPayloadBytes });
    const watch = await this.watchResult(parsed.id);
    try {
      await this.publishTask(parsed, json);
      return await watch.wait(timeoutMs).catch((error: unknown) => {
        if (error instanceof ResultTimeoutError) {
          throw new ResultTimeoutError(parsed.id,
            `no result for task '${parsed.id}' within ${timeoutMs / 1000} s. It is stored in lane '${parsed.lane}' and may still run: is a consumer running, or is the lane paused?`);
        }
        throw error;
      });
    } finally {
      await watch.stop();
    }
  }

  /**
   * Starts listening for a task's result; call before submitting it (as {@link submitAndWait} does), so none is missed.
   * (A result published while the connection is lost is missed: the listening queue is the connection's own.)
   */
  async watchResult(taskId: string): Promise<ResultWatch> {
    this.throwIfClosed();
    const connection = await this.ready();
    const queue = await this.ensureReplyQueue(connection);
    let settle!: Waiter;
    const result = new Promise<TaskResult>((resolve, reject) => {
      settle = { resolve, reject };
    });
    result.catch(() => undefined);
    let waiters = this.waiting.get(taskId);
    if (!waiters) {
      waiters = new Set();
      this.waiting.set(taskId, waiters);
      await this.replyChannel!.bindQueue(queue, BROKER_NAMES.resultsExchange, taskId);
    }
    waiters.add(settle);
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      const set = this.waiting.get(taskId);
      set?.delete(settle);
      if (set && set.size === 0) {
        this.waiting.delete(taskId);
        const channel = this.replyChannel;
        const current = await this.replyQueue?.catch(() => undefined);
        if (channel && current) await channel.unbindQueue(current, BROKER_NAMES.resultsExchange, taskId).catch(() => undefined);
      }
    };
    return {
      taskId,
      stop,
      wait: (timeoutMs?: number) => {
        if (timeoutMs === undefined) return result;
        let timer: NodeJS.Timeout;
        const expired = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ResultTimeoutError(taskId, `no result for task '${taskId}' within ${timeoutMs / 1000} s`)), timeoutMs);
        });
        return Promise.race([result, expired]).finally(() => clearTimeout(timer));
      },
    };
  }

  private ensureReplyQueue(connection: ChannelModel): Promise<string> {
    this.replyQueue ??= (async () => {
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      channel.on('close', () => {
        if (this.replyChannel !== channel) return;
        this.replyChannel = undefined;
        this.replyQueue = undefined;
        // Channels close just before their connection does; recovery listens again then. A channel the broker closed
        // on a connection that stays open is replaced here.
        setImmediate(() => {
          if (this.closedError || this.connection !== connection) return;
          void this.restoreReplies(connection).catch((error: unknown) => this.failAll(error as Error));
        });
      });
      const { queue } = await channel.assertQueue(`lanequeue.replies.${randomUUID().replace(/-/g, '')}`, { durable: false, exclusive: true, autoDelete: true });
      await channel.consume(queue, (message) => message && this.onResult(message), { noAck: true });
      this.replyChannel = channel;
      return queue;
    })();
    const pending = this.replyQueue;
    pending.catch(() => {
      if (this.replyQueue === pending) this.replyQueue = undefined;
    });
    return pending;
  }

  private async restoreReplies(connection: ChannelModel): Promise<void> {
    if (this.waiting.size === 0) return;
    const queue = await this.ensureReplyQueue(connection);
    for (const taskId of this.waiting.keys()) await this.replyChannel!.bindQueue(queue, BROKER_NAMES.resultsExchange, taskId);
  }

  private onResult(message: ConsumeMessage): void {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(message.content.toString('utf8'));
    } catch {
      return; // not a result we can read; results of other tasks never reach this queue
    }
    if (raw === null || typeof raw !== 'object' || typeof raw.task_id !== 'string') return;
    const waiters = this.waiting.get(raw.task_id);
    if (!waiters) return;
    const result = toResult(raw);
    for (const waiter of waiters) waiter.resolve(result);
  }

  private failAll(error: Error): void {
    for (const waiters of this.waiting.values()) for (const waiter of waiters) waiter.reject(error);
    this.waiting.clear();
  }

  /** Cancels a task on every consumer: skipped if still waiting, its run cancelled if running (result `cancelled`). */
  cancelTask(taskId: string): Promise<void> {
    return this.sendFleetCommand({ command: 'cancel', task_id: taskId }, `cancel of task '${taskId}'`);
  }

  /** Cancels every task of a session created before now. */
  cancelSession(sessionId: string): Promise<void> {
    return this.sendFleetCommand({ command: 'cancel', session_id: sessionId }, `cancel of session '${sessionId}'`);
  }

  /**
   * Interrupts a session from inside the queue: submits the built-in `lanequeue.interrupt` task on the `control` lane
   * (README, "Session interrupt"), confirmed, and resolves with its task id. When it runs, every task of the session running
   * at that moment, on any consumer, is asked to yield (a preemptible one returns its checkpoint, goes back to its lane and
   * resumes later; others run on), or with `cancel: true` is cancelled. Waiting and later tasks are not touched (that is
   * {@link cancelSession}). With `timeoutMs` it also waits for the interrupt task's result.
   * @throws Error with `timeoutMs`: the interrupt task did not complete (e.g. `LaneQueue:InterruptTasks=false`); says why.
   * @throws ResultTimeoutError with `timeoutMs`: no result in time.
   */
  async interruptSession(sessionId: string, options: { cancel?: boolean; timeoutMs?: number } = {}): Promise<string> {
    if (typeof sessionId !== 'string' || sessionId.trim().length === 0) throw new InvalidTaskError('session_id', 'the session to interrupt must be a non-empty string');
    const task: TaskInput = {
      id: `lanequeue.interrupt-${randomUUID().replace(/-/g, '')}`,
      lane: 'control',
      commandType: 'lanequeue.interrupt',
      // No sessionId of its own: an interrupt with cancel would otherwise cancel the interrupt task too.
      payload: { session_id: sessionId, cancel: options.cancel === true },
    };
    if (options.timeoutMs === undefined) {
      await this.submitTask(task);
      return task.id;
    }
    const result = await this.submitAndWait(task, options.timeoutMs);
    if (result.status !== 'completed') {
      throw new Error(`the interrupt of session '${sessionId}' (task '${task.id}') ended ${result.status}: ${result.error ?? ''}`);
    }
    return task.id;
  }

  private async sendFleetCommand(command: Record<string, unknown>, what: string): Promise<void> {
    this.throwIfClosed();
    const body = Buffer.from(JSON.stringify({ ...command, at: new Date().toISOString() }), 'utf8');
    try {
      await this.publisher.publish(BROKER_NAMES.fleetExchange, '', body, { persistent: true, contentType: 'application/json', messageId: randomUUID() }, `fleet command (${what})`);
    } catch (error) {
      if (error instanceof TaskRejectedError && error.reason === 'unroutable') {
        throw new TaskRejectedError(`the ${what} was not routed: the fleet log is not bound on this vhost (has a consumer ever run here?)`, 'unroutable');
      }
      throw error;
    }
  }

  /**
   * Follows lifecycle events on a queue of this client's own; `pattern` is a topic binding such as `command.#` (all) or
   * `command.completed.query`. Resolves once bound (no event after that is missed, but for those published while the
   * connection is lost). Iterate it with `for await`, or pass `onEvent`; `close()` (or `break`) stops it.
   */
  async watchEvents(pattern = 'command.#', onEvent?: (event: TaskEvent) => void | Promise<void>): Promise<Subscription<TaskEvent>> {
    this.throwIfClosed();
    let channel: Channel | undefined;
    let closed = false;
    const close = async () => {
      closed = true;
      this.subscriptions.delete(restorable);
      items.end();
      await channel?.close().catch(() => undefined);
    };
    const items = new AsyncQueue<TaskEvent>(close);
    const consume = async (connection: ChannelModel) => {
      const open = await connection.createChannel();
      channel = open;
      open.on('error', () => undefined);
      open.on('close', () => setImmediate(() => {
        if (!closed && this.connection === connection && channel === open) items.end(new ConnectionClosedError(`the broker closed the channel of the events subscription '${pattern}'`));
      }));
      const { queue } = await open.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
      await open.bindQueue(queue, BROKER_NAMES.eventsExchange, pattern);
      await open.consume(queue, (message) => {
        if (!message) return;
        let raw: Record<string, unknown>;
        try {
          raw = JSON.parse(message.content.toString('utf8'));
        } catch {
          return;
        }
        if (raw === null || typeof raw !== 'object') return;
        const event = toEvent(raw, message.fields.routingKey);
        if (onEvent) void Promise.resolve().then(() => onEvent(event)).catch(() => undefined);
        else items.push(event);
      }, { noAck: true });
    };
    const restorable: Restorable = { restore: consume, fail: (error) => items.end(error), close };
    await consume(await this.ready());
    this.subscriptions.add(restorable);
    return { close, [Symbol.asyncIterator]: () => items };
  }

  /**
   * Follows one task to its end (the .NET `WatchTaskAsync`): calls `onEvent` with each of its lifecycle events in order
   * (`command.started`, `command.progress` reports with `progress` / `percent`, retries, ...), first those the history
   * stream `lanequeue.history` already holds, then live ones, and resolves with its result. A task that already finished
   * resolves at once, after its history's events. `lookBackMs` limits how far back the history is read (0: not at all, so
   * the watch starts now and a task that already finished is not seen). Live events come from a subscription to
   * `command.#` filtered here: fine for a person or a few watchers; for many tasks prefer {@link watchResult}.
   * @throws ResultTimeoutError no result within `timeoutMs` (the history read included); the task may still run.
   * @throws Error the history stream is missing or may not be read (pass `lookBackMs: 0` to watch without it).
   */
  watchTask(taskId: string, onEvent: (event: TaskEvent) => void | Promise<void>, timeoutMs: number, options: WatchTaskOptions = {}): Promise<TaskResult> {
    this.throwIfClosed();
    return watchTask(this, taskId, onEvent, timeoutMs, options);
  }

  /**
   * Works an External lane: takes the tasks the consumers announce on `lanequeue.external.<lane>` (competing with other
   * workers; manual acks) and yields them; {@link ExternalWork.complete} or {@link ExternalWork.fail} answers each.
   * `prefetch` (default 1) is how many a worker holds at once. Stop with `break` or `close()`: unanswered tasks go back
   * to the queue for another worker.
   */
  externalTasks(lane: Lane, options: { prefetch?: number } = {}): Subscription<ExternalWork> {
    if (!(LANES as readonly string[]).includes(lane)) throw new InvalidTaskError('lane', `'${lane}' is not a lane; expected one of ${LANES.join(', ')}`);
    this.throwIfClosed();
    let channel: Channel | undefined;
    let closed = false;
    const close = async () => {
      closed = true;
      this.subscriptions.delete(restorable);
      items.end();
      await channel?.close().catch(() => undefined);
    };
    const items = new AsyncQueue<ExternalWork>(close);
    const queue = BROKER_NAMES.externalQueue(lane);
    const consume = async (connection: ChannelModel) => {
      const open = await connection.createChannel();
      channel = open;
      open.on('error', () => undefined);
      open.on('close', () => setImmediate(() => {
        if (!closed && this.connection === connection && channel === open) items.end(new ConnectionClosedError(`the broker closed the channel consuming ${queue}`));
      }));
      await open.prefetch(options.prefetch ?? 1);
      // The same declarations as every consumer (idempotent), so a worker may start before any consumer.
      await open.assertExchange(BROKER_NAMES.externalExchange, 'topic', { durable: true });
      await open.assertQueue(queue, { durable: true, exclusive: false, autoDelete: false });
      await open.bindQueue(queue, BROKER_NAMES.externalExchange, lane);
      await open.consume(queue, (message) => {
        if (!message) return;
        let task: ParsedTask;
        try {
          task = parseTask(message.content, { maxPayloadBytes: Math.max(this.maxPayloadBytes, DEFAULT_MAX_PAYLOAD_BYTES) });
        } catch {
          open.nack(message, false, false); // not a task: nobody can complete it
          return;
        }
        items.push(new ExternalWork(task, message, open, this));
      }, { noAck: false });
    };
    const restorable: Restorable = { restore: consume, fail: (error) => items.end(error), close };
    this.subscriptions.add(restorable);
    this.ready().then(consume).catch((error: unknown) => {
      this.subscriptions.delete(restorable);
      items.end(error);
    });
    return { close, [Symbol.asyncIterator]: () => items };
  }

  /** @internal Publishes an external worker's completion (confirmed, mandatory). */
  async publishCompletion(completion: Record<string, unknown> & { task_id: string }): Promise<void> {
    const body = Buffer.from(JSON.stringify(completion), 'utf8');
    await this.publisher.publish(BROKER_NAMES.externalCompletionsExchange, completion.task_id, body,
      { persistent: true, contentType: 'application/json', messageId: randomUUID() }, `completion of external task '${completion.task_id}'`);
  }

  private throwIfClosed(): void {
    if (this.closedError) throw this.closedError;
  }

  /** Stops every subscription and closes the connection; waits for results end with {@link ConnectionClosedError}. */
  async close(): Promise<void> {
    if (this.closedError) return;
    this.closedError = new ConnectionClosedError('the LaneQueue client is closed');
    this.failAll(this.closedError);
    for (const subscription of [...this.subscriptions]) await subscription.close();
    await this.publisher.close();
    await this.replyChannel?.close().catch(() => undefined);
    const connection = this.connection;
    this.connection = undefined;
    await connection?.close().catch(() => undefined);
  }
}

/** A task of an External lane, taken from `lanequeue.external.<lane>`; answer it with {@link complete} or {@link fail}. */
export class ExternalWork {
  readonly id: string;
  readonly lane: Lane;
  readonly payload: unknown;
  readonly commandType?: string;
  readonly sessionId?: string;
  readonly timeoutMs?: number;
  readonly createdAt?: string;
  /** The consumer that announced it and holds its slot (header `consumer`). */
  readonly consumer?: string;
  private answered = false;

  constructor(
    /** The task as announced. */
    readonly task: ParsedTask,
    private readonly message: ConsumeMessage,
    private readonly channel: Channel,
    private readonly client: LaneQueue,
  ) {
    this.id = task.id;
    this.lane = task.lane;
    this.payload = task.payload;
    if (task.commandType !== undefined) this.commandType = task.commandType;
    if (task.sessionId !== undefined) this.sessionId = task.sessionId;
    if (task.timeoutMs !== undefined) this.timeoutMs = task.timeoutMs;
    if (task.createdAt !== undefined) this.createdAt = task.createdAt;
    const consumer = message.properties.headers?.consumer;
    if (consumer !== undefined) this.consumer = Buffer.isBuffer(consumer) ? consumer.toString('utf8') : String(consumer);
  }

  /** Completes the task with `result` (any JSON; default `{}`): its result is `completed`. */
  complete(result: unknown = {}): Promise<void> {
    return this.answer({ task_id: this.id, success: true, result });
  }

  /** Fails this run with `error`; the consumer retries it per its retry policy, or ends it `failed`. */
  fail(error: string | Error): Promise<void> {
    return this.answer({ task_id: this.id, success: false, result: {}, error: typeof error === 'string' ? error : error.message });
  }

  /** Gives the task back to the queue for another worker, unanswered. */
  release(): void {
    if (this.answered) return;
    this.answered = true;
    try {
      this.channel.nack(this.message, false, true);
    } catch {
      // channel closed: the broker returns the task to the queue anyway
    }
  }

  private async answer(completion: Record<string, unknown> & { task_id: string }): Promise<void> {
    if (this.answered) throw new Error(`external task '${this.id}' is already answered`);
    this.answered = true;
    let rejected: unknown;
    try {
      JSON.stringify(completion);
      await this.client.publishCompletion(completion);
    } catch (error) {
      rejected = error;
    }
    // The announcement is done with either way: a completion nobody takes means no consumer waits for the task any more.
    // (On a channel lost meanwhile the ack cannot be sent: the broker hands the announcement to a worker again.)
    try {
      this.channel.ack(this.message);
    } catch {
      // channel closed
    }
    if (rejected instanceof TaskRejectedError && rejected.reason === 'unroutable') {
      throw new TaskRejectedError(`no consumer waits for external task '${this.id}' any more (its deadline passed, or its consumer stopped); the completion was dropped`, 'unroutable');
    }
    if (rejected) throw rejected;
  }
}

/** Tasks submitted through a session carry its id; {@link cancelSession} cancels them all. */
export class Session {
  constructor(
    private readonly client: LaneQueue,
    readonly id: string,
  ) {}

  private withSession(task: TaskInput): TaskInput {
    if (task === null || typeof task !== 'object') return task;
    const given = task.sessionId ?? task.session_id;
    if (given !== undefined && given !== this.id) {
      throw new InvalidTaskError('session_id', `the task says '${String(given)}' but is submitted in session '${this.id}'`);
    }
    const { session_id: _ignored, ...rest } = task;
    return { ...rest, sessionId: this.id };
  }

  /** {@link LaneQueue.submitTask} in this session. */
  async submitTask(task: TaskInput): Promise<void> {
    return this.client.submitTask(this.withSession(task));
  }

  /** {@link LaneQueue.submitAndWait} in this session. */
  async submitAndWait(task: TaskInput, timeoutMs: number): Promise<TaskResult> {
    return this.client.submitAndWait(this.withSession(task), timeoutMs);
  }

  /** {@link LaneQueue.cancelTask}. */
  cancelTask(taskId: string): Promise<void> {
    return this.client.cancelTask(taskId);
  }

  /** Cancels every task of this session created before now. */
  cancelSession(): Promise<void> {
    return this.client.cancelSession(this.id);
  }

  /** Asks this session's running tasks to yield (`cancel: true`: cancels them); see {@link LaneQueue.interruptSession}. */
  interrupt(options: { cancel?: boolean; timeoutMs?: number } = {}): Promise<string> {
    return this.client.interruptSession(this.id, options);
  }
}

function connectOptions(address: BrokerAddress, hostname: string, port: number): Options.Connect {
  const options: Options.Connect = { protocol: address.scheme, hostname, port, vhost: address.vhost };
  options.username = address.username ?? 'guest';
  options.password = address.password ?? 'guest';
  if (address.heartbeat !== undefined) options.heartbeat = address.heartbeat;
  return options;
}

function socketOptions(address: BrokerAddress, clientName?: string): Record<string, unknown> {
  const options: Record<string, unknown> = {
    clientProperties: { connection_name: clientName ?? `lanequeue-ts-client@${process.pid}`, product: '@lanequeue/client' },
  };
  if (address.connectionTimeout !== undefined) options.timeout = address.connectionTimeout;
  if (address.scheme === 'amqps') {
    // amqplib sets the host as the TLS server name itself (unless it is an IP address).
    if (address.serverName) options.servername = address.serverName;
    options.rejectUnauthorized = address.verifyPeer;
    if (address.caCertFile) options.ca = [readFileSync(address.caCertFile)];
    if (address.certFile && address.keyFile) {
      options.cert = readFileSync(address.certFile);
      options.key = readFileSync(address.keyFile);
    }
  }
  return options;
}
