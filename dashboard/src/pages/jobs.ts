import type { Job, JobEvent } from "@sentinel/client";
import { client } from "../session";
import { badge, fill, h, json, showError, time, withProgress } from "../ui";

const STATUSES = ["", "queued", "running", "succeeded", "dead", "canceled"];
const KINDS = ["", "webhook.inbound", "reply.deliver", "payload.heal", "llm.generate"];

/** The tenant's jobs: filters (status, kind, source) and pages in the hash, cancel and replay per row. */
export async function jobsPage(root: HTMLElement, params: URLSearchParams, signal: AbortSignal) {
  const api = client();
  const filters = h(
    "form",
    { class: "filters", id: "job-filters" },
    h("label", {}, "Status ", select("status", STATUSES, params.get("status"))),
    h("label", {}, "Kind ", select("kind", KINDS, params.get("kind"))),
    h("label", {}, "Source ", h("input", { name: "source_id", value: params.get("source_id") ?? "", placeholder: "source id", size: 38 })),
    h("button", { type: "submit" }, "Filter"),
  );
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(filters)) if (value) next.set(name, String(value));
    window.location.hash = `#/jobs?${next}`;
  });
  const table = h("tbody");
  const pager = h("div", { class: "pager" });
  const jobsTable = h("table", { class: "jobs", id: "jobs" }, h("thead", {}, h("tr", {}, ["id", "kind", "status", "attempt", "source", "created", "finished", ""].map((name) => h("th", {}, name)))), table);
  const section = h("section", { class: "card" }, jobsTable, pager);
  root.append(h("h1", {}, "Jobs"), filters, section);

  const query = {
    status: params.get("status") || undefined,
    kind: params.get("kind") || undefined,
    source_id: params.get("source_id") || undefined,
    cursor: params.get("cursor") || undefined,
    limit: 25,
  };
  const page = await withProgress(section, "Loading jobs…", () => api.ok(api.api.GET("/v1/jobs", { params: { query }, signal })));
  if (!page) return;
  if (page.items.length === 0) table.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No jobs match.")));
  for (const job of page.items) table.append(jobRow(job, section));
  // Which query the rows answer, for whoever waits on them (the browser tests).
  jobsTable.dataset.loaded = params.toString();

  const pageLink = (cursor: string | undefined, label: string) => {
    const next = new URLSearchParams(params);
    if (cursor) next.set("cursor", cursor);
    else next.delete("cursor");
    return h("a", { href: `#/jobs?${next}`, class: "button" }, label);
  };
  fill(pager, query.cursor ? pageLink(undefined, "« Newest") : null, page.next_cursor ? pageLink(page.next_cursor, "Older »") : null);
}

function jobRow(job: Job, container: HTMLElement) {
  const row = h("tr", { "data-job-id": job.id, "data-status": job.status });
  const [cancel, replay] = jobActions(job, container, "small", (updated) => row.replaceWith(jobRow(updated, container)));
  fill(
    row,
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, `#${job.id}`)),
    h("td", {}, job.kind),
    h("td", {}, badge(job.status)),
    h("td", {}, `${job.attempt}/${job.max_attempts}`),
    h("td", { class: "mono" }, job.source_id ? job.source_id.slice(0, 8) : "—"),
    h("td", {}, time(job.created_at)),
    h("td", {}, time(job.finished_at)),
    h("td", { class: "actions" }, cancel, replay),
  );
  return row;
}

/**
 * Cancel (enabled while the job can still be stopped) and Replay (opens the new job) buttons;
 * `onCanceled` gets the job as the cancel left it. Errors go to a banner in `container`.
 */
function jobActions(job: Job, container: HTMLElement, buttonClass: string, onCanceled: (updated: Job) => unknown) {
  const api = client();
  const cancel = h("button", { class: buttonClass || undefined, disabled: !["queued", "running"].includes(job.status) }, "Cancel");
  const replay = h("button", { class: buttonClass || undefined }, "Replay");
  const act = (work: () => Promise<unknown>) => async () => {
    try {
      await work();
    } catch (error) {
      showError(container, error);
    }
  };
  cancel.addEventListener("click", act(async () => onCanceled(await api.ok(api.api.POST("/v1/jobs/{id}/cancel", { params: { path: { id: job.id } } })))));
  replay.addEventListener("click", act(async () => {
    const replayed = await api.ok(api.api.POST("/v1/jobs/{id}/replay", { params: { path: { id: job.id } } }));
    window.location.hash = `#/jobs/${replayed.id}`;
  }));
  return [cancel, replay] as const;
}

/**
 * "Send the reply": after a person checked the healed message against the raw payload, replays
 * the job with the reply approved (`POST /v1/jobs/{id}/reply`) and opens the new job.
 */
function reviewButton(job: Job, container: HTMLElement) {
  const api = client();
  const button = h("button", { id: "send-reply" }, "Reviewed: send the reply");
  button.addEventListener("click", async () => {
    button.setAttribute("disabled", "");
    try {
      const approved = await api.ok(api.api.POST("/v1/jobs/{id}/reply", { params: { path: { id: job.id } } }));
      window.location.hash = `#/jobs/${approved.id}`;
    } catch (error) {
      button.removeAttribute("disabled");
      showError(container, error);
    }
  });
  return h("p", {}, button);
}

function select(name: string, options: string[], selected: string | null) {
  return h("select", { name }, options.map((option) => h("option", { value: option, selected: option === (selected ?? "") }, option || "any")));
}

/**
 * One job: the raw payload beside the healed message, how it was healed, the attempts from the
 * audit table, the result, the reply and its delivery, the last error. It follows the job's
 * events and redraws when its state changes.
 */
export async function jobDetailPage(root: HTMLElement, id: number, signal: AbortSignal) {
  const api = client();
  const body = h("div", { id: "job-detail" });
  root.append(body);

  const draw = async () => {
    const job = await api.ok(api.api.GET("/v1/jobs/{id}", { params: { path: { id } }, signal }));
    const [payload, message, attempts] = await Promise.all([
      api.api.GET("/v1/jobs/{id}/payload", { params: { path: { id } }, signal }),
      api.api.GET("/v1/jobs/{id}/message", { params: { path: { id } }, signal }),
      api.ok(api.api.GET("/v1/jobs/{id}/attempts", { params: { path: { id } }, signal })),
    ]);
    const healed = message.data;
    const delivery = healed?.delivery as { job_id?: number; skipped?: string } | null | undefined;
    const [cancel, replay] = jobActions(job, body, "", () => draw());
    cancel.id = "cancel";
    replay.id = "replay";
    fill(
      body,
      h("h1", {}, `Job #${job.id} `, badge(job.status), " ", replay, " ", cancel),
      h(
        "dl",
        { class: "facts" },
        fact("kind", job.kind),
        fact("attempt", `${job.attempt} of ${job.max_attempts}`),
        fact("source", job.source_id ?? "—"),
        fact("replay of", job.replay_of ? h("a", { href: `#/jobs/${job.replay_of}` }, `#${job.replay_of}`) : "—"),
        fact("created", time(job.created_at)),
        fact("started", time(job.started_at)),
        fact("finished", time(job.finished_at)),
        fact("healed by", healed ? h("strong", { id: "healed-by" }, healed.healed_by) : "—"),
        fact("confidence", healed?.heal_confidence ?? "—"),
      ),
      h(
        "div",
        { class: "row" },
        h("section", { class: "card grow", id: "raw-payload" }, h("h2", {}, "Raw payload"), payload.data ? [payloadView(payload.data.body, payload.data.encoding), h("h3", {}, "Headers kept"), json(payload.data.headers)] : json(job.input)),
        h("section", { class: "card grow", id: "healed-message" }, h("h2", {}, "Healed message"), healed ? json(healed.message) : h("p", { class: "muted" }, message.error?.error.message ?? "not healed")),
        healed?.heal_trace != null ? h("section", { class: "card grow", id: "heal-trace" }, h("h2", {}, "How it was healed"), json(healed.heal_trace)) : null,
      ),
      healed?.reply_skipped != null
        ? h("section", { class: "card", id: "reply-skipped" }, h("h2", {}, "No automatic reply"), json(healed.reply_skipped), reviewButton(job, body))
        : null,
      healed?.reply != null
        ? h(
            "section",
            { class: "card", id: "reply" },
            h("h2", {}, "Reply"),
            h("blockquote", {}, healed.reply),
            h("p", {}, "Delivery: ", delivery?.job_id ? h("a", { href: `#/jobs/${delivery.job_id}` }, `reply.deliver job #${delivery.job_id}`) : `skipped (${delivery?.skipped ?? "unknown"})`),
          )
        : null,
      h("section", { class: "card", id: "attempts" }, h("h2", {}, "Attempts"), attempts.items.length ? h("ol", { class: "timeline" }, attempts.items.map((attempt) => h("li", { "data-outcome": attempt.outcome }, h("strong", {}, `#${attempt.attempt} ${attempt.outcome}`), ` on ${attempt.worker_id}, ${time(attempt.started_at)} → ${time(attempt.finished_at)}`, attempt.error ? json(attempt.error) : null))) : h("p", { class: "muted" }, job.status === "running" ? "the first attempt is running" : "no attempt has ended yet")),
      h("section", { class: "card", id: "result" }, h("h2", {}, "Result"), job.result == null ? h("p", { class: "muted" }, "none yet") : json(job.result)),
      job.last_error != null ? h("section", { class: "card", id: "last-error" }, h("h2", {}, "Last error"), json(job.last_error)) : null,
    );
  };

  const loaded = await withProgress(root, "Loading the job…", async () => {
    await draw();
    return true;
  });
  if (!loaded) return;
  try {
    // From the job's first event (`Last-Event-ID: 0`), not from now: a job that changed between the
    // first draw and the stream's start (a quick replay that already succeeded) is redrawn too.
    for await (const event of api.events({ jobId: id, lastEventId: "0", signal })) {
      if (event.type !== "job.progress") await redraw(event);
    }
  } catch (error) {
    if (!signal.aborted) showError(body, error);
  }

  async function redraw(_event: JobEvent) {
    try {
      await draw();
    } catch (error) {
      if (!signal.aborted) showError(body, error);
    }
  }
}

function fact(name: string, value: Node | string) {
  return [h("dt", {}, name), h("dd", {}, value)];
}

function payloadView(body: string, encoding: string) {
  if (encoding === "base64") return h("pre", { class: "json" }, `(base64) ${body}`);
  try {
    return json(JSON.parse(body));
  } catch {
    return h("pre", { class: "json" }, body);
  }
}
