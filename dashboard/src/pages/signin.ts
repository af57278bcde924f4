import { client, signIn, signOut } from "../session";
import { h, showError } from "../ui";

/** Paste a tenant API key or a JWT; it is checked against the gateway before it is kept. */
export async function signInPage(root: HTMLElement) {
  const field = h("textarea", {
    id: "token",
    name: "token",
    rows: 3,
    placeholder: "sk_… or a JWT",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const form = h(
    "form",
    { class: "card narrow", id: "sign-in" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste a tenant API key or a JWT. It is kept in this tab's session storage only."),
    h("label", { for: "token" }, "API key or JWT"),
    field,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    signIn(field.value);
    try {
      await client().ok(client().api.GET("/v1/stats"));
      window.location.hash = "#/live";
    } catch (error) {
      signOut();
      showError(form, error);
    }
  });
  root.append(form);
}
