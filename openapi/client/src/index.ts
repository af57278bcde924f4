// The Sentinel client: the generated types (./schema.ts) behind openapi-fetch, plus the helpers
// the spec cannot express on its own: the job-event stream (SSE, resumed with Last-Event-ID), the
// async job pattern (submit, follow, resolve with the result or reject with the job's error), the
// worker loop (./worker.ts) and the verifier of forwarded messages (./verify.ts).
import createFetchClient, { type Client, type Middleware } from "openapi-fetch";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";

export type Schemas = components["schemas"];
export type Job = Schemas["JobView"];
export type JobEvent = Schemas["JobEventData"];
export type JobEventType = Schemas["JobEventType"];
export type HealedMessage = Schemas["HealedMessage"];
export type CanonicalMessage = Schemas["CanonicalMessage"];
export type Source = Schemas["Source"];
export type Conversation = Schemas["Conversation"];
export type ConversationSummary = Schemas["ConversationSummary"];
export type ErrorBody = Schemas["ErrorBody"];

/** A credential: a tenant API key (`sk_…`), a JWT, or the admin token; or a function giving one. */
export type Token = string | (() => string | Promise<string>);

export interface SentinelOptions {
  /** The gateway, such as `http://127.0.0.1:8080`. Empty for the page's own origin. */
  baseUrl: string;
  token: Token;
  /** Another fetch (tests, proxies); the global one by default. */
  fetch?: typeof globalThis.fetch;
}

/** An error answer of the API, with its status, `error.code` and `error.message`. */
export class SentinelError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds from `Retry-After` on 429 and 503. */
    readonly retryAfter?: number,
  ) {
    super(`${code}: ${message} (HTTP ${status})`);
    this.name = "SentinelError";
  }

  /** Reads an error answer: the API's JSON error body, or whatever else the response held. */
  static async from(response: Response): Promise<SentinelError> {
    const text = await response.text().catch(() => "");
    let code = `http_${response.status}`;
    let message = text || response.statusText;
    try {
      const body = JSON.parse(text) as Partial<ErrorBody>;
      if (body.error?.code) {
        code = body.error.code;
        message = body.error.message;
      }
    } catch {
      // Not JSON: keep the text.
    }
    const retryAfter = Number(response.headers.get("retry-after") ?? NaN);
    return new SentinelError(
      response.status,
      code,
      message,
      Number.isFinite(retryAfter) ? retryAfter : undefined,
    );
  }
}

/** A job that ended `dead` or `canceled`: `job` is the final row, with its `last_error`. */
export class JobFailedError extends Error {
  constructor(readonly job: Job) {
    const reason = job.last_error ? `: ${JSON.stringify(job.last_error)}` : "";
    super(`job ${job.id} (${job.kind}) ended ${job.status}${reason}`);
    this.name = "JobFailedError";
  }
}

const TERMINAL: ReadonlySet<JobEventType> = new Set(["job.succeeded", "job.dead", "job.canceled"]);

export interface EventStreamOptions {
  /** Only this job's events. */
  jobId?: number;
  /** Only these event types. */
  types?: JobEventType[];
  /**
   * Resume after this event id (`events.seq`). `"0"` replays everything still retained (for a
   * job: its whole history), then goes live.
   */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Wait before reconnecting after the stream broke; the server's `retry:` overrides it. */
  retryMs?: number;
  /** Called each time a connection is open and live (for a "live" state). */
  onOpen?: () => void;
  /** Called when the stream broke and is about to reconnect (for a "reconnecting…" state). */
  onReconnect?: (error: unknown, lastEventId: string | undefined) => void;
}

export interface RunJobOptions {
  idempotencyKey?: string;
  priority?: number;
  maxAttempts?: number;
  /** Every event of the job as it arrives: `job.running`, `job.progress` (partial text), … */
  onEvent?: (event: JobEvent) => void;
  signal?: AbortSignal;
}

export type SentinelClient = ReturnType<typeof createSentinelClient>;

/**
 * A client for one credential. `api` is the typed openapi-fetch client for every endpoint;
 * `events` and `runJob` are the streaming helpers.
 */
export function createSentinelClient(options: SentinelOptions) {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const token = async () =>
    typeof options.token === "function" ? await options.token() : options.token;

  const api: Client<paths> = createFetchClient<paths>({ baseUrl, fetch: fetchImpl });
  const auth: Middleware = {
    async onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${await token()}`);
      return request;
    },
  };
  api.use(auth);

  /** Unwraps an openapi-fetch answer: its data, or a thrown SentinelError. */
  async function ok<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
    const { data, error, response } = await call;
    if (error !== undefined || !response.ok) {
      const body = error as Partial<ErrorBody> | undefined;
      const retryAfter = Number(response.headers.get("retry-after") ?? NaN);
      throw new SentinelError(
        response.status,
        body?.error?.code ?? `http_${response.status}`,
        body?.error?.message ?? response.statusText,
        Number.isFinite(retryAfter) ? retryAfter : undefined,
      );
    }
    return data as T;
  }

  /**
   * The tenant's job events, live, as an async iterable. A broken stream reconnects with
   * `Last-Event-ID`, so no event is lost or repeated; an answer of 4xx other than 429 ends it
   * with a SentinelError. Stop it with `signal` or by leaving the `for await` loop.
   */
  async function* events(streamOptions: EventStreamOptions = {}): AsyncGenerator<JobEvent> {
    const { signal } = streamOptions;
    let lastEventId = streamOptions.lastEventId;
    let retryMs = streamOptions.retryMs ?? 1000;
    const query = new URLSearchParams();
    if (streamOptions.jobId !== undefined) query.set("job_id", String(streamOptions.jobId));
    if (streamOptions.types?.length) query.set("types", streamOptions.types.join(","));
    const url = `${baseUrl}/v1/events${query.size ? `?${query}` : ""}`;

    while (!signal?.aborted) {
      let failure: unknown;
      try {
        const headers: Record<string, string> = {
          Accept: "text/event-stream",
          Authorization: `Bearer ${await token()}`,
        };
        if (lastEventId !== undefined) headers["Last-Event-ID"] = lastEventId;
        const response = await fetchImpl(url, { headers, signal, cache: "no-store" });
        if (!response.ok || !response.body) {
          const error = await SentinelError.from(response);
          const transient = response.status === 429 || response.status >= 500;
          if (!transient) throw error;
          if (error.retryAfter !== undefined) retryMs = error.retryAfter * 1000;
          failure = error;
        } else {
          streamOptions.onOpen?.();
          const queue: EventSourceMessage[] = [];
          const parser = createParser({
            onEvent: (message) => queue.push(message),
            onRetry: (ms) => {
              retryMs = ms;
            },
          });
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          try {
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              parser.feed(value);
              while (queue.length) {
                const message = queue.shift()!;
                if (message.id !== undefined) lastEventId = message.id;
                yield JSON.parse(message.data) as JobEvent;
              }
            }
          } finally {
            // Cancelling the reader cancels the pipe and closes the connection.
            await reader.cancel().catch(() => undefined);
          }
          failure = new Error("the event stream ended");
        }
      } catch (error) {
        if (signal?.aborted) return;
        if (error instanceof SentinelError) throw error;
        failure = error;
      }
      streamOptions.onReconnect?.(failure, lastEventId);
      await sleep(retryMs, signal);
    }
  }

  /**
   * Submits a job and follows it: resolves with its `result` when it succeeds, rejects with a
   * JobFailedError when it ends dead or canceled (or a SentinelError when the API refuses it).
   */
  async function runJob<Result = unknown>(
    kind: string,
    input: unknown,
    runOptions: RunJobOptions = {},
  ): Promise<{ job: Job; result: Result }> {
    const accepted = await ok(
      api.POST("/v1/jobs", {
        body: {
          kind,
          input,
          priority: runOptions.priority,
          max_attempts: runOptions.maxAttempts,
        },
        params: { header: { "Idempotency-Key": runOptions.idempotencyKey } },
        signal: runOptions.signal,
      }),
    );
    return follow<Result>(accepted.id, runOptions);
  }

  /** Follows a job already submitted (see runJob). */
  async function follow<Result = unknown>(
    jobId: number,
    followOptions: Pick<RunJobOptions, "onEvent" | "signal"> = {},
  ): Promise<{ job: Job; result: Result }> {
    const stop = new AbortController();
    const abort = () => stop.abort(followOptions.signal?.reason);
    followOptions.signal?.addEventListener("abort", abort, { once: true });
    try {
      // From the job's first event: nothing that happened before the stream opened is missed.
      for await (const event of events({ jobId, lastEventId: "0", signal: stop.signal })) {
        followOptions.onEvent?.(event);
        if (TERMINAL.has(event.type)) break;
      }
      followOptions.signal?.throwIfAborted();
      const job = await ok(api.GET("/v1/jobs/{id}", { params: { path: { id: jobId } } }));
      if (job.status !== "succeeded") throw new JobFailedError(job);
      return { job, result: job.result as Result };
    } finally {
      stop.abort();
      followOptions.signal?.removeEventListener("abort", abort);
    }
  }

  /** Every job matching `query`, newest first, fetching pages as the caller iterates. */
  async function* jobs(
    query: NonNullable<paths["/v1/jobs"]["get"]["parameters"]["query"]> = {},
  ): AsyncGenerator<Job> {
    let cursor: string | undefined;
    do {
      const page = await ok(api.GET("/v1/jobs", { params: { query: { ...query, cursor } } }));
      yield* page.items;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }

  return { api, ok, events, runJob, follow, jobs };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export {
  createWorker,
  FatalError,
  Reply,
  RetryError,
  type ClaimedJob,
  type JobHandler,
  type SentinelWorker,
  type WorkerJob,
  type WorkerOptions,
} from "./worker.js";
export {
  InvalidSignatureError,
  verifyForward,
  type ForwardAnswer,
  type ForwardedMessage,
} from "./verify.js";
