import type { Schemas, Source } from "@sentinel/client";
import { client } from "../session";
import { fill, h, showError, time, withProgress } from "../ui";

type Platform = Schemas["PlatformName"];

/** The fields each platform needs: verification secrets, then reply credentials. */
const FIELDS: Record<Platform, { secrets: string[]; reply: string[] }> = {
  telegram: { secrets: ["secret_token"], reply: ["bot_token"] },
  whatsapp: { secrets: ["app_secret", "verify_token"], reply: ["access_token", "phone_number_id"] },
  slack: { secrets: ["signing_secret"], reply: ["bot_token"] },
  salesforce: { secrets: ["organization_id"], reply: [] },
  standard: { secrets: ["secret"], reply: [] },
};

/** The tenant's sources, and a form that creates one and shows how to point the platform at it. */
export async function sourcesPage(root: HTMLElement, signal: AbortSignal) {
  const api = client();
  const list = h("tbody");
  const listCard = h("section", { class: "card" }, h("h2", {}, "Sources"), h("table", { id: "sources" }, h("thead", {}, h("tr", {}, ["name", "platform", "ingest URL", "replies", "created", ""].map((name) => h("th", {}, name)))), list));
  const platform = h("select", { id: "platform", name: "platform" }, Object.keys(FIELDS).map((name) => h("option", { value: name }, name)));
  const fields = h("div", { class: "fields" });
  const form = h(
    "form",
    { class: "card", id: "new-source" },
    h("h2", {}, "New source"),
    h("label", { for: "platform" }, "Platform"),
    platform,
    h("label", { for: "source-name" }, "Name"),
    h("input", { id: "source-name", name: "name", placeholder: "support bot" }),
    fields,
    h("label", { for: "system-prompt" }, "The agent's system prompt"),
    h("textarea", { id: "system-prompt", name: "system_prompt", rows: 3, placeholder: "You are the support agent of …" }),
    h("button", { type: "submit" }, "Create source"),
  );
  const created = h("section", { class: "card", id: "created", hidden: true });
  root.append(h("h1", {}, "Sources"), created, form, listCard);

  const drawFields = () => {
    const { secrets, reply } = FIELDS[platform.value as Platform];
    fill(
      fields,
      h("h3", {}, "Verification"),
      secrets.flatMap((name) => [h("label", { for: `secret-${name}` }, name), h("input", { id: `secret-${name}`, "data-secret": name, required: true, autocomplete: "off" })]),
      reply.length ? h("h3", {}, "Reply credentials (optional: without them replies are generated but not sent)") : null,
      reply.flatMap((name) => [h("label", { for: `reply-${name}` }, name), h("input", { id: `reply-${name}`, "data-reply": name, autocomplete: "off" })]),
    );
  };
  platform.addEventListener("change", drawFields);
  drawFields();

  const refresh = async () => {
    const sources = await withProgress(listCard, "Loading sources…", () => api.ok(api.api.GET("/v1/sources", { signal })));
    if (!sources) return;
    fill(list, sources.items.length ? sources.items.map((source) => sourceRow(source, listCard, refresh)) : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No sources yet.")));
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = platform.value as Platform;
    const collect = (attribute: string) => {
      const values: Record<string, string> = {};
      for (const input of form.querySelectorAll<HTMLInputElement>(`[data-${attribute}]`)) {
        if (input.value.trim()) values[input.dataset[attribute]!] = input.value.trim();
      }
      return values;
    };
    const secrets = collect("secret");
    const reply = collect("reply");
    const name = (form.elements.namedItem("name") as HTMLInputElement).value.trim();
    const systemPrompt = (form.elements.namedItem("system_prompt") as HTMLTextAreaElement).value.trim();
    try {
      const source = await api.ok(
        api.api.POST("/v1/sources", {
          body: {
            platform: chosen,
            name: name || undefined,
            secrets,
            reply: Object.keys(reply).length ? reply : undefined,
            system_prompt: systemPrompt || undefined,
          },
        }),
      );
      created.hidden = false;
      fill(created, h("h2", {}, `Created ${source.platform} source ${source.name ?? source.id}`), h("p", {}, "Ingest URL: ", h("code", { id: "ingest-url" }, source.ingest_url)), h("h3", {}, "Set-up step"), setupStep(source, secrets, reply));
      form.reset();
      drawFields();
      await refresh();
    } catch (error) {
      showError(form, error);
    }
  });
  await refresh();
}

function sourceRow(source: Source, container: HTMLElement, refresh: () => Promise<void>) {
  const remove = h("button", { class: "small" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!window.confirm(`Delete source ${source.name ?? source.id}? Its webhooks will answer 404.`)) return;
    try {
      const api = client();
      await api.ok(api.api.DELETE("/v1/sources/{id}", { params: { path: { id: source.id } } }));
      await refresh();
    } catch (error) {
      showError(container, error);
    }
  });
  return h(
    "tr",
    { "data-source-id": source.id },
    h("td", {}, source.name ?? "—"),
    h("td", {}, source.platform),
    h("td", {}, h("code", {}, source.ingest_url)),
    h("td", {}, source.has_reply_credentials ? "sent" : "generated only"),
    h("td", {}, time(source.created_at)),
    h("td", {}, remove),
  );
}

type SetupStep = (url: string, secrets: Record<string, string>, reply: Record<string, string>) => HTMLElement[];

const code = (text: string) => h("pre", { class: "setup", id: "setup-step" }, text);

/** The exact step that points each platform at a new source, with the values just entered. A
 * platform added to the registry fails the type check until it has one. */
const SETUP: Record<Platform, SetupStep> = {
  telegram: (url, secrets, reply) => [
    h("p", {}, "Register the webhook with Telegram's setWebhook, with the same secret_token:"),
    code(`curl -s "https://api.telegram.org/bot${reply.bot_token ?? "<BOT_TOKEN>"}/setWebhook" \\\n  -d url=${url} \\\n  -d secret_token=${secrets.secret_token ?? "<SECRET_TOKEN>"}`),
  ],
  whatsapp: (url, secrets) => [
    h("p", {}, "In the Meta app dashboard, WhatsApp › Configuration › Webhook: set the callback URL and verify token below, then subscribe to the messages field. Sentinel answers the verification handshake."),
    code(`Callback URL:  ${url}\nVerify token:  ${secrets.verify_token ?? "<VERIFY_TOKEN>"}`),
  ],
  slack: (url) => [
    h("p", {}, "In the Slack app's settings, Event Subscriptions › Request URL (Sentinel answers Slack's url_verification), then subscribe to the bot events you want, such as message.channels and app_mention. The same URL serves Slash Commands and Interactivity › Request URL:"),
    code(`Request URL:  ${url}`),
  ],
  salesforce: (url, secrets) => [
    h("p", {}, `In Salesforce Setup › Outbound Messages, set the endpoint URL below. Only organisation ${secrets.organization_id ?? "<ORG_ID>"} is accepted.`),
    code(`Endpoint URL:  ${url}`),
  ],
  standard: (url) => [
    h("p", {}, "Point the sender's Standard Webhooks endpoint at this URL, signing with the secret you entered:"),
    code(`Endpoint:  ${url}`),
  ],
};

function setupStep(source: Source, secrets: Record<string, string>, reply: Record<string, string>) {
  return SETUP[source.platform as Platform](source.ingest_url, secrets, reply);
}
