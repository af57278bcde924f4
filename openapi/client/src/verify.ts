// Verifying what Sentinel forwards to your agent (a source whose agent is `forward`): each healed
// message is POSTed as a Standard Webhook, signed with the source's agent secret (`whsec_…`, shown
// once when the source is created or the secret rotated). Built on the `standardwebhooks` package.
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import type { components } from "./schema.js";

/** The body Sentinel POSTs to a forwarded agent. */
export interface ForwardedMessage {
  type: "message.received";
  /** When it was sent, RFC 3339. */
  timestamp: string;
  data: {
    /** The `agent.forward` job; `webhook-id` is the same on each of its attempts. */
    job_id: number;
    source_id: string;
    message: components["schemas"]["CanonicalMessage"];
    /** The conversation's last messages, oldest first. */
    history: { role: "user" | "agent"; text: string }[];
  };
}

/** What the agent answers: `{reply}` sends `reply` to the user; no body sends nothing. */
export interface ForwardAnswer {
  reply?: string | null;
}

/** The request is not one Sentinel signed with the given secret(s), or is over 5 minutes off. */
export class InvalidSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidSignatureError";
  }
}

/**
 * Checks `webhook-id`, `webhook-timestamp` and `webhook-signature` against the raw `body` with
 * each of `secrets` (give the old and the new one during a rotation) and returns the parsed body;
 * throws an InvalidSignatureError otherwise. Pass the body exactly as received.
 */
export function verifyForward(
  secrets: string | readonly string[],
  headers: Headers | Record<string, string | string[] | undefined>,
  body: string | Uint8Array,
): ForwardedMessage {
  const keys = typeof secrets === "string" ? [secrets] : [...secrets];
  if (keys.length === 0) throw new Error("verifyForward needs at least one secret");
  const plain: Record<string, string> = {};
  if (headers instanceof Headers) {
    headers.forEach((value, name) => {
      plain[name] = value;
    });
  } else {
    for (const [name, value] of Object.entries(headers)) {
      if (value !== undefined) plain[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
    }
  }
  let last: unknown;
  for (const key of keys) {
    try {
      return new Webhook(key).verify(body, plain) as ForwardedMessage;
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      last = error;
    }
  }
  throw new InvalidSignatureError(last instanceof Error ? last.message : "no secret matched");
}
