// The signed-in credential lives in session storage only: never in a URL, gone with the tab.
import { createSentinelClient, type SentinelClient } from "@sentinel/client";

const KEY = "sentinel.token";

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function signIn(value: string) {
  sessionStorage.setItem(KEY, value.trim());
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

/** A client for the page's own gateway, with the stored credential. */
export function client(): SentinelClient {
  return createSentinelClient({
    baseUrl: window.location.origin,
    token: () => token() ?? "",
  });
}
