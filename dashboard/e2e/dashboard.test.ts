// The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
// gateway, worker and Postgres, started by scripts/web.sh. Screenshots of every page go to
// SENTINEL_SCREENSHOTS (default test-output/dashboard).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const baseUrl = required("SENTINEL_URL");
const adminToken = required("SENTINEL_ADMIN_TOKEN");
const screenshots = process.env.SENTINEL_SCREENSHOTS ?? join(process.cwd(), "..", "test-output", "dashboard");
const SECRET_TOKEN = "e2e-secret-token-0123456789";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through scripts/web.sh`);
  return value;
}

let browser: Browser;
let page: Page;
let apiKey: string;
let ingestUrl: string;
let webhookJobId: number;

async function snap(name: string) {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  mkdirSync(screenshots, { recursive: true });
  const response = await fetch(`${baseUrl}/v1/admin/tenants`, {
    method: "POST",
    headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: `dashboard-e2e-${Date.now()}` }),
  });
  expect(response.status).toBe(201);
  apiKey = ((await response.json()) as { api_key: string }).api_key;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (error) => console.error("page error:", error));
});

afterAll(async () => {
  await browser?.close();
});

describe("the dashboard", () => {
  it("refuses a wrong key with the API's message, then signs in with a good one", async () => {
    await page.goto(`${baseUrl}/dashboard/`);
    await page.waitForSelector("#sign-in");
    await snap("01-sign-in");
    await page.fill("#token", "sk_wrong_0000000000000000");
    await page.click("#sign-in button[type=submit]");
    await expect.poll(() => page.textContent("#sign-in .error")).toContain("invalid_api_key");

    await page.fill("#token", apiKey);
    await page.click("#sign-in button[type=submit]");
    await page.waitForSelector("#connection[data-state=live]");
    expect(page.url()).not.toContain(apiKey);
    const stored = await page.evaluate(() => sessionStorage.getItem("sentinel.token"));
    expect(stored).toBe(apiKey);
  });

  it("creates a Telegram source and shows its ingest URL and setWebhook step", async () => {
    await page.click("nav >> text=Sources");
    await page.waitForSelector("#new-source");
    await page.selectOption("#platform", "telegram");
    await page.fill("#source-name", "e2e bot");
    await page.fill("#secret-secret_token", SECRET_TOKEN);
    await page.click("#new-source button[type=submit]");
    await page.waitForSelector("#ingest-url");
    ingestUrl = (await page.textContent("#ingest-url"))!.trim();
    expect(ingestUrl).toMatch(new RegExp(`^${baseUrl}/hooks/[0-9a-f-]{36}$`));
    const step = await page.textContent("#setup-step");
    expect(step).toContain("setWebhook");
    expect(step).toContain(`url=${ingestUrl}`);
    expect(step).toContain(`secret_token=${SECRET_TOKEN}`);
    await page.waitForSelector(`#sources tr >> text=e2e bot`);
    await snap("02-sources");
  });

  it("shows a signed Telegram webhook live, turning succeeded without a reload", async () => {
    await page.click("nav >> text=Live");
    await page.waitForSelector("#connection[data-state=live]");
    await page.evaluate(() => ((window as unknown as { marker: string }).marker = "same page"));
    const answer = await fetch(ingestUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET_TOKEN },
      body: JSON.stringify({
        update_id: 501,
        message: {
          message_id: 42,
          date: 1_767_225_600,
          chat: { id: 9009, type: "private" },
          from: { id: 77, is_bot: false, first_name: "Grace" },
          text: "Hello, is my order on its way?",
        },
      }),
    });
    expect(answer.status).toBe(200);
    const row = page.locator('.job-row[data-job-kind="webhook.inbound"]');
    await row.first().waitFor();
    await snap("03-live-queued");
    await page.locator('.job-row[data-job-kind="webhook.inbound"][data-status="succeeded"]').waitFor({ timeout: 150_000 });
    webhookJobId = Number(await row.first().getAttribute("data-job-id"));
    expect(webhookJobId).toBeGreaterThan(0);
    expect(await page.evaluate(() => (window as unknown as { marker?: string }).marker)).toBe("same page");
    await page.waitForFunction(() => Number(document.querySelector('[data-count="succeeded"] strong')?.textContent) >= 1, null, { timeout: 15_000 });
    await snap("04-live-succeeded");
  });

  it("opens the job and shows the raw payload beside the healed message", async () => {
    await page.click(`.job-row[data-job-id="${webhookJobId}"] a`);
    await page.waitForSelector("#healed-by");
    expect(await page.textContent("#healed-by")).toBe("adapter");
    const healed = await page.textContent("#healed-message");
    expect(healed).toContain('"platform": "telegram"');
    expect(healed).toContain('"conversation_id": "9009"');
    expect(healed).toContain("Hello, is my order on its way?");
    expect(await page.textContent("#raw-payload")).toContain('"update_id": 501');
    expect(await page.locator('#attempts li[data-outcome="succeeded"]').count()).toBe(1);
    expect(await page.textContent("#reply")).toContain("skipped");
    await snap("05-job-detail");
  });

  it("shows the chat as a transcript, its turn linked to its job", async () => {
    await page.click("nav >> text=Conversations");
    const row = page.locator('#conversations tr[data-conversation-id="9009"]');
    await row.waitFor();
    await snap("05b-conversations");
    await row.locator("a").click();
    await page.waitForSelector("#transcript li.from-user");
    expect(await page.textContent("#transcript li.from-user")).toContain("Hello, is my order on its way?");
    // The built-in agent's turn ends (this source has no reply credentials: nothing is sent).
    const turn = page.locator("#transcript li.from-agent:not([data-status=open])");
    await turn.waitFor({ timeout: 150_000 });
    expect(await turn.textContent()).toContain("agent.reply #");
    await snap("05c-transcript");
    await turn.locator('a[href^="#/jobs/"]').first().click();
    await page.waitForSelector("#job-detail dd >> text=agent.reply");
    // Back to the message's job, which the next test replays.
    await page.goto(`${baseUrl}/dashboard/#/jobs/${webhookJobId}`);
    await page.waitForSelector(`#job-detail h1:has-text("Job #${webhookJobId}")`);
    await page.waitForSelector("#healed-by");
  });

  it("replays it, and the replay runs to succeeded", async () => {
    await page.click("#replay");
    await page.waitForFunction((original) => /#\/jobs\/\d+$/.test(location.hash) && !location.hash.endsWith(`/${original}`), webhookJobId);
    const replayId = Number(await page.evaluate(() => location.hash.split("/").pop()));
    // The replay's own page (not the original's, which is replaced once the route runs).
    await page.waitForSelector(`#job-detail h1:has-text("Job #${replayId}")`);
    await page.waitForSelector(`#job-detail dd >> text=#${webhookJobId}`);
    await page.waitForSelector(`#job-detail h1:has-text("Job #${replayId}") [data-status="succeeded"]`, { timeout: 150_000 });
    await page.waitForSelector("#healed-by");
    await snap("06-replay");
  });

  it("lists both in the jobs table, filtered by kind", async () => {
    await page.click("nav >> text=Jobs");
    await page.waitForSelector("#job-filters");
    await page.selectOption('#job-filters select[name="kind"]', "webhook.inbound");
    await page.click("#job-filters button[type=submit]");
    await page.waitForSelector('#jobs[data-loaded="kind=webhook.inbound"]');
    expect(await page.locator("#jobs tbody tr[data-job-id]").count()).toBe(2);
    expect(await page.locator('#jobs tbody tr[data-status="succeeded"]').count()).toBe(2);
    await snap("07-jobs");
  });

  it("sends a reply the source's policy held back, after review, once", async () => {
    // A source whose reply_policy answers nothing on its own: every message waits for a person.
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${baseUrl}${path}`, {
        ...init,
        headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json", ...(init.headers ?? {}) },
      });
    const created = await api("/v1/sources", {
      method: "POST",
      body: JSON.stringify({
        platform: "telegram",
        name: "e2e reviewed",
        secrets: { secret_token: SECRET_TOKEN },
        reply: { bot_token: "123456:e2e-review-bot-token-0123456789" },
        reply_policy: "never",
      }),
    });
    expect(created.status).toBe(201);
    const source = (await created.json()) as { id: string; ingest_url: string };
    const hook = await fetch(source.ingest_url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET_TOKEN },
      body: JSON.stringify({
        update_id: 502,
        message: { message_id: 43, date: 1_767_225_600, chat: { id: 9010, type: "private" }, from: { id: 78, first_name: "Ada" }, text: "Please call me back" },
      }),
    });
    expect(hook.status).toBe(200);
    let jobId = 0;
    await expect
      .poll(
        async () => {
          const list = (await (await api(`/v1/jobs?source_id=${source.id}&status=succeeded`)).json()) as { items: { id: number }[] };
          jobId = list.items[0]?.id ?? 0;
          return jobId;
        },
        { timeout: 150_000, interval: 500 },
      )
      .toBeGreaterThan(0);

    await page.goto(`${baseUrl}/dashboard/#/jobs/${jobId}`);
    await page.waitForSelector("#reply-skipped #send-reply");
    expect(await page.textContent("#reply-skipped")).toContain("never");
    await snap("07b-reply-held-back");
    await page.click("#send-reply");
    await page.waitForFunction((original) => /#\/jobs\/\d+$/.test(location.hash) && !location.hash.endsWith(`/${original}`), jobId);
    const approvedId = Number(await page.evaluate(() => location.hash.split("/").pop()));
    await page.waitForSelector(`#job-detail h1:has-text("Job #${approvedId}")`);
    await page.waitForSelector(`#job-detail dd >> text=#${jobId}`);
    const approved = (await (await api(`/v1/jobs/${approvedId}`)).json()) as { input: { reply_approved?: boolean }; replay_of: number };
    expect(approved.input.reply_approved).toBe(true);
    expect(approved.replay_of).toBe(jobId);
    // A second approval is refused: one reply per message.
    const again = await api(`/v1/jobs/${jobId}/reply`, { method: "POST" });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe("reply_already_approved");
  });

  it("processes a document with a progress bar that finishes", async () => {
    await page.click("nav >> text=Process a document");
    await page.waitForSelector("#process");
    await page.fill("#document", "Sentinel acknowledges webhooks in milliseconds and runs the language model in workers.");
    await page.fill("#max-tokens", "24");
    await page.click("#submit");
    await page.waitForSelector("#progress");
    await page.waitForFunction(() => Number((document.querySelector("#progress") as HTMLProgressElement | null)?.value) > 0, null, { timeout: 150_000 });
    await snap("08-process-running");
    await page.waitForSelector("[data-done=true]", { timeout: 150_000 });
    const bar = await page.$eval("#progress", (element) => [(element as HTMLProgressElement).value, (element as HTMLProgressElement).max]);
    expect(bar[0]).toBe(bar[1]);
    expect(((await page.textContent("#result-text")) ?? "").length).toBeGreaterThan(0);
    await snap("09-process-done");
  });
});
