// Small DOM helpers: the dashboard has no framework, only the generated client.
import { JobFailedError, SentinelError } from "@sentinel/client";

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | undefined>;

/** `h("button", {class: "x", onclick: f}, "text")`: an element with attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(parent: Node, children: (Child | Child[])[]) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(element: Element, ...children: (Child | Child[])[]) {
  element.replaceChildren();
  append(element, children);
}

/** What went wrong, in words: the API's code and message, or the job's final error. */
export function describe(error: unknown): string {
  if (error instanceof SentinelError) return `${error.message}`;
  if (error instanceof JobFailedError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** An error banner inside `container`, replacing any earlier one there. */
export function showError(container: Element, error: unknown) {
  container.querySelector(":scope > .error")?.remove();
  const banner = h("div", { class: "error", role: "alert" }, describe(error));
  container.prepend(banner);
  return banner;
}

/** Runs `work` while `container` shows a progress indicator; errors become a banner. */
export async function withProgress<T>(container: Element, label: string, work: () => Promise<T>) {
  const indicator = h("div", { class: "loading", role: "status" }, h("span", { class: "spinner" }), label);
  container.append(indicator);
  try {
    return await work();
  } catch (error) {
    showError(container, error);
    return undefined;
  } finally {
    indicator.remove();
  }
}

export function badge(status: string) {
  return h("span", { class: `badge status-${status}`, "data-status": status }, status);
}

export function json(value: unknown) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function time(value: string | null | undefined) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}
