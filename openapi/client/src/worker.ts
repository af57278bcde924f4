// A worker for jobs of your own kinds and for your agent's turns (`agent.turn`, the messages of a
// source whose agent is `external`), over the worker API: it claims only for free slots (long
// polling), keeps every lease alive with heartbeats, learns of cancels, and completes or fails each
// job from its handler's return or throw. A lost lease (409 `lease_lost`) drops the late outcome.
import type { SentinelClient, Schemas } from "./index.js";
import { SentinelError } from "./index.js";

export type ClaimedJob = Schemas["ClaimedJob"];

/** A claimed job, as a handler sees it. */
export interface WorkerJob {
  id: number;
  kind: string;
  attempt: number;
  maxAttempts: number;
  input: unknown;
  /** For an `agent.turn`: the canonical message to answer. */
  message?: Schemas["CanonicalMessage"];
  /** For an `agent.turn`: the conversation before it, oldest first. */
  history: { role: "user" | "agent"; text: string }[];
  /** Aborted when a cancel is requested or the lease is lost: stop, and throw. */
  signal: AbortSignal;
  /** Appends a `job.progress` event that the job's followers see. */
  progress(data: unknown): Promise<void>;
}

/** An `agent.turn` handler's answer: `text` goes to the user through the outbox. */
export class Reply {
  constructor(
    readonly text: string,
    readonly result: unknown = null,
  ) {}
}

/** Throw to run the job again: after the queue's backoff, or after `afterSecs` (a snooze). */
export class RetryError extends Error {
  constructor(
    message = "retry",
    readonly afterSecs?: number,
  ) {
    super(message);
    this.name = "RetryError";
  }
}

/** Throw to end the job `dead`, whatever attempts remain. */
export class FatalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FatalError";
  }
}

export type JobHandler = (job: WorkerJob) => unknown | Promise<unknown>;

export interface WorkerOptions {
  /** Handlers by kind: your own kinds, and `agent.turn`. */
  handlers: Record<string, JobHandler>;
  /** Jobs run at once; default 1. */
  concurrency?: number;
  /** Default 30 (5 to 3600). */
  leaseSecs?: number;
  /** How long a claim waits for a job; default 20000. */
  waitMs?: number;
  workerId?: string;
  /** Called for what the loop cannot hand to a handler: failed claims and reports. */
  onError?: (error: unknown) => void;
}

export interface SentinelWorker {
  /** Claims and runs jobs until `stop` (or `signal`), then waits for the jobs in hand. */
  run(signal?: AbortSignal): Promise<void>;
  /** Stops claiming; `run` resolves once the jobs in hand have finished. */
  stop(): void;
}

export function createWorker(client: SentinelClient, options: WorkerOptions): SentinelWorker {
  const kinds = Object.keys(options.handlers).sort();
  if (kinds.length === 0) throw new Error("createWorker needs at least one handler");
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const leaseSecs = options.leaseSecs ?? 30;
  const waitMs = options.waitMs ?? 20_000;
  const workerId = options.workerId ?? `ts-${Math.random().toString(36).slice(2, 10)}`;
  const onError = options.onError ?? ((error: unknown) => console.warn("sentinel worker:", error));
  const stopping = new AbortController();
  const inFlight = new Set<Promise<void>>();

  async function execute(claimed: ClaimedJob): Promise<void> {
    const lease = claimed.lease;
    const path = { params: { path: { id: claimed.id } } };
    const abort = new AbortController();
    let lost = false;
    const beat = setInterval(async () => {
      try {
        const answer = await client.ok(
          client.api.POST("/v1/worker/jobs/{id}/heartbeat", { ...path, body: { lease, lease_secs: leaseSecs } }),
        );
        if (answer.cancel_requested) abort.abort(new Error("cancel requested"));
      } catch (error) {
        if (error instanceof SentinelError && error.status === 409) {
          lost = true;
          abort.abort(new Error("lease lost"));
        } else onError(error);
      }
    }, (leaseSecs * 1000) / 3);
    const input = claimed.input as { history?: WorkerJob["history"] } | null;
    const job: WorkerJob = {
      id: claimed.id,
      kind: claimed.kind,
      attempt: claimed.attempt,
      maxAttempts: claimed.max_attempts,
      input: claimed.input,
      message: (claimed.message ?? undefined) as WorkerJob["message"],
      history: claimed.kind === "agent.turn" ? (input?.history ?? []) : [],
      signal: abort.signal,
      progress: async (data) => {
        await client.ok(client.api.POST("/v1/worker/jobs/{id}/progress", { ...path, body: { lease, progress: data } }));
      },
    };
    try {
      let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
      try {
        outcome = { ok: true, value: await options.handlers[claimed.kind]!(job) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      if (lost) return;
      if (outcome.ok) {
        const { value } = outcome;
        const body =
          value instanceof Reply
            ? { lease, result: value.result ?? null, reply: value.text }
            : { lease, result: value === undefined ? null : value };
        await client.ok(client.api.POST("/v1/worker/jobs/{id}/complete", { ...path, body }));
      } else {
        const { error } = outcome;
        const message = error instanceof Error ? error.message : String(error);
        const fatal = error instanceof FatalError;
        await client.ok(
          client.api.POST("/v1/worker/jobs/{id}/fail", {
            ...path,
            body: {
              lease,
              error: { code: fatal ? "fatal" : "exception", message },
              retry: !fatal,
              retry_after_secs: error instanceof RetryError && error.afterSecs ? Math.max(1, Math.round(error.afterSecs)) : undefined,
            },
          }),
        );
      }
    } catch (error) {
      if (!(error instanceof SentinelError && error.status === 409)) onError(error);
    } finally {
      clearInterval(beat);
    }
  }

  async function run(signal?: AbortSignal): Promise<void> {
    signal?.addEventListener("abort", () => stopping.abort(), { once: true });
    let backoff = 500;
    while (!stopping.signal.aborted) {
      const free = concurrency - inFlight.size;
      if (free === 0) {
        await Promise.race(inFlight);
        continue;
      }
      let jobs: ClaimedJob[] = [];
      try {
        const answer = await client.ok(
          client.api.POST("/v1/worker/claim", {
            body: { kinds, max: free, wait_ms: waitMs, lease_secs: leaseSecs, worker_id: workerId },
          }),
        );
        jobs = answer.jobs;
        backoff = 500;
      } catch (error) {
        onError(error);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, 10_000);
      }
      for (const claimed of jobs) {
        const running: Promise<void> = execute(claimed).finally(() => inFlight.delete(running));
        inFlight.add(running);
      }
    }
    await Promise.all(inFlight);
  }

  return { run, stop: () => stopping.abort() };
}
