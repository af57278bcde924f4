import { client } from "../session";
import { fill, h, json, showError } from "../ui";

/**
 * "Process a document": submits an `llm.generate` job and follows it, with a progress bar and
 * the partial text from its `job.progress` events, then the result. The async job pattern that
 * makes a 30-second generation feel responsive.
 */
export async function processPage(root: HTMLElement, signal: AbortSignal) {
  const api = client();
  const instruction = h("input", { id: "instruction", name: "instruction", value: "Summarise this document in two sentences.", size: 60 });
  const documentText = h("textarea", { id: "document", name: "document", rows: 10, placeholder: "Paste the document here", required: true });
  const maxTokens = h("input", { id: "max-tokens", name: "max_tokens", type: "number", min: 1, max: 4096, value: 64 });
  const submit = h("button", { type: "submit", id: "submit" }, "Process");
  const form = h(
    "form",
    { class: "card", id: "process" },
    h("label", { for: "instruction" }, "Instruction"),
    instruction,
    h("label", { for: "document" }, "Document"),
    documentText,
    h("label", { for: "max-tokens" }, "Longest answer (tokens)"),
    maxTokens,
    submit,
  );
  const bar = h("progress", { id: "progress", max: 1, value: 0 });
  const state = h("span", { id: "state" });
  const partial = h("pre", { id: "partial", class: "partial" });
  const result = h("div", { id: "result" });
  const output = h("section", { class: "card", hidden: true }, h("h2", {}, "Progress ", state), bar, partial, result);
  root.append(h("h1", {}, "Process a document"), form, output);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    output.hidden = false;
    submit.disabled = true;
    bar.removeAttribute("value"); // indeterminate until the first token
    fill(state, "queued…");
    fill(partial);
    fill(result);
    output.querySelector(":scope > .error")?.remove();
    const budget = Number(maxTokens.value) || 64;
    try {
      const { job, result: output_ } = await api.runJob<{ text?: string; json?: unknown; usage?: unknown }>(
        "llm.generate",
        {
          messages: [
            { role: "system", content: "You are a careful assistant that processes documents." },
            { role: "user", content: `${instruction.value}\n\n${documentText.value}` },
          ],
          max_tokens: budget,
        },
        {
          signal,
          onEvent: (update) => {
            if (update.type === "job.running") fill(state, `running on ${update.worker_id ?? "a worker"}…`);
            if (update.type === "job.retrying") fill(state, `retrying: ${JSON.stringify(update.error)}`);
            if (update.type === "job.progress") {
              bar.max = update.max_tokens ?? budget;
              bar.value = update.tokens ?? 0;
              fill(state, `${update.tokens ?? 0} of at most ${update.max_tokens ?? budget} tokens`);
              fill(partial, update.text ?? "");
            }
          },
        },
      );
      bar.max = 1;
      bar.value = 1;
      fill(state, h("span", { "data-done": "true" }, `done: job #${job.id}`));
      fill(partial, output_.text ?? "");
      fill(result, h("h3", {}, "Result"), output_.json !== undefined ? json(output_.json) : h("blockquote", { id: "result-text" }, output_.text ?? ""), h("h3", {}, "Usage"), json(output_.usage));
    } catch (error) {
      if (signal.aborted) return;
      fill(state, "failed");
      showError(output, error);
    } finally {
      submit.disabled = false;
    }
  });
}
