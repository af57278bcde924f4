import type { JobEvent } from "@sentinel/client";
import { client } from "../session";
import { badge, fill, h, showError, time } from "../ui";

const MAX_ROWS = 200;
const STATUSES = ["queued", "running", "succeeded", "dead", "canceled"] as const;

/**
 * The event stream as a live list (one row per job, updated in place as its events arrive), the
 * queue depth by status, and jobs finished per minute over the last 15 minutes.
 */
export async function livePage(root: HTMLElement, signal: AbortSignal) {
  const api = client();
  const connection = h("span", { class: "connection", id: "connection" }, "connecting…");
  const counts = h("div", { class: "counts", id: "counts" });
  const chart = h("div", { class: "chart", id: "throughput" });
  const list = h("ol", { class: "stream", id: "stream" });
  root.append(
    h("h1", {}, "Live ", connection),
    h("section", { class: "row" }, h("div", { class: "card" }, h("h2", {}, "Queue"), counts), h("div", { class: "card grow" }, h("h2", {}, "Finished per minute"), chart)),
    h("section", { class: "card" }, h("h2", {}, "Events"), list),
  );

  const refreshStats = async () => {
    try {
      const stats = await api.ok(api.api.GET("/v1/stats", { signal }));
      fill(
        counts,
        STATUSES.map((status) => h("div", { class: "count", "data-count": status }, badge(status), h("strong", {}, stats.counts[status]))),
        h("div", { class: "muted" }, stats.oldest_queued_age_ms == null ? "nothing waiting" : `oldest ready job waiting ${Math.round(stats.oldest_queued_age_ms / 1000)} s`),
      );
      drawChart(chart, stats.per_minute);
    } catch (error) {
      if (!signal.aborted) showError(counts, error);
    }
  };
  void refreshStats();
  const timer = setInterval(refreshStats, 5000);
  signal.addEventListener("abort", () => clearInterval(timer));

  const rows = new Map<number, HTMLLIElement>();
  const show = (event: JobEvent) => {
    let row = rows.get(event.job_id);
    if (!row) {
      row = h("li", { class: "job-row", "data-job-id": event.job_id, "data-job-kind": event.kind });
      rows.set(event.job_id, row);
      if (list.childElementCount >= MAX_ROWS) {
        const oldest = list.lastElementChild as HTMLLIElement;
        rows.delete(Number(oldest.dataset.jobId));
        oldest.remove();
      }
    }
    list.prepend(row);
    const status = event.type === "job.progress" ? "running" : event.status;
    const detail =
      event.type === "job.progress"
        ? `${event.tokens ?? 0}/${event.max_tokens ?? "?"} tokens`
        : event.error
          ? JSON.stringify(event.error)
          : "";
    drawRow(row, { id: event.job_id, kind: event.kind, status, label: event.type, detail, at: event.at });
  };

  // The newest jobs as they stand, below whatever the stream has already shown.
  void api
    .ok(api.api.GET("/v1/jobs", { params: { query: { limit: 25 } }, signal }))
    .then((page) => {
      for (const job of page.items) {
        if (rows.has(job.id) || list.childElementCount >= MAX_ROWS) continue;
        const row = h("li", { class: "job-row", "data-job-id": job.id, "data-job-kind": job.kind });
        drawRow(row, {
          id: job.id,
          kind: job.kind,
          status: job.status,
          label: "(before this page opened)",
          detail: "",
          at: job.finished_at ?? job.started_at ?? job.created_at,
        });
        rows.set(job.id, row);
        list.append(row);
      }
    })
    .catch((error) => signal.aborted || showError(root, error));

  // Live from now on; a broken connection resumes with Last-Event-ID.
  let finished = 0;
  try {
    for await (const event of api.events({
      signal,
      onOpen: () => {
        fill(connection, "live");
        connection.dataset.state = "live";
      },
      onReconnect: () => {
        fill(connection, "reconnecting…");
        connection.dataset.state = "reconnecting";
      },
    })) {
      show(event);
      if (event.type === "job.succeeded" || event.type === "job.dead" || event.type === "job.canceled") {
        if (++finished % 20 === 0) void refreshStats();
      }
    }
  } catch (error) {
    if (!signal.aborted) {
      fill(connection, "disconnected");
      showError(root, error);
    }
  }
}

/** One job's row: its id (a link to its detail), kind, status, latest event and when. */
function drawRow(row: HTMLLIElement, job: { id: number; kind: string; status: string; label: string; detail: string; at: string }) {
  row.dataset.status = job.status;
  fill(
    row,
    h("a", { href: `#/jobs/${job.id}` }, `#${job.id}`),
    h("span", { class: "kind" }, job.kind),
    badge(job.status),
    h("span", { class: "event-type" }, job.label),
    h("span", { class: "muted" }, job.detail),
    h("time", {}, time(job.at)),
  );
}

function drawChart(chart: HTMLElement, minutes: { minute: string; succeeded: number; dead: number; canceled: number }[]) {
  const peak = Math.max(1, ...minutes.map((m) => m.succeeded + m.dead + m.canceled));
  const width = 15 * 22;
  const height = 90;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 16}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "jobs finished per minute, last 15 minutes");
  minutes.forEach((minute, index) => {
    let y = height;
    for (const [field, colour] of [["succeeded", "#2e8b57"], ["dead", "#c0392b"], ["canceled", "#888"]] as const) {
      const value = minute[field];
      if (!value) continue;
      const bar = document.createElementNS(ns, "rect");
      const barHeight = (value / peak) * (height - 10);
      y -= barHeight;
      bar.setAttribute("x", String(index * 22 + 3));
      bar.setAttribute("y", String(y));
      bar.setAttribute("width", "16");
      bar.setAttribute("height", String(barHeight));
      bar.setAttribute("fill", colour);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${new Date(minute.minute).toLocaleTimeString()}: ${value} ${field}`;
      bar.append(title);
      svg.append(bar);
    }
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "0");
  label.setAttribute("y", String(height + 14));
  label.setAttribute("font-size", "11");
  label.textContent = `peak ${peak}/min · ${minutes.reduce((sum, m) => sum + m.succeeded, 0)} succeeded in 15 min`;
  svg.append(label);
  chart.replaceChildren(svg);
}
