import type { Conversation, ConversationSummary } from "@sentinel/client";
import { client } from "../session";
import { badge, fill, h, showError, time, withProgress } from "../ui";

/** The tenant's conversations, most recent first, a page at a time; `source_id` narrows them. */
export async function conversationsPage(root: HTMLElement, params: URLSearchParams, signal: AbortSignal) {
  const api = client();
  const table = h("tbody");
  const pager = h("div", { class: "pager" });
  const list = h(
    "table",
    { class: "jobs", id: "conversations" },
    h("thead", {}, h("tr", {}, ["conversation", "platform", "source", "state", "turns", "last message"].map((name) => h("th", {}, name)))),
    table,
  );
  const section = h("section", { class: "card" }, list, pager);
  root.append(h("h1", {}, "Conversations"), section);
  const query = {
    source_id: params.get("source_id") || undefined,
    cursor: params.get("cursor") || undefined,
    limit: 25,
  };
  const page = await withProgress(section, "Loading conversations…", () =>
    api.ok(api.api.GET("/v1/conversations", { params: { query }, signal })),
  );
  if (!page) return;
  if (page.items.length === 0) table.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No conversations yet.")));
  for (const conversation of page.items) table.append(row(conversation));
  list.dataset.loaded = params.toString();
  const pageLink = (cursor: string | undefined, label: string) => {
    const next = new URLSearchParams(params);
    if (cursor) next.set("cursor", cursor);
    else next.delete("cursor");
    return h("a", { href: `#/conversations?${next}`, class: "button" }, label);
  };
  fill(pager, query.cursor ? pageLink(undefined, "« Most recent") : null, page.next_cursor ? pageLink(page.next_cursor, "Older »") : null);
}

function conversationHref(conversation: { source_id: string; conversation_id: string }) {
  return `#/conversations/${conversation.source_id}/${encodeURIComponent(conversation.conversation_id)}`;
}

function row(conversation: ConversationSummary) {
  return h(
    "tr",
    { "data-conversation-id": conversation.conversation_id, "data-state": conversation.state },
    h("td", {}, h("a", { href: conversationHref(conversation) }, conversation.conversation_id)),
    h("td", {}, conversation.platform),
    h("td", { class: "mono" }, conversation.source_id.slice(0, 8)),
    h("td", {}, badge(conversation.state)),
    h("td", {}, conversation.turns),
    h("td", {}, time(conversation.last_message_at)),
  );
}

/**
 * One conversation as a chat transcript: the user's messages in the order the agent saw them,
 * each turn's reply after the last message it answered, each turn linked to its job, then the
 * messages still waiting. It follows the tenant's turn events and redraws when a turn of this
 * conversation starts or ends.
 */
export async function conversationPage(root: HTMLElement, sourceId: string, conversationId: string, signal: AbortSignal) {
  const api = client();
  const body = h("div", { id: "conversation" });
  root.append(body);

  const draw = async () => {
    const conversation = await api.ok(
      api.api.GET("/v1/conversations/{source_id}/{conversation_id}", {
        params: { path: { source_id: sourceId, conversation_id: conversationId } },
        signal,
      }),
    );
    fill(
      body,
      h("h1", {}, `Conversation ${conversation.conversation_id} `, badge(conversation.state)),
      h(
        "dl",
        { class: "facts" },
        fact("platform", conversation.platform),
        fact("source", h("a", { href: `#/conversations?source_id=${conversation.source_id}` }, conversation.source_id)),
        fact("turns", String(conversation.turns)),
        fact("running turn", conversation.turn_job_id ? h("a", { href: `#/jobs/${conversation.turn_job_id}` }, `#${conversation.turn_job_id}`) : "—"),
        fact("next turn at", time(conversation.next_start_at)),
        fact("last message", time(conversation.last_message_at)),
      ),
      h("section", { class: "card" }, h("h2", {}, "Transcript"), transcript(conversation)),
    );
    body.dataset.loaded = `${conversation.turns}:${conversation.state}:${conversation.messages.length}`;
    state = conversation.state;
  };
  let state = "idle";

  const loaded = await withProgress(root, "Loading the conversation…", async () => {
    await draw();
    return true;
  });
  if (!loaded) return;
  // A turn that ends between the first draw and the stream's start sends its event before the
  // stream is open: while a turn runs or messages wait, the page also looks again every 5 s.
  const poll = setInterval(() => {
    if (state !== "idle") draw().catch((error) => signal.aborted || showError(body, error));
  }, 5000);
  signal.addEventListener("abort", () => clearInterval(poll));
  try {
    for await (const event of api.events({ types: ["turn.started", "turn.ended"], signal })) {
      if (event.source_id === sourceId && event.conversation_id === conversationId) await draw();
    }
  } catch (error) {
    if (!signal.aborted) showError(body, error);
  }
}

/** The transcript's lines: messages by position, replies after their turn's last message. */
function transcript(conversation: Conversation) {
  const lines = h("ol", { class: "transcript", id: "transcript" });
  const endingAt = new Map<number, Conversation["turns"]>();
  for (const turn of conversation.turns) {
    if (turn.status === "interrupted") continue;
    const turns = endingAt.get(turn.last_position) ?? [];
    turns.push(turn);
    endingAt.set(turn.last_position, turns);
  }
  const interrupted = conversation.turns.filter((turn) => turn.status === "interrupted");
  for (const message of conversation.messages) {
    lines.append(
      h(
        "li",
        { class: "from-user", "data-position": message.position ?? "", "data-job-id": message.inbound_job_id },
        h("span", { class: "who" }, "user"),
        h("span", { class: "text" }, message.text),
        " ",
        h("a", { class: "muted", href: `#/jobs/${message.inbound_job_id}` }, `#${message.inbound_job_id}`),
        message.dropped ? h("span", { class: "muted" }, ` (not answered: ${message.dropped})`) : null,
        message.position == null ? h("span", { class: "muted" }, " (waiting for a turn)") : null,
      ),
    );
    for (const turn of message.position != null ? endingAt.get(message.position) ?? [] : []) {
      lines.append(
        h(
          "li",
          { class: "from-agent", "data-turn": turn.job_id, "data-status": turn.status },
          h("span", { class: "who" }, "agent"),
          turn.reply != null ? h("span", { class: "text" }, turn.reply) : h("span", { class: "muted" }, turn.status === "open" ? "answering…" : `no reply (${turn.status})`),
          " ",
          h("a", { href: `#/jobs/${turn.job_id}` }, `${turn.kind} #${turn.job_id}`),
          " ",
          badge(turn.status),
          turn.reply_job_id ? " delivery " : null,
          turn.reply_job_id ? h("a", { href: `#/jobs/${turn.reply_job_id}` }, `#${turn.reply_job_id}`) : null,
          turn.reply_status ? " " : null,
          turn.reply_status ? badge(turn.reply_status) : null,
        ),
      );
    }
  }
  if (interrupted.length) {
    lines.append(
      h(
        "li",
        { class: "muted" },
        "interrupted turns: ",
        interrupted.flatMap((turn) => [h("a", { href: `#/jobs/${turn.job_id}`, "data-turn": turn.job_id, "data-status": turn.status }, `#${turn.job_id}`), " "]),
      ),
    );
  }
  if (conversation.messages.length === 0) lines.append(h("li", { class: "muted" }, "No messages."));
  return lines;
}

function fact(name: string, value: Node | string) {
  return [h("dt", {}, name), h("dd", {}, value)];
}
