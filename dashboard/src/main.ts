// The dashboard: hash routes, one page at a time. Each page gets an AbortSignal that fires when
// the user navigates away, which closes its event stream and stops its timers.
import "./style.css";
import { conversationPage, conversationsPage } from "./pages/conversations";
import { jobDetailPage, jobsPage } from "./pages/jobs";
import { livePage } from "./pages/live";
import { processPage } from "./pages/process";
import { signInPage } from "./pages/signin";
import { sourcesPage } from "./pages/sources";
import { signOut, token } from "./session";
import { h, showError } from "./ui";

const app = document.getElementById("app")!;
let current: AbortController | undefined;

const NAV = [
  ["#/live", "Live"],
  ["#/jobs", "Jobs"],
  ["#/conversations", "Conversations"],
  ["#/process", "Process a document"],
  ["#/sources", "Sources"],
] as const;

async function route() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const [path = "", search = ""] = window.location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(search);

  if (!token() && path !== "/sign-in") {
    window.location.hash = "#/sign-in";
    return;
  }
  const main = h("main", { "data-page": path || "/live" });
  const signOutButton = h("button", { class: "link", id: "sign-out" }, "Sign out");
  signOutButton.addEventListener("click", () => {
    signOut();
    window.location.hash = "#/sign-in";
  });
  const nav = token()
    ? h("nav", {}, h("strong", { class: "brand" }, "Sentinel"), NAV.map(([href, label]) => h("a", { href, class: path.startsWith(href.slice(1)) ? "active" : undefined }, label)), signOutButton)
    : h("nav", {}, h("strong", { class: "brand" }, "Sentinel"));
  app.replaceChildren(nav, main);

  try {
    const jobMatch = /^\/jobs\/(\d+)$/.exec(path);
    const conversationMatch = /^\/conversations\/([0-9a-f-]{36})\/(.+)$/.exec(path);
    if (path === "/sign-in") await signInPage(main);
    else if (jobMatch) await jobDetailPage(main, Number(jobMatch[1]), controller.signal);
    else if (path === "/jobs") await jobsPage(main, params, controller.signal);
    else if (conversationMatch) await conversationPage(main, conversationMatch[1], decodeURIComponent(conversationMatch[2]), controller.signal);
    else if (path === "/conversations") await conversationsPage(main, params, controller.signal);
    else if (path === "/process") await processPage(main, controller.signal);
    else if (path === "/sources") await sourcesPage(main, controller.signal);
    else if (path === "/live" || path === "") await livePage(main, controller.signal);
    else main.append(h("h1", {}, "Not found"), h("p", {}, `No page at ${path}.`));
  } catch (error) {
    if (!controller.signal.aborted) showError(main, error);
  }
}

window.addEventListener("hashchange", route);
void route();
