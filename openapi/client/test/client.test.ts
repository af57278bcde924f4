import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import {
  createSentinelClient,
  createWorker,
  FatalError,
  InvalidSignatureError,
  JobFailedError,
  SentinelError,
  verifyForward,
  type ForwardedMessage,
  type HealedMessage,
  type JobEvent,
  type SentinelClient,
} from "../src/index.js";
import { admin, baseUrl, newTenant } from "./gateway.js";

const telegramUpdate = (updateId: number, text: string) => ({
  update_id: updateId,
  message: {
    message_id: updateId,
    date: 1_767_225_600,
    chat: { id: 4242, type: "private" },
    from: { id: 77, is_bot: false, first_name: "Ada" },
    text,
  },
});

describe("the typed API", () => {
  it("creates a source and lists it, typed by the spec", async () => {
    const { client } = await newTenant();
    const source = await client.ok(
      client.api.POST("/v1/sources", {
        body: { platform: "telegram", name: "support bot", secrets: { secret_token: "s3cret-token-0123456789" } },
      }),
    );
    expect(source.platform).toBe("telegram");
    expect(source.ingest_url).toBe(`${baseUrl}/hooks/${source.id}`);
    expect(source.has_reply_credentials).toBe(false);
    const list = await client.ok(client.api.GET("/v1/sources"));
    expect(list.items.map((item) => item.id)).toEqual([source.id]);
  });

  it("turns an error answer into a SentinelError with the API's code and message", async () => {
    const stranger = createSentinelClient({ baseUrl, token: "sk_nothere_0000000000000000" });
    const refused = await stranger.ok(stranger.api.GET("/v1/jobs")).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SentinelError);
    expect((refused as SentinelError).status).toBe(401);
    expect((refused as SentinelError).code).toBe("invalid_api_key");

    const { client } = await newTenant();
    const invalid = await client.runJob("No Such Kind", {}).catch((error: unknown) => error);
    expect(invalid).toBeInstanceOf(SentinelError);
    expect((invalid as SentinelError).status).toBe(422);
    expect((invalid as SentinelError).message).toContain("No Such Kind");
  });

  it("pages through jobs with the cursor", async () => {
    const { client } = await newTenant();
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      const accepted = await queueForLater(client, telegramUpdate(i, "hi"));
      ids.push(accepted.id);
    }
    const seen: number[] = [];
    for await (const job of client.jobs({ limit: 2 })) seen.push(job.id);
    expect(seen).toEqual([...ids].reverse());
  });
});

describe("runJob", () => {
  it("resolves with the healed message of a payload.heal job, after its events", async () => {
    const { client } = await newTenant();
    const events: JobEvent[] = [];
    const { job, result } = await client.runJob<HealedMessage>(
      "payload.heal",
      { payload: telegramUpdate(9001, "where is my order?") },
      { onEvent: (event) => events.push(event) },
    );
    expect(job.status).toBe("succeeded");
    expect(result.healed_by).toBe("adapter");
    expect(result.message.platform).toBe("telegram");
    expect(result.message.conversation_id).toBe("4242");
    expect(result.message.text).toBe("where is my order?");
    expect(events.map((event) => event.type)).toEqual(["job.queued", "job.running", "job.succeeded"]);
    expect(events.every((event) => event.job_id === job.id)).toBe(true);
  });

  it("rejects with the job when it ends canceled", async () => {
    const { client } = await newTenant();
    const accepted = await queueForLater(client, "{}");
    const following = client.follow(accepted.id).catch((error: unknown) => error);
    await client.ok(client.api.POST("/v1/jobs/{id}/cancel", { params: { path: { id: accepted.id } } }));
    const failure = await following;
    expect(failure).toBeInstanceOf(JobFailedError);
    expect((failure as JobFailedError).job.status).toBe("canceled");
  });

  it("streams an llm.generate job's partial text as job.progress, then its result", async () => {
    const { client } = await newTenant();
    const progress: JobEvent[] = [];
    const { result } = await client.runJob<{ text: string; usage: { completion_tokens: number } }>(
      "llm.generate",
      { messages: [{ role: "user", content: "Name three colours." }], max_tokens: 24 },
      { onEvent: (event) => event.type === "job.progress" && progress.push(event) },
    );
    expect(result.text.length).toBeGreaterThan(0);
    expect(progress.length).toBeGreaterThan(0);
    const last = progress[progress.length - 1]!;
    expect(last.max_tokens).toBe(24);
    expect(last.tokens).toBeGreaterThan(0);
    expect(result.text.startsWith(last.text ?? "\u0000")).toBe(true);
  });
});

describe("the event stream", () => {
  it("resumes with Last-Event-ID after a dropped connection, losing and repeating nothing", async () => {
    const { apiKey, client } = await newTenant();
    const lastEventIds: (string | null)[] = [];
    let connections = 0;
    // The first connection breaks after 5 events, as a proxy or a flaky network would break it.
    const flaky: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (!String(input).includes("/v1/events")) return response;
      lastEventIds.push(new Headers(init?.headers).get("Last-Event-ID"));
      connections += 1;
      return connections === 1 ? breakAfter(response, 5) : response;
    };
    const streaming = createSentinelClient({ baseUrl, token: apiKey, fetch: flaky });
    const stop = new AbortController();
    const received: JobEvent[] = [];
    const done = (async () => {
      for await (const event of streaming.events({ types: ["job.queued"], signal: stop.signal, retryMs: 100 })) {
        received.push(event);
        if (received.length === 12) break;
      }
    })();
    await until(() => connections === 1);
    const ids: number[] = [];
    for (let i = 0; i < 12; i++) {
      const accepted = await queueForLater(client, telegramUpdate(i, "x"));
      ids.push(accepted.id);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await done;
    stop.abort();
    expect(received.map((event) => event.job_id)).toEqual(ids);
    expect(connections).toBe(2);
    expect(lastEventIds[0]).toBeNull();
    expect(lastEventIds[1]).toMatch(/^\d+$/);
  });

  it("stops with a SentinelError on a refused credential instead of retrying", async () => {
    const stranger = createSentinelClient({ baseUrl, token: "sk_nothere_0000000000000000" });
    const iterator = stranger.events()[Symbol.asyncIterator]();
    const failure = await iterator.next().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SentinelError);
    expect((failure as SentinelError).status).toBe(401);
  });

  it("keeps tenants apart", async () => {
    const first = await newTenant();
    const second = await newTenant();
    const stop = new AbortController();
    const seen: JobEvent[] = [];
    const listening = (async () => {
      for await (const event of second.client.events({ lastEventId: "0", signal: stop.signal })) seen.push(event);
    })();
    await queueForLater(first.client, "{}");
    const own = await queueForLater(second.client, "{}");
    await until(() => seen.length >= 1);
    stop.abort();
    await listening;
    expect(seen.map((event) => event.job_id)).toEqual([own.id]);
  });
});

describe("the worker loop", () => {
  it("runs jobs of your own kind: a result completes, a FatalError ends the job dead", async () => {
    const { client } = await newTenant();
    const kind = `ts.k${Math.random().toString(36).slice(2, 10)}`;
    const worker = createWorker(client, {
      handlers: {
        [kind]: async (job) => {
          const input = job.input as { n: number };
          if (input.n < 0) throw new FatalError("negative numbers cannot be doubled");
          await job.progress({ doubling: input.n });
          return { doubled: input.n * 2 };
        },
      },
      concurrency: 2,
      waitMs: 1000,
    });
    const running = worker.run();
    const events: JobEvent[] = [];
    const { result } = await client.runJob<{ doubled: number }>(kind, { n: 21 }, { onEvent: (e) => events.push(e) });
    expect(result.doubled).toBe(42);
    expect(events.map((event) => event.type)).toContain("job.progress");
    const failure = await client.runJob(kind, { n: -1 }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(JobFailedError);
    expect((failure as JobFailedError).job.status).toBe("dead");
    worker.stop();
    await running;
  });
});

describe("forwarded messages", () => {
  it("arrive signed, and verifyForward checks them with the secret shown once", async () => {
    const { client } = await newTenant();
    const received: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];
    const agent = createServer((request, response) => {
      let body = "";
      request.on("data", (chunk) => (body += chunk));
      request.on("end", () => {
        received.push({ headers: request.headers, body });
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => agent.listen(0, "127.0.0.1", resolve));
    const port = (agent.address() as AddressInfo).port;
    try {
      const secretToken = "s3cret-token-0123456789";
      const source = await client.ok(
        client.api.POST("/v1/sources", {
          body: {
            platform: "telegram",
            secrets: { secret_token: secretToken },
            agent: { mode: "forward", url: `http://127.0.0.1:${port}/agent` },
          },
        }),
      );
      const secret = source.agent.secret!;
      expect(secret).toMatch(/^whsec_/);
      const hook = await fetch(source.ingest_url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secretToken },
        body: JSON.stringify(telegramUpdate(31, "is the shop open?")),
      });
      expect(hook.status).toBe(200);
      await until(() => received.length === 1, 30_000);
      const { headers, body } = received[0]!;
      const event: ForwardedMessage = verifyForward(secret, headers, body);
      expect(event.type).toBe("message.received");
      expect(event.data.source_id).toBe(source.id);
      expect(event.data.message.text).toBe("is the shop open?");
      expect(() => verifyForward(secret, headers, body.replace("open", "shut"))).toThrow(InvalidSignatureError);
      const other = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=";
      expect(() => verifyForward(other, headers, body)).toThrow(InvalidSignatureError);
      expect(verifyForward([other, secret], headers, body).data.job_id).toBe(event.data.job_id);
    } finally {
      agent.close();
    }
  });
});

describe("the admin API through the same client", () => {
  it("refuses a tenant key on admin routes", async () => {
    const { client } = await newTenant();
    const refused = await client
      .ok(client.api.POST("/v1/admin/tenants", { body: { name: "nope" } }))
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SentinelError);
    expect([401, 403]).toContain((refused as SentinelError).status);
    const created = await admin.ok(admin.api.POST("/v1/admin/tenants", { body: { name: "through-admin" } }));
    expect(created.api_key).toMatch(/^sk_/);
  });
});

/** A payload.heal job due in an hour: queued, and left alone by the worker. */
function queueForLater(client: SentinelClient, payload: unknown) {
  return client.ok(
    client.api.POST("/v1/jobs", {
      body: { kind: "payload.heal", input: { payload }, run_at: new Date(Date.now() + 3_600_000).toISOString() },
    }),
  );
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a condition");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The response, with its body failing after `events` complete SSE events have gone through. */
function breakAfter(response: Response, events: number): Response {
  let forwarded = 0;
  let pending = "";
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const body = response.body!.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        pending += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = pending.indexOf("\n\n")) !== -1) {
          const block = pending.slice(0, end + 2);
          pending = pending.slice(end + 2);
          controller.enqueue(encoder.encode(block));
          if (/^id:/m.test(block) && ++forwarded === events) {
            controller.error(new Error("connection dropped by the test"));
            return;
          }
        }
      },
    }),
  );
  return new Response(body, { status: response.status, headers: response.headers });
}
